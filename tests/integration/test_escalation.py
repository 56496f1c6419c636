"""Escalation, acknowledgement, handoff and reminders as timelines on a fake clock: who was paged when, how often."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from statusd.incidents.coordinator import Coordinator, PageInfo, Policy
from statusd.core.clock import FakeClock
from statusd.core.errors import Conflict
from statusd.core.model import Component, ComponentStatus, EntryKind, IncidentStatus, Person, Signal
from statusd.web.signing import Signer
from statusd.oncall.schedule import Layer, Restriction, Rotation, Schedule
from statusd.store.sqlite import SqliteStore
from statusd.incidents.timers import TimerWorker

UTC_TZ = ZoneInfo("UTC")
MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday; Ann's day shift
PEOPLE = {p: Person(p, p.capitalize(), {"mail": f"{p}@example.com"}) for p in ("ann", "bob", "cid", "dan")}
SCHEDULES = {"primary": Schedule("primary", UTC_TZ, (
    Layer("24/7", Rotation(("ann", "bob"), timedelta(hours=12), datetime(2026, 1, 5, 8, 0), UTC_TZ)),
    Layer("peak", Rotation(("cid",), timedelta(days=7), datetime(2026, 1, 5), UTC_TZ),
          (Restriction(frozenset(range(5)), time(10), time(18)),)),
))}
POLICY = {"levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 300},
                     {"targets": ["dan"], "ack_timeout_s": 300}],
          "repeat": 1, "fallback": {"notifier": "mail", "address": "team@example.com"}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_9)


def make_coordinator(store: SqliteStore, clock: FakeClock, policy: dict | None = None, **kw) -> Coordinator:
    return Coordinator(store, clock, people=PEOPLE, schedules=SCHEDULES,
                       escalation_policies={"default": policy or POLICY},
                       policy=Policy(escalation_policy="default",
                                     update_reminder_s=kw.pop("reminders", {"critical": 900.0})),
                       page=PageInfo("Status", "http://status.example.com"), signer=Signer("k" * 32), **kw)


@pytest.fixture
async def coordinator(sqlite_store: SqliteStore, clock: FakeClock) -> Coordinator:
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], clock.now())
    return make_coordinator(sqlite_store, clock)


def outage(clock: FakeClock, firing: bool = True) -> Signal:
    return Signal(source="probe", dedup_key="probe:api", components=("api",), severity=ComponentStatus.MAJOR_OUTAGE,
                  summary="api failing", at=clock.now(), firing=firing)


async def pages(store: SqliteStore, template: str = "alert") -> list[tuple[int, str]]:
    """(seconds since 09:00, recipient) of every message of `template`, in order."""
    async with store.read() as r:
        messages = sorted(await r.outbox.list(1000), key=lambda m: m.id or 0)
    return [(int((m.created_at - MONDAY_9).total_seconds()), m.recipient.split("@")[0])
            for m in messages if m.template == template]


async def run_for(clock: FakeClock, worker: TimerWorker, seconds: int, step: int = 10) -> None:
    for _ in range(seconds // step):
        await clock.advance(step)
        await worker.fire_due()


async def test_nobody_acknowledges_levels_repeat_then_fallback(coordinator, sqlite_store, clock) -> None:
    worker = TimerWorker(sqlite_store, coordinator, clock)
    incident = await coordinator.handle(outage(clock))
    assert incident is not None and incident.assignee == "ann"
    await run_for(clock, worker, 3600)
    assert await pages(sqlite_store) == [(0, "ann"), (300, "dan"), (600, "ann"), (900, "dan"), (1200, "team")]
    async with sqlite_store.read() as r:
        assert await r.timers.pending(incident.id) == [] or all(
            t.kind == "remind" for t in await r.timers.pending(incident.id))
        entries = (await r.incidents.entries([incident.id]))[incident.id]
    escalations = [e.body for e in entries if e.kind == EntryKind.ESCALATED]
    assert escalations[0] == "No acknowledgement within 5 min: paged Dan (level 2)"
    assert "notified team@example.com" in escalations[-1]


async def test_acknowledge_stops_escalation_and_makes_a_commander(coordinator, sqlite_store, clock) -> None:
    worker = TimerWorker(sqlite_store, coordinator, clock)
    incident = await coordinator.handle(outage(clock))
    await run_for(clock, worker, 400)  # Dan was paged at 300
    acked = await coordinator.acknowledge(incident.id, by="Dan", person="dan")
    assert acked.commander == "dan" and acked.acknowledged_at == MONDAY_9 + timedelta(seconds=400)
    await run_for(clock, worker, 3600)
    assert await pages(sqlite_store) == [(0, "ann"), (300, "dan")]
    with pytest.raises(Conflict):
        await coordinator.acknowledge(incident.id, by="Ann", person="ann")


async def test_resolve_stops_everything(coordinator, sqlite_store, clock) -> None:
    worker = TimerWorker(sqlite_store, coordinator, clock)
    incident = await coordinator.handle(outage(clock))
    await run_for(clock, worker, 100)
    await coordinator.handle(outage(clock, firing=False))
    await run_for(clock, worker, 3600)
    assert await pages(sqlite_store) == [(0, "ann")]
    async with sqlite_store.read() as r:
        assert await r.timers.pending(incident.id) == []


@pytest.mark.parametrize("first", ["ack", "resolve"])
async def test_ack_racing_auto_resolve_has_one_outcome(coordinator, sqlite_store, clock, first) -> None:
    incident = await coordinator.handle(outage(clock))
    if first == "ack":
        await coordinator.acknowledge(incident.id, by="Ann", person="ann")
        resolved = await coordinator.handle(outage(clock, firing=False))
        assert resolved.status is IncidentStatus.RESOLVED and resolved.commander == "ann"
    else:
        await coordinator.handle(outage(clock, firing=False))
        with pytest.raises(Conflict):
            await coordinator.acknowledge(incident.id, by="Ann", person="ann")
    async with sqlite_store.read() as r:
        final = await r.incidents.get(incident.id)
        assert final.status is IncidentStatus.RESOLVED
        assert await r.timers.pending(incident.id) == []


async def test_peak_layer_wins_during_peak_hours(coordinator, sqlite_store, clock) -> None:
    clock.set(MONDAY_9.replace(hour=11))
    incident = await coordinator.handle(outage(clock))
    assert incident.assignee == "cid"
    clock.set(MONDAY_9.replace(hour=23))
    await coordinator.handle(outage(clock, firing=False))
    other = Signal(source="probe", dedup_key="probe:web", components=("api",), severity=ComponentStatus.MAJOR_OUTAGE,
                   summary="web failing", at=clock.now())
    night = await coordinator.handle(other)
    assert night.assignee == "bob"


async def test_handoff_is_explicit_and_must_be_accepted(coordinator, sqlite_store, clock) -> None:
    worker = TimerWorker(sqlite_store, coordinator, clock)
    incident = await coordinator.handle(outage(clock))
    await coordinator.acknowledge(incident.id, by="Ann", person="ann")
    handed = await coordinator.hand_off(incident.id, to="bob", note="my shift ends", by="Ann", person="ann")
    assert handed.commander == "ann" and handed.handoff["to"] == "bob"  # nothing changes silently
    await run_for(clock, worker, 310)  # not accepted within 5 minutes: both hear about it
    assert await pages(sqlite_store, "handoff") == [(0, "bob"), (300, "bob"), (300, "ann")]
    accepted = await coordinator.acknowledge(incident.id, by="Bob", person="bob")
    assert accepted.commander == "bob" and accepted.handoff is None
    await run_for(clock, worker, 600)
    assert len(await pages(sqlite_store, "handoff")) == 3
    async with sqlite_store.read() as r:
        entries = (await r.incidents.entries([incident.id]))[incident.id]
    handoffs = [e.body for e in entries if e.kind == EntryKind.HANDOFF]
    assert handoffs[0] == "Handoff from Ann to Bob requested: my shift ends"
    assert handoffs[-1] == "Bob accepted the handoff from Ann"


async def test_update_reminders_follow_the_last_public_update(coordinator, sqlite_store, clock) -> None:
    worker = TimerWorker(sqlite_store, coordinator, clock)
    incident = await coordinator.handle(outage(clock))  # automatic first update at 0; critical → 900 s
    await coordinator.acknowledge(incident.id, by="Ann", person="ann")
    await coordinator.set_comms(incident.id, person="cid", by="Ann")
    await run_for(clock, worker, 1000)
    assert await pages(sqlite_store, "reminder") == [(900, "ann"), (900, "cid")]
    await coordinator.post_update(incident.id, body="Still on it.", author="Cid")  # at 1000
    await run_for(clock, worker, 1000)
    # counted from the update at 1000, not from the last reminder
    assert await pages(sqlite_store, "reminder") == [(900, "ann"), (900, "cid"), (1900, "ann"), (1900, "cid")]
    await run_for(clock, worker, 1000)
    reminders = await pages(sqlite_store, "reminder")
    assert reminders[-2:] == [(2800, "ann"), (2800, "cid")]  # repeats until someone writes


async def test_a_level_with_nobody_on_call_is_skipped(sqlite_store, clock) -> None:
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], clock.now())
    empty = {"nobody": Schedule("nobody", UTC_TZ, ())}
    coordinator = Coordinator(sqlite_store, clock, people=PEOPLE, schedules=empty,
                              escalation_policies={"p": {"levels": [{"targets": ["schedule:nobody"],
                                                                     "ack_timeout_s": 60},
                                                                    {"targets": ["dan"], "ack_timeout_s": 60}],
                                                         "repeat": 0, "fallback": None}},
                              policy=Policy(escalation_policy="p"), page=PageInfo("S", "http://s"))
    incident = await coordinator.handle(outage(clock))
    assert incident.assignee == "dan"
    assert await pages(sqlite_store) == [(0, "dan")]


async def test_policy_is_snapshotted_when_the_incident_opens(coordinator, sqlite_store, clock) -> None:
    worker = TimerWorker(sqlite_store, coordinator, clock)
    incident = await coordinator.handle(outage(clock))
    coordinator.escalation_policies["default"] = {"levels": [{"targets": ["cid"], "ack_timeout_s": 10}],
                                                  "repeat": 0, "fallback": None}
    await run_for(clock, worker, 310)
    assert await pages(sqlite_store) == [(0, "ann"), (300, "dan")]  # the edit did not change this escalation
    assert incident.escalation["levels"][1]["targets"] == ["dan"]


async def test_a_restart_continues_the_escalation_once(coordinator, sqlite_store, clock) -> None:
    incident = await coordinator.handle(outage(clock))
    await clock.advance(1000)  # statusd was down from 0 to 1000: the 300 s step is overdue
    restarted = make_coordinator(sqlite_store, clock)
    worker = TimerWorker(sqlite_store, restarted, clock)
    assert await worker.fire_due() == 2  # the overdue escalation step and the overdue update reminder
    assert await worker.fire_due() == 0  # not twice
    assert await pages(sqlite_store) == [(0, "ann"), (1000, "dan")]
    assert await pages(sqlite_store, "reminder") == [(1000, "ann")]
    assert incident.id is not None


async def test_signal_returning_after_resolution_reopens_the_same_incident(coordinator, sqlite_store, clock) -> None:
    first = await coordinator.handle(outage(clock))
    await clock.advance(60)
    await coordinator.handle(outage(clock, firing=False))
    await clock.advance(600)  # within reopen_window_s (1800)
    again = await coordinator.handle(outage(clock))
    assert again.id == first.id and again.status is IncidentStatus.INVESTIGATING and again.resolved_at is None
    assert await pages(sqlite_store) == [(0, "ann"), (660, "ann")]  # paged again for the re-opened incident
    await coordinator.handle(outage(clock, firing=False))
    await clock.advance(3600)  # past the window: a new incident
    third = await coordinator.handle(outage(clock))
    assert third.id != first.id


async def test_ack_links_are_signed_per_person(coordinator, sqlite_store, clock) -> None:
    await coordinator.handle(outage(clock))
    async with sqlite_store.read() as r:
        [alert] = [m for m in await r.outbox.list() if m.template == "alert"]
    url = alert.context["actions"][0]["url"]
    incident_id, person, sig = url.rsplit("/", 3)[1:]
    assert person == "ann" and coordinator.signer.verify(sig, "ack", int(incident_id), "ann")
    assert not coordinator.signer.verify(sig, "ack", int(incident_id), "bob")


async def test_postmortem_only_after_resolution(coordinator, sqlite_store, clock) -> None:
    incident = await coordinator.handle(outage(clock))
    with pytest.raises(Conflict):
        await coordinator.publish_postmortem(incident.id, body="# Why", author="Ann", notify=False)
    await coordinator.handle(outage(clock, firing=False))
    published = await coordinator.publish_postmortem(incident.id, body="# Why\n\nA bad deploy.", author="Ann",
                                                     notify=True)
    assert published.status is IncidentStatus.POSTMORTEM and published.postmortem.startswith("# Why")


async def test_merge_combines_timelines_and_routes_the_detector(coordinator, sqlite_store, clock) -> None:
    manual = await coordinator.open_incident(title="Checkout is failing", body="Looking into it.", author="Dana")
    probe = await coordinator.handle(outage(clock))
    merged = await coordinator.merge(probe.id, into=manual.id, by="Dana")
    assert merged.id == manual.id and "api" in merged.components and merged.dedup_key == "probe:api"
    async with sqlite_store.read() as r:
        source = await r.incidents.get(probe.id)
        target_entries = (await r.incidents.entries([manual.id]))[manual.id]
        assert await r.timers.pending(probe.id) == []
    assert source.merged_into == manual.id and source.resolved_at is not None
    assert any(e.data.get("merged_from") == probe.id and e.kind == EntryKind.SIGNAL for e in target_entries)
    # The probe recovering now resolves the incident it was merged into.
    resolved = await coordinator.handle(outage(clock, firing=False))
    assert resolved.id == manual.id and resolved.status is IncidentStatus.RESOLVED
    with pytest.raises(Conflict):
        await coordinator.merge(probe.id, into=manual.id, by="Dana")
    # The postmortem belongs to the incident the story went on in, not to the merged one (closed, but not resolved).
    with pytest.raises(Conflict, match=f"merged into incident {manual.id}"):
        await coordinator.publish_postmortem(probe.id, body="# Why", author="Dana", notify=True)
    async with sqlite_store.read() as r:
        assert (await r.incidents.get(probe.id)).postmortem is None
        assert [m for m in await r.outbox.list(100) if m.template == "postmortem"] == []
    assert (await coordinator.publish_postmortem(manual.id, body="# Why", author="Dana", notify=False)).postmortem


async def test_the_postmortem_409_of_a_merged_incident_names_the_end_of_the_merge_chain(coordinator, clock) -> None:
    first = await coordinator.open_incident(title="Checkout is failing", body="Looking.", author="Dana")
    second = await coordinator.open_incident(title="Payments are slow", body="Looking.", author="Dana")
    third = await coordinator.open_incident(title="Card payments down", body="Looking.", author="Dana")
    await coordinator.merge(first.id, into=second.id, by="Dana")
    await coordinator.merge(second.id, into=third.id, by="Dana")
    with pytest.raises(Conflict, match=f"incident {first.id} was merged into incident {third.id};"):
        await coordinator.publish_postmortem(first.id, body="# Why", author="Dana", notify=False)


async def test_a_second_detector_on_the_same_component_joins_the_open_incident(coordinator, sqlite_store, clock):
    first = await coordinator.handle(outage(clock))
    await clock.advance(120)  # within group_window_s (300)
    alert = Signal(source="alertmanager", dedup_key="alertmanager:abc", components=("api",),
                   severity=ComponentStatus.PARTIAL_OUTAGE, summary="ApiErrors firing", at=clock.now())
    joined = await coordinator.handle(alert)
    assert joined.id == first.id
    assert await pages(sqlite_store) == [(0, "ann")]  # nobody paged twice for one outage
    async with sqlite_store.read() as r:
        assert len(await r.incidents.list_open()) == 1
    await clock.advance(600)  # outside the window: another detector's signal is a new incident
    later = Signal(source="alertmanager", dedup_key="alertmanager:def", components=("api",),
                   severity=ComponentStatus.PARTIAL_OUTAGE, summary="ApiLatency firing", at=clock.now())
    assert (await coordinator.handle(later)).id != first.id
