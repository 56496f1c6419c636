"""The incident lifecycle table, pair by pair: what every event does in every status, on the fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from statusd.core.clock import FakeClock
from statusd.core.errors import Conflict, StatusdError, ValidationError
from statusd.core.model import Impact, Incident, IncidentStatus
from statusd.incidents import lifecycle
from statusd.incidents.lifecycle import Event

I, D, M, R, P = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING,
                 IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)
STATUSES = (I, D, M, R, P)
STAY, IGNORED = "stay", "ignored"

# Written out by hand, independently of lifecycle.TABLE: one row per event, one column per status
# (investigating, identified, monitoring, resolved, postmortem). A status is where the incident moves;
# STAY keeps its status; IGNORED does nothing (a timer that came due too late); an error class with the
# start of its message is what the API answered before the table existed.
NOT_OPEN = (Conflict, "is already")
EXPECTED: dict[Event, tuple[Any, Any, Any, Any, Any]] = {
    Event.REFIRE: (STAY, STAY, I, NOT_OPEN, NOT_OPEN),
    Event.JOIN: (STAY, STAY, STAY, NOT_OPEN, NOT_OPEN),
    Event.REOPEN: ((Conflict, "is still open"),) * 3 + (I, I),
    Event.INVESTIGATE: (I, I, I, NOT_OPEN, NOT_OPEN),
    Event.IDENTIFY: (D, D, D, NOT_OPEN, NOT_OPEN),
    Event.MONITOR: (M, M, M, NOT_OPEN, NOT_OPEN),
    Event.RESOLVE: (R, R, R, NOT_OPEN, NOT_OPEN),
    Event.ACK: (STAY, STAY, STAY, NOT_OPEN, NOT_OPEN),
    Event.HAND_OFF: (STAY, STAY, STAY, NOT_OPEN, NOT_OPEN),
    Event.ACCEPT: (STAY, STAY, STAY, NOT_OPEN, NOT_OPEN),
    Event.SET_COMMS: (STAY, STAY, STAY, NOT_OPEN, NOT_OPEN),
    Event.MERGE: (R, R, R, NOT_OPEN, NOT_OPEN),
    Event.ABSORB: (STAY, STAY, STAY, (ValidationError, "into: incident 7 does not exist or is not open"),
                   (ValidationError, "into: incident 7 does not exist or is not open")),
    Event.POSTMORTEM: ((Conflict, "incident 7 is not resolved yet"),) * 3 + (P, P),
    Event.ESCALATE: (STAY, STAY, STAY, IGNORED, IGNORED),
    Event.REMIND: (STAY, STAY, STAY, IGNORED, IGNORED),
    Event.HANDOFF_DUE: (STAY, STAY, STAY, IGNORED, IGNORED),
}

HANDOFF = {"from": "ann", "to": "bob", "note": "my shift ends", "at": "2026-01-05T08:00:00+00:00"}
ESCALATION = {"policy": "default", "epoch": 1, "levels": [{"targets": ["ann"], "ack_timeout_s": 300}], "repeat": 0,
              "fallback": None}
# What each event's caller passes along (lifecycle.DATA).
DATA: dict[Event, dict[str, Any]] = {
    Event.JOIN: {"components": ("api", "web"), "impact": Impact.CRITICAL},
    Event.ACK: {"acknowledged_by": "Bob", "commander": "bob"},
    Event.HAND_OFF: {"handoff": HANDOFF},
    Event.ACCEPT: {"commander": "bob"},
    Event.SET_COMMS: {"comms": "cid"},
    Event.MERGE: {"merged_into": 8},
    Event.ABSORB: {"components": ("api", "db"), "impact": Impact.CRITICAL, "dedup_key": "probe:db"},
    Event.POSTMORTEM: {"postmortem": "# Why"},
    Event.IDENTIFY: {"impact": Impact.MINOR},
}


def incident_in(status: IncidentStatus, clock: FakeClock) -> Incident:
    """Incident 7 as it is in `status`: opened an hour ago, unacknowledged, with a handoff pending while open."""
    opened = clock.now() - timedelta(hours=1)
    closed = not status.is_open
    return Incident(id=7, title="API: major outage", status=status, impact=Impact.MAJOR, components=("api",),
                    opened_at=opened, updated_at=opened, source="probe", dedup_key="probe:api", assignee="ann",
                    resolved_at=opened + timedelta(minutes=30) if closed else None,
                    handoff=None if closed else HANDOFF, escalation=ESCALATION,
                    postmortem="# Old" if status is P else None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_the_table_has_every_pair_and_the_expectations_every_event() -> None:
    assert set(lifecycle.TABLE) == {(status, event) for status in IncidentStatus for event in Event}
    assert set(EXPECTED) == set(Event) and set(STATUSES) == set(IncidentStatus)
    assert set(lifecycle.DATA) == set(Event)


@pytest.mark.parametrize(("status", "event", "expected"), [
    pytest.param(status, event, row[i], id=f"{status.value}+{event.value}")
    for event, row in EXPECTED.items() for i, status in enumerate(STATUSES)
])
def test_every_event_in_every_status(clock: FakeClock, status: IncidentStatus, event: Event, expected: Any) -> None:
    incident = incident_in(status, clock)
    now = clock.now()
    data = DATA.get(event, {})
    if isinstance(expected, tuple):
        error, message = expected
        with pytest.raises(error, match=message):
            lifecycle.check(incident, event)
        with pytest.raises(error, match=message):
            lifecycle.apply(incident, event, now, **data)
    elif expected == IGNORED:
        assert lifecycle.check(incident, event) is False
        with pytest.raises(Conflict, match="no longer applies"):
            lifecycle.apply(incident, event, now, **data)
    else:
        assert lifecycle.check(incident, event) is True
        after = lifecycle.apply(incident, event, now, **data)
        assert after.status is (status if expected == STAY else expected)
        assert after.updated_at == now
        assert {name: getattr(after, name) for name in data} == data
        assert after.opened_at == incident.opened_at and after.id == incident.id


def test_a_refused_event_changes_nothing(clock: FakeClock) -> None:
    incident = incident_in(R, clock)
    with pytest.raises(Conflict):
        lifecycle.apply(incident, Event.ACK, clock.now(), acknowledged_by="Ann", commander="ann")
    assert incident.acknowledged_at is None and incident.status is R  # frozen: the caller's copy is untouched


GUARDS = [
    # (what the status alone does not say, event, outcome)
    pytest.param({"acknowledged_at": True}, Event.ACK, (Conflict, "incident 7 was already acknowledged by Ann"),
                 id="investigating(acknowledged)+ack"),
    pytest.param({"acknowledged_at": True}, Event.ESCALATE, IGNORED, id="investigating(acknowledged)+escalate"),
    pytest.param({"acknowledged_at": True}, Event.REMIND, STAY, id="investigating(acknowledged)+remind"),
    pytest.param({"handoff": None}, Event.ACCEPT, (Conflict, "has no handoff to accept"),
                 id="investigating(no handoff)+accept"),
    pytest.param({"handoff": None}, Event.HANDOFF_DUE, IGNORED, id="investigating(no handoff)+handoff_due"),
    pytest.param({"handoff": None}, Event.HAND_OFF, STAY, id="investigating(no handoff)+hand_off"),
]


@pytest.mark.parametrize(("fields", "event", "expected"), GUARDS)
def test_what_the_status_alone_does_not_decide(clock: FakeClock, fields: dict[str, Any], event: Event,
                                               expected: Any) -> None:
    changes = dict(fields)
    if changes.pop("acknowledged_at", None):
        changes.update(acknowledged_at=clock.now() - timedelta(minutes=5), acknowledged_by="Ann")
    incident = replace(incident_in(I, clock), **changes)
    if isinstance(expected, tuple):
        with pytest.raises(expected[0], match=expected[1]):
            lifecycle.check(incident, event)
    else:
        assert lifecycle.check(incident, event) is (expected == STAY)


async def test_each_event_sets_its_own_fields_at_the_clocks_time(clock: FakeClock) -> None:
    open_ = incident_in(I, clock)
    await clock.advance(90)
    now = clock.now()
    acked = lifecycle.apply(open_, Event.ACK, now, acknowledged_by="Ann", commander="ann")
    assert (acked.acknowledged_at, acked.acknowledged_by, acked.commander) == (now, "Ann", "ann")
    accepted = lifecycle.apply(open_, Event.ACCEPT, now, commander="bob")
    assert accepted.commander == "bob" and accepted.handoff is None
    resolved = lifecycle.apply(open_, Event.RESOLVE, now)
    assert resolved.resolved_at == now and resolved.handoff is None and resolved.dedup_key == "probe:api"
    merged = lifecycle.apply(open_, Event.MERGE, now, merged_into=8)
    assert (merged.status, merged.resolved_at, merged.merged_into, merged.dedup_key, merged.handoff) == (
        R, now, 8, None, None)
    published = lifecycle.apply(postmortem_of(open_, now), Event.POSTMORTEM, now, postmortem="# Why")
    assert published.postmortem_at == now and published.postmortem == "# Why"


def postmortem_of(incident: Incident, now: datetime) -> Incident:
    return replace(incident, status=R, resolved_at=now, handoff=None)


async def test_reopening_pages_afresh_and_keeps_the_postmortem(clock: FakeClock) -> None:
    closed = replace(incident_in(P, clock), acknowledged_at=clock.now(), acknowledged_by="Ann")
    await clock.advance(600)
    reopened = lifecycle.apply(closed, Event.REOPEN, clock.now())
    assert reopened.status is I and reopened.resolved_at is None
    assert reopened.acknowledged_at is None and reopened.acknowledged_by is None
    assert reopened.escalation == {**ESCALATION, "epoch": 2}  # fresh outbox keys for the pages
    assert reopened.postmortem == "# Old"
    without_policy = lifecycle.apply(replace(closed, escalation={}), Event.REOPEN, clock.now())
    assert without_policy.escalation == {"epoch": 1}  # no policy, but a new page cycle for its ack links


async def test_a_public_update_dates_the_first_update_once_and_the_last_each_time(clock: FakeClock) -> None:
    incident = incident_in(I, clock)
    first = lifecycle.apply(incident, Event.INVESTIGATE, clock.now(), published=True)
    await clock.advance(300)
    second = lifecycle.apply(first, Event.IDENTIFY, clock.now(), published=True, impact=Impact.CRITICAL)
    assert second.first_public_update_at == first.last_public_update_at == clock.now() - timedelta(seconds=300)
    assert second.last_public_update_at == clock.now() and second.impact is Impact.CRITICAL
    assert lifecycle.apply(incident, Event.INVESTIGATE, clock.now()).last_public_update_at is None


def test_an_event_may_set_only_its_own_fields(clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="ack does not set comms"):
        lifecycle.apply(incident_in(I, clock), Event.ACK, clock.now(), comms="cid")


def test_every_refusal_is_a_statusd_error(clock: FakeClock) -> None:
    for (status, event), outcome in lifecycle.TABLE.items():
        if isinstance(outcome, lifecycle.Refusal):
            assert isinstance(outcome.error(incident_in(status, clock)), StatusdError), (status, event)


def test_the_update_and_timer_events_cover_what_callers_name() -> None:
    assert set(lifecycle.UPDATE_EVENTS) == {I, D, M, R}  # a postmortem comes with its own command
    assert set(lifecycle.TIMER_EVENTS) == set(lifecycle.ALL_TIMERS) == {"escalate", "remind", "handoff"}
