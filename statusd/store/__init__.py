"""Stores behind the repository protocols of `statusd.core.protocols`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from importlib import resources
from typing import TYPE_CHECKING

from statusd.core.model import URGENT_TEMPLATES

if TYPE_CHECKING:
    from statusd.core.model import ProbeResult


#: Outbox order: messages to the engineers handling an incident are claimed before any other due
#: message. After a surge, thousands of customer acknowledgements queued ahead of a page used to hold
#: it back for minutes while its escalation clock ran.
URGENT_FIRST = f"CASE WHEN template IN ({', '.join(repr(t) for t in URGENT_TEMPLATES)}) THEN 0 ELSE 1 END"


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


def daily_checks(results: Iterable[ProbeResult]) -> dict[tuple[str, date], tuple[int, int, datetime]]:
    """(component, UTC day) → (checks, failures, latest result time) over results that have a component.

    Both stores fold a batch of results into their per-day rollups with this.
    """
    counts: dict[tuple[str, date], tuple[int, int, datetime]] = {}
    for r in results:
        if r.component is None:
            continue
        key = (r.component, r.at.astimezone(UTC).date())
        checks, failures, last = counts.get(key, (0, 0, r.at))
        counts[key] = (checks + 1, failures + (not r.ok), max(last, r.at))
    return counts


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """Numbered migrations of one dialect as (version, name, sql), in order."""
    folder = resources.files("statusd.store") / "migrations" / dialect
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)
