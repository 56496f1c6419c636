"""Each engineer hears before their shift: once per shift, even across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from statusd.core.clock import FakeClock
from statusd.core.model import Person
from statusd.oncall.notices import ShiftNotices
from statusd.oncall.schedule import Layer, Rotation, Schedule

UTC_TZ = ZoneInfo("UTC")
SCHEDULE = Schedule("primary", UTC_TZ, (Layer("24/7", Rotation(("ann", "bob"), timedelta(hours=12),
                                                                 datetime(2026, 1, 5, 8, 0), UTC_TZ)),))
PEOPLE = {"ann": Person("ann", "Ann", {"mail": "ann@example.com"}),
          "bob": Person("bob", "Bob", {"mail": "bob@example.com", "hooks": "http://127.0.0.1:1/bob"})}


def notices(store, clock) -> ShiftNotices:
    return ShiftNotices(store, clock, {"primary": SCHEDULE}, {"primary": 900}, PEOPLE, "http://status.test")


async def sent(store) -> list[tuple[str, str, str]]:
    async with store.read() as r:
        return sorted((m.recipient, m.context["shift"]["start"], m.template) for m in await r.outbox.list())


async def test_notice_once_within_the_window_before_each_shift(sqlite_store) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))  # Ann's day shift; Bob starts at 20:00
    worker = notices(sqlite_store, clock)
    assert await worker.send_due() == 0  # 60 min before: too early
    clock.set(datetime(2026, 3, 2, 19, 46, tzinfo=UTC))  # 14 min before
    assert await worker.send_due() == 2  # Bob's two contacts
    assert await worker.send_due() == 0  # not twice
    assert await notices(sqlite_store, clock).send_due() == 0  # nor after a restart
    clock.set(datetime(2026, 3, 2, 20, 5, tzinfo=UTC))  # his shift is running: no late notice
    assert await worker.send_due() == 0
    assert await sent(sqlite_store) == [("bob@example.com", "2026-03-02T20:00:00+00:00", "shift"),
                                        ("http://127.0.0.1:1/bob", "2026-03-02T20:00:00+00:00", "shift")]
    clock.set(datetime(2026, 3, 3, 7, 50, tzinfo=UTC))  # Ann next, at 08:00
    assert await worker.send_due() == 1
