"""One reader for the fields of JSON input, shared by every HTTP edge; each problem names the field's full path.

Our own API answers the first problem (the client fixes one thing at a time); webhooks
from senders we do not control are judged as a whole, every problem collected, so one
answer says all that is wrong with a payload. Both read fields the same way here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web

from statusd.core.clock import FIRST_YEAR, LAST_YEAR, supported
from statusd.core.errors import NotFound, ValidationError
from statusd.core.json_body import parse_json
from statusd.core.schema import join
from statusd.web.body import read_body

E = TypeVar("E", bound=Enum)

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})")


class Problems:
    """The (field path, message) pairs found in one payload, in the order they were found."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, path: str, message: str) -> None:
        """Record one problem."""
        self.items.append((path, message))


class Fields:
    """A JSON object read field by field; every problem names its field as `path.key` (`alerts[2].status`).

    Without `problems` the first problem raises ValidationError; with it, problems are
    collected there and the reader returns None (or the given default) for a bad value.
    With `allowed`, a field not in it is a problem; without, unknown fields are ignored
    (for senders that add fields between releases, where refusing would drop real alerts).
    """

    def __init__(self, data: Mapping[str, Any], path: str = "", *, allowed: AbstractSet[str] | None = None,
                 problems: Problems | None = None) -> None:
        self.data = data
        self._path = path
        self._problems = problems
        if allowed is not None:
            for key in data:
                if key not in allowed:
                    self.problem(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")

    @classmethod
    async def read(cls, request: web.Request, allowed: AbstractSet[str]) -> Fields:
        """The request's body as a JSON object (an empty body is `{}`), within `[server] max_body_bytes`."""
        raw = await read_body(request, request.client_max_size, "[server] max_body_bytes")
        if not raw:
            return cls({}, allowed=allowed)
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise ValidationError("body", "must be a JSON object")
        return cls(data, allowed=allowed)

    def key(self, name: str | int) -> str:
        """The full path of the field `name`."""
        return join(self._path, name)

    def problem(self, key: str | int, message: str) -> None:
        """Report that the field `key` is wrong: raised at once, or recorded in `problems`."""
        path = join(self._path, key)
        if self._problems is None:
            raise ValidationError(path, message)
        self._problems.add(path, message)

    def text(self, key: str, *, required: bool = False, max_len: int = 10_000, default: str | None = None) -> str | None:
        """A string with surrounding whitespace removed; `required` ones must not be blank."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return default
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        value = value.strip()
        if required and not value:
            self.problem(key, "must not be empty")
            return default
        if len(value) > max_len:
            self.problem(key, f"must be at most {max_len} characters")
            return default
        return value

    def string(self, key: str, *, required: bool = False, max_len: int | None = None) -> str | None:
        """A string kept exactly as sent; `required` ones must not be blank."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return None
        if required and not value.strip():
            self.problem(key, "must not be empty")
            return None
        if max_len is not None and len(value) > max_len:
            self.problem(key, f"must be at most {max_len} characters")
            return None
        return value

    def flag(self, key: str, default: bool) -> bool:
        """true or false; `default` when the field is left out."""
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def integer(self, key: str) -> int | None:
        """An integer (not a boolean); None when the field is left out. A null is not left out."""
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(key, "must be an integer")
            return None
        return value

    def choice(self, key: str, enum: type[E], *, required: bool = False) -> E | None:
        """One of `enum`'s values, as its member."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        try:
            return enum(value)
        except ValueError:
            self.problem(key, "must be one of: " + ", ".join(str(m.value) for m in enum))
            return None

    def one_of(self, key: str, choices: Iterable[str], *, required: bool = False) -> str | None:
        """One of the strings `choices`."""
        choices = tuple(choices)
        value = self.data.get(key)
        if value is None and not required:
            return None
        if value not in choices:
            self.problem(key, "required: one of " + ", ".join(choices) if value is None
                          else "must be one of " + ", ".join(choices))
            return None
        return value

    def names(self, key: str, *, max_items: int = 100) -> list[str]:
        """A list of strings, at most `max_items` of them; [] when the field is left out."""
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "must be a list of strings")
            return []
        if len(value) > max_items:
            self.problem(key, f"must have at most {max_items} items")
            return []
        return value

    def obj(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        """A JSON object."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        if not isinstance(value, dict):
            self.problem(key, "must be a JSON object")
            return None
        return value

    def labels(self, key: str, *, required: bool = False) -> dict[str, str]:
        """A JSON object of strings (labels, annotations); {} when left out or when any value is no string."""
        value = self.obj(key, required=required)
        if value is None:
            return {}
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        for k in bad:
            self.problem(join(key, k), "must be a string")
        return {} if bad else value

    def timestamp(self, key: str) -> str | None:
        """An RFC 3339 timestamp with a time zone, kept as sent."""
        value = self.string(key)
        if value is None:
            return None
        if not _RFC3339.fullmatch(value):
            self.problem(key, "must be an RFC 3339 timestamp like 2026-03-02T09:00:00Z")
            return None
        try:
            datetime.fromisoformat(value.upper())
        except ValueError as exc:
            self.problem(key, f"is not a valid timestamp: {exc}")
            return None
        return value


def parse_time(value: Any, key: str) -> datetime:
    """An ISO-8601 time with a UTC offset ("Z" too), or ValidationError naming `key`."""
    if not isinstance(value, str):
        raise ValidationError(key, "expected an ISO-8601 time with offset")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(key, "expected an ISO-8601 time with offset, e.g. 2026-03-02T09:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValidationError(key, "needs a UTC offset, e.g. Z or +03:00")
    if not supported(parsed):
        raise ValidationError(key, f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")
    return parsed


def iso(value: datetime | None) -> str | None:
    """A time as the API writes it (ISO 8601), or None."""
    return value.isoformat() if value is not None else None


def path_id(request: web.Request, what: str = "incident") -> int:
    """The `{id}` of the path: 400 if it is not an integer, 404 if no row could have it (64-bit ids)."""
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):  # int() would also take "+1", " 1", "1_0" and other scripts' digits
        raise ValidationError("id", "must be an integer")
    value = int(raw) if len(raw) <= 19 else 2**63  # (and thousands of digits are an error of their own)
    if not 0 < value < 2**63:
        raise NotFound(what, value)
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` as an integer between `low` and `high`; `default` when it is left out."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(name, "must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value


def query_time(request: web.Request, name: str, default: datetime) -> datetime:
    """The query parameter `name` as a time with offset (parse_time); `default` when it is left out."""
    raw = request.query.get(name)
    return default if raw is None else parse_time(raw, name)
