"""`[schedules]`: on-call rotations in layers, their restrictions and overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from statusd.config.times import is_clock_time, local_datetime, zone_problems
from statusd.core.clock import FIRST_YEAR, LAST_YEAR
from statusd.core.schema import Problems, non_negative, positive

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class RestrictionConfig:
    """`[[...layers.restrictions]]`: a weekly window a layer covers; `end` at or before `start` is the next day."""

    days: list[Weekday] = field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    start: str = "00:00"  # local time the window opens on each of `days`
    end: str = "00:00"  # local time it closes; at or before `start` means the next day

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        return [(key, "expected a time like 09:30") for key in ("start", "end")
                if not is_clock_time(getattr(self, key))]


@dataclass(frozen=True)
class LayerConfig:
    """`[[schedules.<id>.layers]]`: a rotation of participants in shifts of `shift_h` hours from `start`."""

    participants: list[str]
    name: str = ""
    shift_h: float = 12.0
    start: str = "2026-01-05T08:00"  # local time when participants[0] begins the first shift
    restrictions: list[RestrictionConfig] = field(default_factory=list)  # empty = always

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = positive(self.shift_h, "shift_h", at_most=24 * 366)
        if 0 < self.shift_h < 0.25:  # a day of 15-minute shifts is 96; shorter ones only make the schedule huge
            problems.append(("shift_h", "must be at least 0.25 (15 minutes)"))
        if not self.participants:
            problems.append(("participants", "must name at least one person"))
        if len(set(self.participants)) != len(self.participants):
            problems.append(("participants", "lists someone twice"))
        if not local_datetime(self.start):
            problems.append(("start", "expected a local date and time like 2026-01-05T08:00 (no offset)"))
        return problems


@dataclass(frozen=True)
class OverrideConfig:
    """`[[schedules.<id>.overrides]]`: `person` covers from `start` to `end`, over every layer."""

    person: str
    start: str  # local date and time in the schedule's time zone
    end: str

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        start, end = local_datetime(self.start), local_datetime(self.end)
        problems = [(key, f"expected a local date and time like 2026-02-01T08:00 (no offset, years {FIRST_YEAR}-{LAST_YEAR})")
                    for key, value in (("start", start), ("end", end)) if value is None]
        if start is not None and end is not None and end <= start:  # as times: "2026-12-24 09:00" vs "...T08:00"
            problems.append(("end", "must be after start"))
        return problems


@dataclass(frozen=True)
class ScheduleConfig:
    """`[schedules.<id>]`: layered rotations and overrides in one time zone, and when shift notices go out."""

    id: str
    layers: list[LayerConfig]
    timezone: str = "UTC"
    overrides: list[OverrideConfig] = field(default_factory=list)
    shift_notice_s: float = 900.0  # tell each engineer this long before their shift starts; 0 = never

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = zone_problems(self.timezone, "timezone")
        if not self.layers:
            problems.append(("layers", "needs at least one layer"))
        problems += non_negative(self.shift_notice_s, "shift_notice_s")
        return problems
