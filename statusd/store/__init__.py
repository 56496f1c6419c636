"""Stores behind the repository protocols of `statusd.core.protocols`."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources


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


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """Numbered migrations of one dialect as (version, name, sql), in order."""
    folder = resources.files("statusd.store") / "migrations" / dialect
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)
