"""Who is on duty at an instant, across shifts, midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from statusd.oncall.schedule import Rotation

BERLIN = ZoneInfo("Europe/Berlin")
ROTA = Rotation(participants=("ann", "bob", "cid"), shift=timedelta(hours=12),
                start=datetime(2026, 1, 5, 8, 0), tz=BERLIN)


def at(local: str) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=BERLIN)


@pytest.mark.parametrize(("when", "who"), [
    pytest.param("2026-01-05T08:00", "ann", id="first-shift-starts"),
    pytest.param("2026-01-05T19:59", "ann", id="end-of-first-shift"),
    pytest.param("2026-01-05T20:00", "bob", id="evening-handoff"),
    pytest.param("2026-01-06T00:00", "bob", id="midnight-inside-night-shift"),
    pytest.param("2026-01-06T08:00", "cid", id="morning-handoff"),
    pytest.param("2026-01-06T20:00", "ann", id="wraps-around"),
    # DST starts 2026-03-29 02:00 → 03:00 in Berlin: handoffs stay at 08:00 and 20:00 local.
    pytest.param("2026-03-29T07:59", None, id="dst-spring-night-shift"),
    pytest.param("2026-03-29T08:00", None, id="dst-spring-handoff-at-local-8"),
    # DST ends 2026-10-25 03:00 → 02:00.
    pytest.param("2026-10-25T08:00", None, id="dst-autumn-handoff-at-local-8"),
])
def test_who_is_on_call(when: str, who: str | None) -> None:
    shift = ROTA.shift_at(at(when))
    assert shift is not None
    if who is not None:
        assert shift.person == who
    # Every shift begins at 08:00 or 20:00 local time, whatever the UTC offset that day.
    assert shift.start.astimezone(BERLIN).strftime("%H:%M") in ("08:00", "20:00")
    assert shift.start <= at(when) < shift.end


def test_shifts_around_dst_are_contiguous_and_keep_the_order() -> None:
    instant = at("2026-03-28T08:00").astimezone(UTC)
    previous = ROTA.shift_at(instant)
    assert previous is not None
    lengths = []
    for _ in range(6):
        nxt = ROTA.shift_at(previous.end)
        assert nxt is not None
        assert nxt.start == previous.end  # no gap, no overlap
        order = ROTA.participants
        assert order.index(nxt.person) == (order.index(previous.person) + 1) % len(order)
        lengths.append((nxt.end - nxt.start).total_seconds() / 3600)
        previous = nxt
    assert 11.0 in lengths  # the night shift that contains the spring gap is an hour short
    assert all(length in (11.0, 12.0) for length in lengths)


def test_before_the_rotation_starts_and_empty_rotation() -> None:
    assert ROTA.on_call(at("2026-01-05T07:59")) is None
    empty = Rotation(participants=(), shift=timedelta(hours=12), start=datetime(2026, 1, 5, 8), tz=BERLIN)
    assert empty.on_call(at("2026-02-01T12:00")) is None


# --- layered schedules ----------------------------------------------------------------------

from datetime import time  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from statusd.oncall.schedule import Layer, Override, Restriction, Schedule  # noqa: E402

WEEKDAYS_10_18 = Restriction(frozenset(range(5)), time(10), time(18))
NIGHTS = Restriction(frozenset(range(7)), time(22), time(6))  # spans midnight
BASE = Layer("24/7", ROTA)  # ann/bob/cid, 12 h from 2026-01-05 08:00 Berlin
PEAK = Layer("peak", Rotation(("pia",), timedelta(days=7), datetime(2026, 1, 5), BERLIN), (WEEKDAYS_10_18,))
NIGHT = Layer("night", Rotation(("nik", "noa"), timedelta(days=1), datetime(2026, 1, 5, 22), BERLIN), (NIGHTS,))
SWAP = Override("zed", at("2026-01-07T09:00").astimezone(UTC), at("2026-01-07T11:00").astimezone(UTC))
LAYERED = Schedule("primary", BERLIN, (BASE, PEAK, NIGHT), (SWAP,))


@pytest.mark.parametrize(("when", "who"), [
    pytest.param("2026-01-05T09:59", "ann", id="base-before-peak"),
    pytest.param("2026-01-05T10:00", "pia", id="peak-layer-wins-on-weekday"),
    pytest.param("2026-01-05T17:59", "pia", id="peak-until-18"),
    pytest.param("2026-01-05T18:00", "ann", id="back-to-base-after-peak"),
    pytest.param("2026-01-10T12:00", "bob", id="no-peak-on-saturday"),
    pytest.param("2026-01-05T22:00", "nik", id="night-layer-starts"),
    pytest.param("2026-01-06T00:00", "nik", id="night-window-spans-midnight"),
    pytest.param("2026-01-06T05:59", "nik", id="night-until-6"),
    pytest.param("2026-01-06T06:00", "bob", id="base-after-night"),
    pytest.param("2026-01-06T22:00", "noa", id="night-rotation-next-day"),
    pytest.param("2026-01-07T09:00", "zed", id="override-beats-base"),
    pytest.param("2026-01-07T10:30", "zed", id="override-beats-peak"),
    pytest.param("2026-01-07T11:00", "pia", id="override-ends"),
    pytest.param("2026-03-30T10:00", "pia", id="peak-after-dst-start"),
    pytest.param("2026-03-29T23:00", "noa", id="night-after-dst-start"),
])
def test_layered_schedule(when: str, who: str) -> None:
    assert LAYERED.on_call(at(when)) == who


def test_shifts_merge_and_report_gaps() -> None:
    peak_only = Schedule("peak", BERLIN, (PEAK,))
    start, end = at("2026-01-05T00:00"), at("2026-01-07T00:00")
    shifts = peak_only.shifts(start, end)
    assert [(s.person, s.start.astimezone(BERLIN).strftime("%d %H:%M")) for s in shifts] == [
        (None, "05 00:00"), ("pia", "05 10:00"), (None, "05 18:00"), ("pia", "06 10:00"), (None, "06 18:00")]
    gaps = peak_only.gaps(start, end)
    assert sum((g.end - g.start).total_seconds() for g in gaps) / 3600 == 48 - 16
    full = LAYERED.shifts(start, end)
    assert all(a.end == b.start for a, b in zip(full, full[1:]))  # contiguous
    assert all(a.person != b.person for a, b in zip(full, full[1:]))  # maximal
    # Before the 24/7 rotation begins (08:00 on the 5th) only the night layer could cover: a gap.
    [gap] = LAYERED.gaps(start, end)
    assert (gap.start, gap.end) == (start.astimezone(UTC), at("2026-01-05T08:00").astimezone(UTC))
    assert LAYERED.gaps(at("2026-01-05T08:00"), end) == []


# --- property: the sweep agrees with an independent model at every instant -----------------

ZONES = [ZoneInfo("UTC"), BERLIN, ZoneInfo("America/New_York")]
SAFE_HOURS = [h for h in range(24) if h not in (1, 2, 3)]  # avoid DST-ambiguous wall times at edges


def explicit_intervals(layer: Layer, tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime, str]]:
    """Each shift of a layer as a UTC interval, clipped to its restriction windows — by enumeration, not arithmetic."""
    rota = layer.rotation
    out = []
    k = 0
    while True:
        start_local = rota.start + k * rota.shift
        start = start_local.replace(tzinfo=tz).astimezone(UTC)
        if start >= hi:
            break
        end = (start_local + rota.shift).replace(tzinfo=tz).astimezone(UTC)
        if end > lo:
            out.append((start, end, rota.participants[k % len(rota.participants)]))
        k += 1
    if not layer.restrictions:
        return out
    windows = []
    day = lo.astimezone(tz).date() - timedelta(days=2)
    while day <= hi.astimezone(tz).date() + timedelta(days=1):
        for r in layer.restrictions:
            if day.weekday() in r.days:
                w_start = datetime.combine(day, r.start)
                w_end = datetime.combine(day + timedelta(days=1) if r.end <= r.start else day, r.end)
                windows.append((w_start.replace(tzinfo=tz).astimezone(UTC), w_end.replace(tzinfo=tz).astimezone(UTC)))
        day += timedelta(days=1)
    clipped = []
    for s, e, p in out:
        for ws, we in windows:
            if max(s, ws) < min(e, we):
                clipped.append((max(s, ws), min(e, we), p))
    return clipped


def expected_on_call(intervals_per_layer, overrides, t: datetime) -> str | None:
    for o in reversed(overrides):
        if o.start <= t < o.end:
            return o.person
    for intervals in reversed(intervals_per_layer):
        for s, e, p in intervals:
            if s <= t < e:
                return p
    return None


@st.composite
def schedules(draw):
    tz = draw(st.sampled_from(ZONES))
    layers = []
    for i in range(draw(st.integers(1, 3))):
        people = tuple(draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=3,
                                     unique=True)))
        shift_h = draw(st.sampled_from([4, 8, 12, 24, 48, 168]))
        start = datetime(2026, draw(st.integers(1, 11)), draw(st.integers(1, 28)), draw(st.sampled_from(SAFE_HOURS)))
        restrictions = ()
        if i > 0 and draw(st.booleans()):
            days = frozenset(draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True)))
            r_start = time(draw(st.sampled_from(SAFE_HOURS)))
            r_end = time(draw(st.sampled_from(SAFE_HOURS)))
            restrictions = (Restriction(days, r_start, r_end),)
        layers.append(Layer(f"l{i}", Rotation(people, timedelta(hours=shift_h), start, tz), restrictions))
    overrides = []
    for _ in range(draw(st.integers(0, 2))):
        o_start = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 300)))
        overrides.append(Override("zed", o_start, o_start + timedelta(hours=draw(st.integers(1, 72)))))
    return Schedule("s", tz, tuple(layers), tuple(overrides))


@settings(max_examples=60, deadline=None)
@given(schedule=schedules(), offset_h=st.integers(0, 24 * 320), span_h=st.integers(1, 24 * 10))
def test_exactly_the_expected_person_is_on_call_everywhere(schedule: Schedule, offset_h: int, span_h: int) -> None:
    lo = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=offset_h)
    hi = lo + timedelta(hours=span_h)
    intervals = [explicit_intervals(layer, schedule.tz, lo, hi) for layer in schedule.layers]
    shifts = schedule.shifts(lo, hi)
    assert shifts[0].start == lo and shifts[-1].end == hi
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:]))
    # Every shift boundary and a dense sample of instants: the sweep, the pointwise answer and the model agree.
    instants = {lo + timedelta(minutes=17 * k) for k in range(int(span_h * 60 / 17))}
    instants |= {s.start for s in shifts} | {s.end - timedelta(seconds=1) for s in shifts}
    for t in sorted(i for i in instants if lo <= i < hi):
        covering = next(s for s in shifts if s.start <= t < s.end)
        expected = expected_on_call(intervals, schedule.overrides, t)
        assert schedule.on_call(t) == expected, t
        assert covering.person == expected, t
