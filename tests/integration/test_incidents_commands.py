"""Every person's command in every incident status, through the coordinator and a real store on the fake clock.

The lifecycle table decides; this checks that callers get from the commands exactly what it says:
the status an allowed command leaves, and the error (with its message) a refused one raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from statusd.core.clock import FakeClock
from statusd.core.errors import Conflict, ValidationError
from statusd.core.model import Component, ComponentStatus, Incident, IncidentStatus, Person, Signal
from statusd.incidents.coordinator import Coordinator, PageInfo, Policy
from statusd.store.sqlite import SqliteStore

I, D, M, R, P = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING,
                 IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)
STATUSES = (I, D, M, R, P)
PEOPLE = {p: Person(p, p.capitalize(), {"mail": f"{p}@example.com"}) for p in ("ann", "bob", "cid")}
POLICY = {"levels": [{"targets": ["ann"], "ack_timeout_s": 300}], "repeat": 0, "fallback": None}

Command = Callable[[Coordinator, int, int], Awaitable[Incident]]
COMMANDS: dict[str, Command] = {
    "investigate": lambda c, i, other: c.post_update(i, body="Looking.", author="Ann", status=I),
    "identify": lambda c, i, other: c.post_update(i, body="Found it.", author="Ann", status=D),
    "monitor": lambda c, i, other: c.post_update(i, body="Fixed.", author="Ann", status=M),
    "update": lambda c, i, other: c.post_update(i, body="Still on it.", author="Ann"),
    "resolve": lambda c, i, other: c.resolve(i, body="Over.", author="Ann"),
    "ack": lambda c, i, other: c.acknowledge(i, by="Ann", person="ann"),
    "hand_off": lambda c, i, other: c.hand_off(i, to="bob", note="shift ends", by="Ann", person="ann"),
    "set_comms": lambda c, i, other: c.set_comms(i, person="cid", by="Ann"),
    "postmortem": lambda c, i, other: c.publish_postmortem(i, body="# Why", author="Ann", notify=False),
    "merge": lambda c, i, other: c.merge(i, into=other, by="Ann"),
    "absorb": lambda c, i, other: c.merge(other, into=i, by="Ann"),
}
ALREADY = {status: (Conflict, f"incident 1 is already {status.value}") for status in (R, P)}
NOT_RESOLVED = (Conflict, "incident 1 is not resolved yet; publish the postmortem after resolution")
NOT_A_TARGET = (ValidationError, "into: incident 1 does not exist or is not open")
# One column per status (investigating, identified, monitoring, resolved, postmortem): the status the
# command leaves the incident in, or the error the API has always answered with.
EXPECTED: dict[str, tuple[Any, Any, Any, Any, Any]] = {
    "investigate": (I, I, I, ALREADY[R], ALREADY[P]),
    "identify": (D, D, D, ALREADY[R], ALREADY[P]),
    "monitor": (M, M, M, ALREADY[R], ALREADY[P]),
    "update": (I, D, M, ALREADY[R], ALREADY[P]),
    "resolve": (R, R, R, ALREADY[R], ALREADY[P]),
    "ack": (I, D, M, ALREADY[R], ALREADY[P]),
    "hand_off": (I, D, M, ALREADY[R], ALREADY[P]),
    "set_comms": (I, D, M, ALREADY[R], ALREADY[P]),
    "postmortem": (NOT_RESOLVED, NOT_RESOLVED, NOT_RESOLVED, P, P),
    "merge": (R, R, R, ALREADY[R], ALREADY[P]),
    "absorb": (I, D, M, NOT_A_TARGET, NOT_A_TARGET),
}


async def incident_in(coordinator: Coordinator, status: IncidentStatus) -> Incident:
    """Incident 1, brought to `status` the way people do it; incident 2 stays open beside it."""
    clock = coordinator.clock
    incident = await coordinator.handle(Signal("probe", "probe:api", ("api",), ComponentStatus.MAJOR_OUTAGE,
                                               "api failing", clock.now()))
    assert incident is not None and incident.id == 1
    other = await coordinator.open_incident(title="Website slow", body="Looking.", author="Bob", components=["web"])
    assert other.id == 2
    if status in (D, M):
        incident = await coordinator.post_update(1, body="Moving on.", author="Ann", status=status)
    if status in (R, P):
        incident = await coordinator.resolve(1, body="Over.", author="Ann")
    if status is P:
        incident = await coordinator.publish_postmortem(1, body="# Old", author="Ann", notify=False)
    assert incident.status is status
    return incident


@pytest.mark.parametrize(("command", "status", "expected"), [
    pytest.param(command, status, row[i], id=f"{status.value}+{command}")
    for command, row in EXPECTED.items() for i, status in enumerate(STATUSES)
])
async def test_every_command_in_every_status(sqlite_store: SqliteStore, command: str, status: IncidentStatus,
                                             expected: Any) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "API"), Component("web", "Website", position=1)], clock.now())
    coordinator = Coordinator(sqlite_store, clock, people=PEOPLE, escalation_policies={"default": POLICY},
                              policy=Policy(escalation_policy="default"), page=PageInfo("S", "http://s"))
    before = await incident_in(coordinator, status)
    await clock.advance(60)
    run = COMMANDS[command](coordinator, 1, 2)
    if isinstance(expected, tuple):
        error, message = expected
        with pytest.raises(error) as raised:
            await run
        assert str(raised.value) == message
        async with sqlite_store.read() as r:
            assert await r.incidents.get(1) == before  # a refused command wrote nothing
    else:
        await run
        async with sqlite_store.read() as r:
            after = await r.incidents.get(1)
        assert after is not None and after.status is expected
