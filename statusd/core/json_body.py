"""Request bodies as JSON: what `json.loads` takes but nothing downstream can store is refused too."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from statusd.core.errors import ValidationError

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(raw: bytes, *, replace_nul: bool = False) -> Any:
    """A request body as JSON, or ValidationError naming "body" (or the string that cannot be stored).

    Beyond syntax, it refuses what `json.loads` takes but nothing downstream can handle:
    NaN and Infinity (also as 1e999, which overflows to it), nesting deep enough to exhaust
    the stack, integers of thousands of digits, strings with an unpaired surrogate escape ("\\ud800"), which no UTF-8
    store can write, and strings with a NUL ("\\u0000"), which PostgreSQL's text cannot hold. Such a string is named
    by its path, e.g. `reports[2].text`.

    `replace_nul`: turn each NUL in a string value into U+FFFD instead, for machine senders
    (Alertmanager, Grafana, Telegram) that cannot change what they send: refusing would lose the
    alert for good over one character in a label value. (A sender's "k\\u0000" and "k\\ufffd" then
    read alike, as dedup keys too: neither is sent in practice.)
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise ValidationError("body", "is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValidationError("body", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValidationError("body", "is nested too deeply") from None
    except _NotFinite as exc:
        raise ValidationError("body", f"is not valid JSON: {exc}") from None
    except ValueError:  # an integer past Python's digit limit (4,300)
        raise ValidationError("body", "has a number too long to read") from None
    try:  # the walks below recurse: a value nested nearly as deep as json.loads allows needs more frames
        if _SURROGATE_ESCAPE.search(raw):  # rare: only then walk the value
            path = _first_string(data, "", _not_utf8)
            if path is not None:
                raise ValidationError(path or "body", "contains an unpaired UTF-16 surrogate (\\ud800-\\udfff)")
        if b"\\u0000" in raw:  # PostgreSQL cannot store it in text, and no one means it
            if replace_nul:
                return _replaced(data, "\0", "\ufffd")
            path = _first_string(data, "", lambda s: "\0" in s)
            if path is not None:
                raise ValidationError(path or "body", "contains a NUL character (\\u0000)")
    except RecursionError:
        raise ValidationError("body", "is nested too deeply") from None
    return data


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text[:20]} is too large for a number")
    return value


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _replaced(value: Any, old: str, new: str) -> Any:
    """`value` (fresh from json.loads) with `old` replaced by `new` in every string value, in place.

    Object keys are not rewritten: two keys could become one and a value be lost without a
    word. A key holding `old` is refused, naming the object (no sender statusd reads puts a NUL
    in a key: Prometheus label names cannot hold one).
    """
    if isinstance(value, str):
        return value.replace(old, new)
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        container, path = stack.pop()
        if isinstance(container, dict):
            for key, item in container.items():
                if old in key:
                    raise ValidationError(path or "body", "has a key with a NUL character (\\u0000)")
                if isinstance(item, str):
                    container[key] = item.replace(old, new)
                elif isinstance(item, (dict, list)):
                    stack.append((item, f"{path}.{key}" if path else str(key)))
        elif isinstance(container, list):
            for i, item in enumerate(container):
                if isinstance(item, str):
                    container[i] = item.replace(old, new)
                elif isinstance(item, (dict, list)):
                    stack.append((item, f"{path}[{i}]"))
    return value


def _first_string(value: Any, path: str, bad: Callable[[str], bool]) -> str | None:
    """The path of the first string in `value` that is `bad` (of the object holding it, for a key), else None."""
    if isinstance(value, str):
        return path if bad(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if bad(key):
                return path or "body"
            found = _first_string(item, inner, bad)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_string(item, f"{path}[{i}]", bad)
            if found is not None:
                return found
    return None
