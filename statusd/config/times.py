"""Time values in config: IANA time zones, clock times and local date-times, as schedules and the page use them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from statusd.core.clock import supported
from statusd.core.schema import Problems


def zone_problems(name: str, key: str) -> Problems:
    """No problem when `name` is an IANA time zone ("Europe/Moscow"); "Europe" is a folder, not a zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return [(key, f"unknown time zone {name!r}; expected an IANA name such as 'Europe/Moscow'")]
    return []


def is_clock_time(value: str) -> bool:
    """Whether `value` is a time of day like 09:30 (hours 0-23, two-digit minutes)."""
    hours, _, minutes = value.partition(":")
    # ASCII digits only: int() also takes "-0" and other scripts' digits, which time.fromisoformat refuses.
    return (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit() and len(minutes) == 2
            and 0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59)


def local_datetime(value: str) -> datetime | None:
    """The local date and time, or None (also outside the supported years, `statusd.core.clock.supported`)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None and supported(parsed) else None
