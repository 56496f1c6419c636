"""What differs between the SQL dialects the repositories are written once for.

The repositories (`statusd.store.repos`) write every statement with `?` placeholders and ask
the dialect for the few things SQLite and PostgreSQL spell differently: how a time, a JSON
document, a flag and a day are stored; how a list parameter is matched; the row locks; the
two-argument maximum; whether batches can travel as array parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Protocol


def json_text(value: Any) -> str:
    """A JSON document as compact text with sorted keys, the same bytes in both dialects."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def ts(value: datetime | None) -> str | None:
    """A datetime as sortable ISO-8601 UTC text (microseconds always present)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime reached the store")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def dt(value: str | None) -> datetime | None:
    """The inverse of `ts`."""
    return None if value is None else datetime.fromisoformat(value)


class Dialect(Protocol):
    """How one database spells what the shared repositories need."""

    name: str
    #: The two-argument maximum of the dialect.
    greatest: str
    #: Appended to a SELECT that reads a row before changing it: "" where one writer holds the whole database.
    for_update: str
    #: Appended to a claim's SELECT so rows another replica is claiming are passed over, not waited for.
    skip_locked: str
    #: The current time as an SQL expression in the stored time form.
    now: str
    #: Whether a batch can be passed as a few array parameters (`unnest`) instead of many rows of placeholders.
    arrays: bool

    def time(self, value: datetime | None) -> Any:
        """A time as a parameter; a naive one raises ValueError."""
        ...

    def read_time(self, value: Any) -> datetime | None:
        """A stored time back as a UTC-aware datetime (None stays None)."""
        ...

    def read_instant(self, value: Any) -> datetime:
        """`read_time` of a NOT NULL column."""
        ...

    def json(self, value: Any) -> Any:
        """A JSON document as a parameter (None stays NULL)."""
        ...

    def read_json(self, value: Any) -> Any:
        """A stored JSON document back as Python values (NULL stays None)."""
        ...

    def flag(self, value: bool) -> Any:
        """A boolean as a parameter."""
        ...

    def day(self, value: date) -> Any:
        """A UTC day as a parameter."""
        ...

    def read_day(self, value: Any) -> date:
        """A stored day back as a date."""
        ...

    def json_field(self, column: str, key: str) -> str:
        """SQL for the text of a JSON object's top-level `key` (a constant, never input)."""
        ...

    def any_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """SQL (and its parameters) true when `column` equals one of `values`; never true for no values."""
        ...

    def none_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """SQL (and its parameters) true when `column` equals none of `values`; always true for no values."""
        ...

    def json_array_has_any(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """SQL (and its parameters) true when the JSON array in `column` holds one of `values`."""
        ...


class SqliteDialect:
    """SQLite: times as ISO-8601 UTC text (sortable), JSON as text, flags as 0/1, one writer at a time."""

    name = "sqlite"
    greatest = "max"
    for_update = ""  # the writer's BEGIN IMMEDIATE already excludes every other writer
    skip_locked = ""
    now = "strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')"  # the form `ts` writes
    arrays = False

    def time(self, value: datetime | None) -> str | None:
        """ISO-8601 UTC text with microseconds (`ts`), so times sort and compare as text."""
        return ts(value)

    def read_time(self, value: Any) -> datetime | None:
        """The datetime `ts` wrote, UTC-aware; None stays None."""
        return dt(value)

    def read_instant(self, value: Any) -> datetime:
        """The datetime `ts` wrote, UTC-aware."""
        return datetime.fromisoformat(value)

    def json(self, value: Any) -> str | None:
        """Compact JSON text with sorted keys; None stays NULL."""
        return None if value is None else json_text(value)

    def read_json(self, value: Any) -> Any:
        """The document parsed; NULL stays None."""
        return None if value is None else json.loads(value)

    def flag(self, value: bool) -> int:
        """1 or 0."""
        return int(value)

    def day(self, value: date) -> str:
        """The day as ISO text (YYYY-MM-DD), which sorts as days do."""
        return value.isoformat()

    def read_day(self, value: Any) -> date:
        """The date of ISO text."""
        return date.fromisoformat(value)

    def json_field(self, column: str, key: str) -> str:
        """`json_extract` of the top-level key."""
        return f"json_extract({column}, '$.{key}')"

    def any_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """`column IN (?, …)`, one placeholder per value."""
        return f"{column} IN ({','.join('?' * len(values))})", list(values)  # SQLite accepts an empty IN ()

    def none_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """`column NOT IN (?, …)`, one placeholder per value."""
        return f"{column} NOT IN ({','.join('?' * len(values))})", list(values)

    def json_array_has_any(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """An EXISTS over `json_each` of the array."""
        match, params = self.any_of("value", values, "text")
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE {match})", params


class PostgresDialect:
    """PostgreSQL: timestamptz, jsonb (encoded by the connection's codec), booleans, dates, array parameters."""

    name = "postgres"
    greatest = "GREATEST"
    for_update = " FOR UPDATE"  # two replicas changing one row queue here
    skip_locked = " FOR UPDATE SKIP LOCKED"
    now = "now()"
    arrays = True

    def time(self, value: datetime | None) -> datetime | None:
        """The datetime in UTC, for a timestamptz column."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the store")
        return value.astimezone(UTC)

    def read_time(self, value: Any) -> datetime | None:
        """The timestamptz as a UTC datetime; None stays None."""
        return None if value is None else value.astimezone(UTC)

    def read_instant(self, value: Any) -> datetime:
        """The timestamptz as a UTC datetime."""
        result: datetime = value.astimezone(UTC)
        return result

    def json(self, value: Any) -> Any:
        """The value itself: the connection's jsonb codec encodes it (as `json_text`)."""
        return value

    def read_json(self, value: Any) -> Any:
        """The value itself: the connection's jsonb codec decoded it."""
        return value

    def flag(self, value: bool) -> bool:
        """The boolean itself."""
        return value

    def day(self, value: date) -> date:
        """The date itself, for a date column."""
        return value

    def read_day(self, value: Any) -> date:
        """The date itself."""
        result: date = value
        return result

    def json_field(self, column: str, key: str) -> str:
        """The `->>` text of the top-level key."""
        return f"{column}->>'{key}'"

    def any_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """`column = ANY(?)` with the values as one array parameter."""
        return f"{column} = ANY(?::{sql_type}[])", [list(values)]

    def none_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """`NOT (column = ANY(?))` with the values as one array parameter."""
        return f"NOT ({column} = ANY(?::{sql_type}[]))", [list(values)]

    def json_array_has_any(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """jsonb's `?|` with the values as one array parameter."""
        return f"{column} ?| ?::text[]", [list(values)]


SQLITE = SqliteDialect()
POSTGRES = PostgresDialect()

# A placeholder `?`, or a quoted literal or identifier to step over; `?|` and `?&` are jsonb operators.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(?![|&])")


@lru_cache(maxsize=1024)  # a pure function of the statement: the same few hundred statements over and over
def numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered `$1, $2, …` in order, as PostgreSQL wants them."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() != "?":
            return match.group()
        count += 1
        return f"${count}"
    return _PLACEHOLDER.sub(number, sql)
