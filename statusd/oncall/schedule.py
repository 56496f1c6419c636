"""Who is on duty, as pure functions of time: rotations, layered schedules, overrides.

A rotation hands over every `shift` of local wall-clock time, so a 12-hour rotation with
an 08:00 handoff hands over at 08:00 and 20:00 local all year round; across a DST change
the shift containing it is an hour longer or shorter, as people on such rotations expect.

A schedule stacks layers: a later layer wins wherever it covers (e.g. a weekday
10:00–18:00 peak layer over a 24/7 layer), and an override (a one-off swap) wins over
every layer. `shifts()` turns that into the exact list of who is on call when, which
feeds iCal, coverage-gap checks and shift notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Shift:
    """One stretch of time with one person (or nobody) on call, in UTC."""

    person: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Rotation:
    """Participants take turns in shifts of `shift` length; participants[0] begins at `start` (local time)."""

    participants: tuple[str, ...]
    shift: timedelta
    start: datetime  # naive, local wall-clock time in `tz`
    tz: ZoneInfo

    def index_at(self, at: datetime) -> int | None:
        """The number of the shift covering `at` (0 = the first), or None before the rotation begins."""
        local = at.astimezone(self.tz).replace(tzinfo=None)
        if local < self.start or not self.participants:
            return None
        return (local - self.start) // self.shift

    def shift_at(self, at: datetime) -> Shift | None:
        """The rotation's own shift covering `at` (ignoring other layers)."""
        index = self.index_at(at)
        if index is None:
            return None
        start_local = self.start + index * self.shift
        return Shift(self.participants[index % len(self.participants)], _to_utc(start_local, self.tz),
                     _to_utc(start_local + self.shift, self.tz))

    def on_call(self, at: datetime) -> str | None:
        """The participant whose turn it is at `at`."""
        index = self.index_at(at)
        return None if index is None else self.participants[index % len(self.participants)]

    def handoffs(self, start: datetime, end: datetime) -> list[datetime]:
        """Local wall-clock instants of handoffs that may fall in [start, end], naive."""
        first = self.index_at(start) or 0
        last = self.index_at(end)
        if last is None:
            return [self.start]
        return [self.start + k * self.shift for k in range(max(0, first - 1), last + 2)]


@dataclass(frozen=True, slots=True)
class Restriction:
    """A weekly window in local time; `days` are the days the window starts on. end <= start spans midnight."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        """Whether the naive local time `local` falls in the window (one that wraps midnight included)."""
        t, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)


@dataclass(frozen=True, slots=True)
class Layer:
    """A rotation, optionally limited to weekly windows."""

    name: str
    rotation: Rotation
    restrictions: tuple[Restriction, ...] = ()

    def on_call(self, at: datetime) -> str | None:
        """The layer's participant on call at `at`, or None outside its restrictions."""
        if self.restrictions:
            local = at.astimezone(self.rotation.tz).replace(tzinfo=None)
            if not any(r.covers(local) for r in self.restrictions):
                return None
        return self.rotation.on_call(at)


@dataclass(frozen=True, slots=True)
class Override:
    """`person` takes every shift in [start, end) (UTC-aware)."""

    person: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """Layers (later ones win where they cover) and overrides (the later-listed wins) in one time zone."""

    name: str
    tz: ZoneInfo
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()

    def on_call(self, at: datetime) -> str | None:
        """The person on call at `at`, or None in a coverage gap."""
        for override in reversed(self.overrides):
            if override.start <= at < override.end:
                return override.person
        for layer in reversed(self.layers):
            person = layer.on_call(at)
            if person is not None:
                return person
        return None

    def shifts(self, start: datetime, end: datetime) -> list[Shift]:
        """Who is on call over [start, end), as maximal stretches in UTC (person None = nobody)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        points = sorted({p for p in self._boundaries(start, end) if start < p < end} | {start})
        out: list[Shift] = []
        for i, point in enumerate(points):
            person = self.on_call(point)
            stop = points[i + 1] if i + 1 < len(points) else end
            if out and out[-1].person == person:
                out[-1] = Shift(person, out[-1].start, stop)
            else:
                out.append(Shift(person, point, stop))
        return out

    def shift_at(self, at: datetime, horizon: timedelta = timedelta(days=366)) -> Shift:
        """The whole stretch of `at`'s person (or gap) around `at`, clipped to `at` ± `horizon` if it runs further."""
        at = at.astimezone(UTC)
        back = ahead = min(timedelta(days=2), horizon)
        while True:
            current = next(s for s in self.shifts(at - back, at + ahead) if s.start <= at < s.end)
            # A stretch that reaches the window's edge may go on beyond it: look twice as far that way.
            longer_back = current.start <= at - back and back < horizon
            longer_ahead = current.end >= at + ahead and ahead < horizon
            if not (longer_back or longer_ahead):
                return current
            if longer_back:
                back = min(back * 2, horizon)
            if longer_ahead:
                ahead = min(ahead * 2, horizon)

    def gaps(self, start: datetime, end: datetime) -> list[Shift]:
        """Stretches in [start, end) when nobody is on call."""
        return [s for s in self.shifts(start, end) if s.person is None]

    def _boundaries(self, start: datetime, end: datetime) -> set[datetime]:
        """Every instant where the answer of on_call may change (a superset is fine)."""
        local_points: set[datetime] = set()
        for layer in self.layers:
            local_points.update(layer.rotation.handoffs(start, end))
            if layer.restrictions:
                day = start.astimezone(self.tz).date() - timedelta(days=1)
                last = end.astimezone(self.tz).date() + timedelta(days=1)
                while day <= last:
                    for r in layer.restrictions:
                        local_points.add(datetime.combine(day, r.start))
                        local_points.add(datetime.combine(day, r.end))
                    day += timedelta(days=1)
        out: set[datetime] = set()
        for local in local_points:
            # A wall-clock time may exist twice (autumn) or never (spring): take every reading.
            out.add(local.replace(tzinfo=self.tz, fold=0).astimezone(UTC))
            out.add(local.replace(tzinfo=self.tz, fold=1).astimezone(UTC))
        out.update(_transitions(self.tz, start, end))
        for o in self.overrides:
            out.update((o.start, o.end))
        return out


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in [start, end] where `tz` changes its offset (DST); exact, as offsets change on whole seconds."""
    def offset(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, UTC).astimezone(tz).utcoffset()

    found = []
    t, stop = int(start.timestamp()), int(end.timestamp()) + 1
    while t < stop:
        nxt = min(t + 6 * 3600, stop)
        if offset(t) != offset(nxt):
            lo, hi = t, nxt  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == offset(lo):
                    lo = mid
                else:
                    hi = mid
            found.append(datetime.fromtimestamp(hi, UTC))
        t = nxt
    return found


def _to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    # fold=0 takes the first of two ambiguous instants; a nonexistent one (spring gap) maps forward.
    return local.replace(tzinfo=tz).astimezone(UTC)
