"""Typed config sections: TOML tables → frozen dataclasses, with every problem reported by key path.

A section is a frozen dataclass. Field types drive validation (str, int, float, bool,
Secret, enums, Literal, lists, tuples, dicts, nested sections, `X | None`). A section may
define `check(self) -> list[tuple[str, str]]` for rules across fields, returning
(relative key, message) pairs. Unknown keys are errors. Durations carry their unit in the
key name (`interval_s`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

Problems = list[tuple[str, str]]


class Secret:
    """A string that never shows itself in repr, str, logs or errors; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must use it; never log or print it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str, problems: Problems) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed TOML tree."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if default is not None and "${" in default:  # ${A:-${B:-x}} would leave "${B:-x}" in the value
                problems.append((path, f"the default of ${{{name}}} may not hold another ${{...}}"))
                return ""
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append((path, f"environment variable {name} is not set"))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, join(path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def join(path: str, key: str | int) -> str:
    """The key path of `key` under `path`: `a.b`, `a[0]`, or `key` at the top level."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_MISSING = object()
MISSING = _MISSING  # what a loader returns for a value it could not build (its problems are recorded)


def _type_name(tp: Any) -> str:
    if tp is str or tp is Secret:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (list, tuple):
        return "a list"
    if get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


def convert(tp: Any, value: Any, path: str, problems: Problems) -> Any:
    """Convert one TOML value to `tp`; on error record a problem and return _MISSING."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return convert(args[0], value, path, problems)
        for a in args:  # first that fits
            sub: Problems = []
            out = convert(a, value, path, sub)
            if not sub:
                return out
        problems.append((path, f"expected {' or '.join(_type_name(a) for a in args)}"))
        return _MISSING
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        problems.append((path, f"expected {_type_name(tp)}, got {value!r}"))
        return _MISSING
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            problems.append((path, f"expected {_type_name(tp)}, got {value!r}"))
            return _MISSING
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_NUMBER:
                problems.append((path, f"must be at most {MAX_NUMBER:.0e} in size, got {value}"))
                return _MISSING
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or abs(value) > MAX_NUMBER:  # TOML has inf and nan; no setting wants them
                problems.append((path, f"expected a finite number of at most {MAX_NUMBER:.0e} in size, got {value}"))
                return _MISSING
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Secret:
        if isinstance(value, str):
            return Secret(value)
    elif origin in (list, tuple):
        if isinstance(value, list):
            item_args = get_args(tp)
            item_tp = item_args[0] if item_args else Any
            out_items = []
            ok = True
            for i, item in enumerate(value):
                conv = convert(item_tp, item, join(path, i), problems)
                ok = ok and conv is not _MISSING
                out_items.append(conv)
            if not ok:
                return _MISSING
            return tuple(out_items) if origin is tuple else out_items
    elif origin is dict:
        if isinstance(value, dict):
            _, val_tp = get_args(tp)
            out_map = {}
            ok = True
            for k, v in value.items():
                conv = convert(val_tp, v, join(path, k), problems)
                ok = ok and conv is not _MISSING
                out_map[k] = conv
            return out_map if ok else _MISSING
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return load_section(tp, value, path, problems)
    else:  # a callable converter, e.g. a polymorphic section
        return tp(value, path, problems)
    problems.append((path, f"expected {_type_name(tp)}, got {type(value).__name__} {_short(value)}"))
    return _MISSING


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_section(cls: type[T], data: Mapping[str, Any], path: str, problems: Problems,
                 *, extra: Mapping[str, Any] | None = None) -> T:
    """Build dataclass `cls` from a TOML table; returns _MISSING (typed as T) when it has problems.

    `extra` supplies values for fields that are not read from the table (e.g. the table's own name).
    """
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    extra = dict(extra or {})
    for key in data:
        if key not in fields or key in extra:
            known = ", ".join(sorted(k for k in fields if k not in extra))
            problems.append((join(path, key), f"unknown key (known keys: {known})"))
    kwargs: dict[str, Any] = {}
    failed = False
    before = len(problems)
    for name, f in fields.items():
        if name in extra:
            kwargs[name] = extra[name]
            continue
        if name in data:
            conv = convert(hints[name], data[name], join(path, name), problems)
            if conv is _MISSING:
                failed = True
            else:
                kwargs[name] = conv
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append((join(path, name), "required"))
            failed = True
    if failed or len(problems) > before:
        return _MISSING  # type: ignore[return-value]
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append((path or "(top level)", str(exc)))
        return _MISSING  # type: ignore[return-value]
    check: Callable[[], Problems] | None = getattr(obj, "check", None)
    if check is not None:
        for key, msg in check():
            problems.append((join(path, key) if key else path, msg))
        if len(problems) > before:
            return _MISSING  # type: ignore[return-value]
    return obj


def is_missing(value: Any) -> bool:
    """Whether a loader returned MISSING: the value could not be built and its problems are recorded."""
    return value is _MISSING


#: No number in a config is larger: durations, sizes and counts past it only overflow dates and timers.
MAX_NUMBER = 1e12


def positive(value: float, key: str, *, at_most: float = 1e9) -> Problems:
    """A rule for `check`: 0 < value <= `at_most` (1e9 by default: 31 years of seconds, a GB of bytes)."""
    if not value > 0:
        return [(key, "must be greater than 0")]
    if value > at_most:
        return [(key, f"must be at most {at_most:g}")]
    return []


def non_negative(value: float, key: str, *, at_most: float = 1e9) -> Problems:
    """A rule for `check`: 0 <= value <= `at_most`."""
    if value < 0:
        return [(key, "must not be negative")]
    if value > at_most:
        return [(key, f"must be at most {at_most:g}")]
    return []


def header_problems(headers: Mapping[str, str], key: str = "headers") -> Problems:
    """A rule for `check`: HTTP header names are tokens, and no name or value holds a control character.

    aiohttp refuses such a header on every request ("Forbidden control character"), so one bad
    value would fail each probe or delivery, long after the config was accepted.
    """
    problems: Problems = []
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            problems.append((f"{key}.{name}", "is not a valid header name"))
        elif any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value):
            problems.append((f"{key}.{name}", "must not contain control characters (such as line breaks)"))
    return problems


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def http_url(value: str) -> bool:
    """Whether `value` is an absolute http:// or https:// URL with a host.

    Not one: unparseable (a bad port, IPv6 literal or IDNA label), another scheme, no host, or
    spaces and control characters anywhere, which URL parsers keep verbatim.
    """
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not one)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            return False
        for label in host.split(".") if ":" not in host else ():
            if label.isascii() and label.startswith("xn--"):
                label.encode().decode("idna")  # raises for punycode that decodes to nothing valid
            elif label and not label.isascii():
                label.encode("idna")
    except (TypeError, ValueError, UnicodeError):
        return False
    return True

