"""The shift around a moment is reported whole, however long it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from statusd.oncall.schedule import Layer, Override, Rotation, Schedule

UTC_ZONE = ZoneInfo("UTC")


def weekly(*people: str) -> Schedule:
    # Handoffs on Mondays 09:00; 2026-03-02 is a Monday.
    rotation = Rotation(people, timedelta(days=7), datetime(2026, 1, 5, 9, 0), UTC_ZONE)
    return Schedule("primary", UTC_ZONE, (Layer("weekly", rotation),))


@pytest.mark.parametrize(("at", "person", "since", "until"), [
    pytest.param(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), "ann", datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                 datetime(2026, 3, 9, 9, 0, tzinfo=UTC), id="mid-week"),
    pytest.param(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "ann", datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                 datetime(2026, 3, 9, 9, 0, tzinfo=UTC), id="at-the-handoff"),
    pytest.param(datetime(2026, 3, 9, 8, 59, tzinfo=UTC), "ann", datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                 datetime(2026, 3, 9, 9, 0, tzinfo=UTC), id="last-minute"),
])
def test_weekly_shift_is_reported_whole(at, person, since, until) -> None:
    shift = weekly("ann", "bob").shift_at(at)
    assert (shift.person, shift.start, shift.end) == (person, since, until)


def test_two_week_override_is_reported_whole() -> None:
    schedule = Schedule("primary", UTC_ZONE, weekly("ann", "bob").layers,
                        (Override("cid", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)),))
    shift = schedule.shift_at(datetime(2026, 3, 8, tzinfo=UTC))
    assert (shift.person, shift.start, shift.end) == ("cid", datetime(2026, 3, 1, tzinfo=UTC),
                                                      datetime(2026, 3, 15, tzinfo=UTC))


def test_endless_shift_is_clipped_to_the_horizon() -> None:
    at = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    shift = weekly("ann").shift_at(at, timedelta(days=30))
    assert (shift.person, shift.start, shift.end) == ("ann", at - timedelta(days=30), at + timedelta(days=30))
