"""The coordinator: one incident per outage, owned by the duty engineer, written atomically."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from statusd.incidents.coordinator import AUTOMATED_AUTHOR, Coordinator, PageInfo, Policy
from statusd.core.clock import FakeClock
from statusd.core.errors import Conflict, NotFound, ValidationError
from statusd.core.model import (
    Component,
    ComponentStatus,
    EntryKind,
    Impact,
    IncidentStatus,
    Person,
    Signal,
    Subscriber,
)
from statusd.oncall.schedule import Layer, Rotation, Schedule
from statusd.store.sqlite import SqliteStore

PEOPLE = {
    "ann": Person("ann", "Ann Example", {"mail": "ann@example.com", "hooks": "http://127.0.0.1:1/ann"}),
    "bob": Person("bob", "Bob Example", {"mail": "bob@example.com"}),
}
# Ann has the day shift (08:00–20:00 UTC), Bob the night shift.
ROTATION = Rotation(("ann", "bob"), timedelta(hours=12), datetime(2026, 1, 5, 8, 0), ZoneInfo("UTC"))
SCHEDULES = {"primary": Schedule("primary", ZoneInfo("UTC"), (Layer("24/7", ROTATION),))}
POLICIES = {"default": {"levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 300}], "repeat": 0,
                        "fallback": None}}


@pytest.fixture
async def coordinator(sqlite_store: SqliteStore, clock: FakeClock) -> Coordinator:
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "Public API", position=0),
                                  Component("web", "Website", position=1)], clock.now())
        await tx.subscribers.add(Subscriber("mail", "everything@example.com"))
        await tx.subscribers.add(Subscriber("mail", "web-only@example.com", components=("web",)))
    return Coordinator(sqlite_store, clock, people=PEOPLE, schedules=SCHEDULES, escalation_policies=POLICIES,
                       policy=Policy(escalation_policy="default"),
                       page=PageInfo("Example status", "http://status.example.com"))


def signal(clock: FakeClock, *, firing: bool = True, key: str = "probe:api", component: str = "api",
           severity: ComponentStatus = ComponentStatus.MAJOR_OUTAGE) -> Signal:
    return Signal(source="probe", dedup_key=key, components=(component,), severity=severity,
                  summary=f"{key} is failing: HTTP 503" if firing else f"{key} recovered", at=clock.now(),
                  firing=firing, evidence={"status_code": 503})


async def test_signal_opens_one_incident_owned_by_the_duty_engineer(coordinator, sqlite_store, clock) -> None:
    incident = await coordinator.handle(signal(clock))
    assert incident is not None
    assert incident.assignee == "ann"  # 09:00 UTC: Ann's day shift
    assert incident.status is IncidentStatus.INVESTIGATING
    assert incident.impact is Impact.CRITICAL
    assert incident.first_public_update_at == clock.now()
    async with sqlite_store.read() as r:
        assert (await r.components.get("api")).status is ComponentStatus.MAJOR_OUTAGE
        assert (await r.components.get("web")).status is ComponentStatus.OPERATIONAL
        entries = (await r.incidents.entries([incident.id]))[incident.id]
        messages = await r.outbox.list()
    kinds = [e.kind for e in entries]
    assert kinds == [EntryKind.SIGNAL, EntryKind.ASSIGNED, EntryKind.UPDATE]
    assert "Ann Example" in entries[1].body
    assert entries[2].public and entries[2].author == AUTOMATED_AUTHOR
    alerts = sorted((m.notifier, m.recipient) for m in messages if m.template == "alert")
    assert alerts == [("hooks", "http://127.0.0.1:1/ann"), ("mail", "ann@example.com")]
    updates = sorted(m.recipient for m in messages if m.template == "update")
    assert updates == ["everything@example.com"]  # the web-only subscriber is not affected


async def test_night_signal_goes_to_the_night_engineer(coordinator, clock) -> None:
    clock.set(clock.now().replace(hour=23))
    incident = await coordinator.handle(signal(clock))
    assert incident is not None and incident.assignee == "bob"


async def test_flapping_never_opens_a_second_incident(coordinator, sqlite_store, clock) -> None:
    coordinator.policy = Policy(on_recovery="monitoring", escalation_policy="default")
    first = await coordinator.handle(signal(clock))
    await clock.advance(60)
    await coordinator.handle(signal(clock, firing=False))
    await clock.advance(60)
    again = await coordinator.handle(signal(clock))
    assert again is not None and first is not None
    assert again.id == first.id
    assert again.status is IncidentStatus.INVESTIGATING  # the fix did not hold
    async with sqlite_store.read() as r:
        assert len(await r.incidents.list_open()) == 1
        alerts = [m for m in await r.outbox.list() if m.template == "alert"]
    assert len(alerts) == 2  # one per contact of Ann, once


async def test_recovery_resolves_and_restores_the_component(coordinator, sqlite_store, clock) -> None:
    opened = await coordinator.handle(signal(clock))
    await clock.advance(300)
    resolved = await coordinator.handle(signal(clock, firing=False))
    assert opened is not None and resolved is not None and resolved.id == opened.id
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.resolved_at == clock.now()
    async with sqlite_store.read() as r:
        assert (await r.components.get("api")).status is ComponentStatus.OPERATIONAL
        assert await r.incidents.list_open() == []
        messages = await r.outbox.list()
    resolution = [m for m in messages if m.template == "update" and m.context["update"]["status"] == "resolved"]
    # Subscribers and the owning engineer hear about the resolution.
    assert sorted(m.recipient for m in resolution) == ["ann@example.com", "everything@example.com",
                                                        "http://127.0.0.1:1/ann"]


async def test_recovery_keeps_component_down_while_another_incident_claims_it(coordinator, sqlite_store, clock):
    coordinator.policy = Policy(escalation_policy="default", group_window_s=0)  # two separate incidents
    await coordinator.handle(signal(clock, key="probe:a", severity=ComponentStatus.PARTIAL_OUTAGE))
    await coordinator.handle(signal(clock, key="probe:b", severity=ComponentStatus.MAJOR_OUTAGE))
    await coordinator.handle(signal(clock, key="probe:b", firing=False))
    async with sqlite_store.read() as r:
        assert (await r.components.get("api")).status is ComponentStatus.PARTIAL_OUTAGE


async def test_a_signal_that_joined_an_incident_rejoins_it_after_the_grouping_window(coordinator, sqlite_store,
                                                                                      clock) -> None:
    """An alert that joined an open incident is part of it: repeated later, it must not open (and page) a second."""
    first = await coordinator.handle(signal(clock, key="probe:a"))
    await clock.advance(60)
    joined = await coordinator.handle(signal(clock, key="am:dup"))
    assert joined.id == first.id
    await clock.advance(coordinator.policy.group_window_s + 600)  # the grouping window is long over
    again = await coordinator.handle(signal(clock, key="am:dup"))
    assert again.id == first.id
    async with sqlite_store.read() as r:
        assert [i.id for i in await r.incidents.list_open()] == [first.id]
        pages = [m for m in await r.outbox.list() if m.template == "alert"]
    assert {m.context["incident"]["id"] for m in pages} == {first.id}


async def test_recovery_without_incident_is_harmless(coordinator, sqlite_store, clock) -> None:
    assert await coordinator.handle(signal(clock, firing=False)) is None
    async with sqlite_store.read() as r:
        assert await r.outbox.list() == []


async def test_on_recovery_nothing_leaves_it_to_people(coordinator, clock) -> None:
    coordinator.policy = Policy(on_recovery="nothing", escalation_policy="default")
    await coordinator.handle(signal(clock))
    incident = await coordinator.handle(signal(clock, firing=False))
    assert incident is not None and incident.status is IncidentStatus.INVESTIGATING


async def test_manual_lifecycle_is_signed_and_notified(coordinator, sqlite_store, clock) -> None:
    incident = await coordinator.open_incident(title="Slow checkout", body="Checkout is slow.", author="Dana",
                                               components=["web"],
                                               component_status=ComponentStatus.DEGRADED_PERFORMANCE)
    assert incident.impact is Impact.MINOR and incident.assignee == "ann"
    await clock.advance(120)
    acked = await coordinator.acknowledge(incident.id, by="Ann Example")
    assert acked.acknowledged_at == clock.now()
    with pytest.raises(Conflict):
        await coordinator.acknowledge(incident.id, by="Bob Example")
    await clock.advance(60)
    await coordinator.post_update(incident.id, body="Cause found.", author="Dana", status=IncidentStatus.IDENTIFIED)
    await coordinator.post_update(incident.id, body="Quiet update", author="Dana", notify=False)
    resolved = await coordinator.resolve(incident.id, body="Fixed.", author="Dana")
    with pytest.raises(Conflict):
        await coordinator.resolve(incident.id, body="again", author="Dana")
    assert resolved.status is IncidentStatus.RESOLVED
    async with sqlite_store.read() as r:
        public = (await r.incidents.entries([incident.id], public_only=True))[incident.id]
        assert (await r.components.get("web")).status is ComponentStatus.OPERATIONAL
        messages = await r.outbox.list()
    assert [(e.status, e.author) for e in public] == [
        (IncidentStatus.INVESTIGATING, "Dana"), (IncidentStatus.IDENTIFIED, "Dana"),
        (IncidentStatus.IDENTIFIED, "Dana"), (IncidentStatus.RESOLVED, "Dana")]
    bodies = [m.context["update"]["body"] for m in messages if m.template == "update"
              and m.recipient == "web-only@example.com"]
    assert sorted(bodies) == ["Cause found.", "Checkout is slow.", "Fixed."]  # "Quiet update" was not notified


async def test_bad_input_writes_nothing(coordinator, sqlite_store, clock) -> None:
    with pytest.raises(ValidationError) as err:
        await coordinator.open_incident(title="x", body="y", author="Dana", components=["nope"])
    assert err.value.field == "components[0]"
    with pytest.raises(ValidationError):
        await coordinator.open_incident(title="x", body="   ", author="Dana")
    with pytest.raises(NotFound):
        await coordinator.post_update(999, body="y", author="Dana")
    async with sqlite_store.read() as r:
        assert await r.incidents.list_recent(clock.now() - timedelta(days=1)) == []
        assert await r.outbox.list() == []


async def test_incident_entry_and_outbox_commit_together(coordinator, sqlite_store, clock, monkeypatch) -> None:
    from statusd.store.sqlite import SqliteOutbox

    async def broken(self, messages):  # the last write of the unit of work fails
        list(messages)
        raise RuntimeError("disk full")

    monkeypatch.setattr(SqliteOutbox, "enqueue", broken)
    with pytest.raises(RuntimeError):
        await coordinator.handle(signal(clock))
    monkeypatch.undo()
    async with sqlite_store.read() as r:
        assert await r.incidents.list_open() == []
        assert (await r.components.get("api")).status is ComponentStatus.OPERATIONAL
    # And the same signal afterwards opens it normally: no half-written incident blocks the dedup key.
    assert await coordinator.handle(signal(clock)) is not None


async def test_nobody_on_duty_is_recorded(sqlite_store, clock) -> None:
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], clock.now())
    coordinator = Coordinator(sqlite_store, clock, people={}, page=PageInfo("S", "http://s"))
    incident = await coordinator.handle(signal(clock))
    assert incident is not None and incident.assignee is None
    async with sqlite_store.read() as r:
        entries = (await r.incidents.entries([incident.id]))[incident.id]
    assert any("nobody was paged" in e.body for e in entries)
