"""Who is on duty at an instant, across shifts, midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from statusd.oncall import Rotation

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
