"""A real update reminder, from the coordinator's timer to the rendered mail, reads as words in the page's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config
from statusd.core.clock import FakeClock
from statusd.core.model import Component, ComponentStatus, Person, Signal
from statusd.incidents.coordinator import Coordinator, PageInfo, Policy
from statusd.incidents.timers import TimerWorker
from statusd.notify.templates import Templates
from statusd.oncall.schedule import Layer, Rotation, Schedule

UTC_TZ = ZoneInfo("UTC")
SCHEDULES = {"primary": Schedule("primary", UTC_TZ, (
    Layer("24/7", Rotation(("ann",), timedelta(days=1), datetime(2026, 1, 5), UTC_TZ)),))}
POLICY = {"levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 3600}], "repeat": 0, "fallback": None}


async def test_one_minute_reminder_in_the_page_time_zone(sqlite_store) -> None:
    clock = FakeClock(datetime(2026, 12, 8, 2, 59, 51, 548655, tzinfo=UTC))
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], clock.now())
    coordinator = Coordinator(sqlite_store, clock, people={"ann": Person("ann", "Ann", {"mail": "ann@example.com"})},
                              schedules=SCHEDULES, escalation_policies={"default": POLICY},
                              policy=Policy(escalation_policy="default", update_reminder_s={"critical": 60.0}),
                              page=PageInfo("Status", "http://status.example.com"))
    await coordinator.handle(Signal(source="probe", dedup_key="probe:api", components=("api",),
                                    severity=ComponentStatus.MAJOR_OUTAGE, summary="api failing", at=clock.now(),
                                    firing=True))
    worker = TimerWorker(sqlite_store, coordinator, clock)
    for _ in range(7):
        await clock.advance(10)
        await worker.fire_due()
    async with sqlite_store.read() as r:
        [reminder] = [m for m in await r.outbox.list() if m.template == "reminder"]
    rendered = Templates(time_zone="Europe/Berlin").render("reminder", reminder.context)
    assert rendered.subject.endswith("no public update for 1 minute")
    assert "no public update for 1 minute (the last was Tue 8 Dec 2026, 03:59 CET)" in rendered.text
    assert "548655" not in rendered.text


async def test_the_server_renders_in_the_page_time_zone(tmp_path, aiohttp_client) -> None:
    config = parse_config({"store": {"path": str(tmp_path / "statusd.db")}, "components": {"api": {"name": "API"}},
                           "page": {"time_zone": "Asia/Tokyo"}}, {})
    client = await aiohttp_client(build_app(config, run_probes=False, run_worker=False))
    worker = client.app[RUNTIME].worker
    assert worker is not None
    rendered = worker.delivery.templates.render("shift", {
        "recipient": {"name": "Ann"}, "shift": {"schedule": "primary", "start": "2026-12-08T00:00:00+00:00",
                                                "end": "2026-12-08T12:00:00+00:00"}})
    assert rendered.text.strip() == ("Ann, you are on call in primary from Tue 8 Dec 2026, 09:00 JST "
                                     "to Tue 8 Dec 2026, 21:00 JST.")
