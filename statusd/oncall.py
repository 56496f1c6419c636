"""Who is on duty: a rotation of people in fixed-length shifts, as a pure function of time.

Shifts are counted in the rotation's local wall-clock time, so a 12-hour rotation with a
08:00 handoff hands over at 08:00 and 20:00 local time all year round; across a DST change
the shift that contains it is an hour longer or shorter, as people on such rotations expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Shift:
    """One person's shift, in UTC."""

    person: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Rotation:
    """Participants take turns in shifts of `shift` length; participants[0] begins at `start` (local time)."""

    participants: tuple[str, ...]
    shift: timedelta
    start: datetime  # naive, local wall-clock time in `tz`
    tz: ZoneInfo

    def shift_at(self, at: datetime) -> Shift | None:
        """The shift covering instant `at`, or None when the rotation is empty or has not begun."""
        if not self.participants or at.tzinfo is None:
            return None
        local = at.astimezone(self.tz).replace(tzinfo=None)
        if local < self.start:
            return None
        index = (local - self.start) // self.shift
        start_local = self.start + index * self.shift
        person = self.participants[index % len(self.participants)]
        return Shift(person, _to_utc(start_local, self.tz), _to_utc(start_local + self.shift, self.tz))

    def on_call(self, at: datetime) -> str | None:
        """The person on duty at `at`."""
        shift = self.shift_at(at)
        return shift.person if shift else None


def _to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    # fold=0 takes the first of two ambiguous instants; a nonexistent one (spring gap) maps forward.
    return local.replace(tzinfo=tz).astimezone(UTC)
