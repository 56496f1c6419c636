"""Uptime for the public page and for our own `/api/v1/uptime` (not part of Statuspage's `/api/v2`).

Everything is computed from the daily rollups (`ComponentRepo.uptime`), never from raw
probe results. Uptime is the Statuspage arithmetic of `statusd.core.model.DayUptime`:
major outage counts fully, partial outage at 30 %, degraded performance not at all, and
time under maintenance is left out of the denominator. A day's colour is the worst status
the component had at any moment of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from statusd.core.model import Component, ComponentStatus, DayUptime, uptime_ratio

JSON = dict[str, object]

PAGE_DAYS = 90  # how many days of bars the page shows
MAX_API_DAYS = 366  # /api/v1/uptime?days= accepts 1..this

_LEVEL = {  # CSS class suffix per worst status of a day
    ComponentStatus.OPERATIONAL: "operational",
    ComponentStatus.UNDER_MAINTENANCE: "maintenance",
    ComponentStatus.DEGRADED_PERFORMANCE: "degraded",
    ComponentStatus.PARTIAL_OUTAGE: "partial",
    ComponentStatus.MAJOR_OUTAGE: "major",
}
_SHOWN = (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.DEGRADED_PERFORMANCE,
          ComponentStatus.UNDER_MAINTENANCE)


def percent(ratio: float | None) -> str:
    """An uptime ratio as page text: two decimals, rounded down, so any downtime never shows as 100 %."""
    if ratio is None:
        return "No data"
    if ratio >= 1:
        return "100 %"
    return f"{math.floor(ratio * 10_000) / 100:.2f} %"


def duration(seconds: float) -> str:
    """A duration for people: '40 s', '12 min', '3 h 5 min'."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _spent(day: DayUptime) -> dict[ComponentStatus, float]:
    return {ComponentStatus.MAJOR_OUTAGE: day.major_s, ComponentStatus.PARTIAL_OUTAGE: day.partial_s,
            ComponentStatus.DEGRADED_PERFORMANCE: day.degraded_s,
            ComponentStatus.UNDER_MAINTENANCE: day.maintenance_s, ComponentStatus.OPERATIONAL: day.operational_s}


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"  # strftime would cost more than the rest of a bar


@dataclass(frozen=True, slots=True)
class DayView:
    """One bar: its colour class and the sentence that describes it (tooltip and screen-reader text)."""

    day: date
    level: str  # operational, maintenance, degraded, partial, major, or none (no data)
    text: str

    @classmethod
    def of(cls, day: DayUptime) -> DayView:
        """The bar of one day: the colour class of its worst status and the sentence that describes it."""
        if day.operational_s > 0 and not (day.major_s or day.partial_s or day.degraded_s or day.maintenance_s):
            return cls(day.day, "operational", f"{_date(day.day)}: 100 % uptime")  # most days, quickly
        worst = day.worst
        if worst is None:
            return cls(day.day, "none", f"{_date(day.day)}: no data")
        spent = _spent(day)
        events = [f"{status.label.lower()} {duration(spent[status])}" for status in _SHOWN if spent[status] > 0]
        uptime = day.uptime
        headline = "under maintenance, not counted" if uptime is None else f"{percent(uptime)} uptime"
        detail = f" ({', '.join(events)})" if events else ""
        return cls(day.day, _LEVEL[worst], f"{_date(day.day)}: {headline}{detail}")


@dataclass(frozen=True, slots=True)
class UptimeView:
    """A component's bars, oldest day first, and its uptime over all of them."""

    days: tuple[DayView, ...]
    ratio: float | None

    @property
    def total(self) -> str:
        """The uptime over every day shown, as a percentage for people."""
        return percent(self.ratio)

    @classmethod
    def of(cls, days: Sequence[DayUptime]) -> UptimeView:
        """The bars and the total uptime of `days`."""
        return cls(tuple(DayView.of(d) for d in days), uptime_ratio(days))


def views(uptime: Mapping[str, Sequence[DayUptime]]) -> dict[str, UptimeView]:
    """The page's uptime view per component id."""
    return {cid: UptimeView.of(days) for cid, days in uptime.items()}


def parse_days(raw: str | None) -> int | None:
    """`days` from the query string (default PAGE_DAYS), or None when it is not a whole number in range."""
    if raw is None:
        return PAGE_DAYS
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        return None
    days = int(raw)
    return days if 1 <= days <= MAX_API_DAYS else None


def _day_object(day: DayUptime) -> JSON:
    return {
        "date": day.day.isoformat(),
        "uptime": day.uptime,
        "worst_status": None if day.worst is None else day.worst.value,
        "seconds": {status.value: seconds for status, seconds in _spent(day).items()},
        "checks": day.checks,
        "failures": day.failures,
    }


def component_uptime_objects(components: Sequence[Component], uptime: Mapping[str, Sequence[DayUptime]]) -> list[JSON]:
    """`/api/v1/uptime`'s components: id, name, group and an `uptime` object with the ratio and every day."""
    out: list[JSON] = []
    for c in components:
        days = uptime.get(c.id, [])
        ratio = uptime_ratio(days)
        out.append({"id": c.id, "name": c.name, "group": c.group, "status": c.status.value,
                    "uptime": {"ratio": ratio, "percent": None if ratio is None else round(100 * ratio, 4),
                               "days": [_day_object(d) for d in days]}})
    return out
