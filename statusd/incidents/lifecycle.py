"""The incident lifecycle as one table: (status, event) → the status it moves to, or why the event is refused.

Every change to an incident's own fields goes through `apply`, so what may happen in which
status is read here, in one place, and tested pair by pair. The coordinator decides which
event a command is and writes what follows (timeline, outbox, timers); this module is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from statusd.core.errors import Conflict, StatusdError, ValidationError
from statusd.core.model import Incident, IncidentStatus
from statusd.incidents.escalation import reopened_json

INVESTIGATING, IDENTIFIED = IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED
MONITORING, RESOLVED, POSTMORTEM = IncidentStatus.MONITORING, IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM


class Event(StrEnum):
    """Everything that can happen to an incident once it exists."""

    REFIRE = "refire"  # its detector fired again
    JOIN = "join"  # another detector's signal joined it
    REOPEN = "reopen"  # its detector fired again soon after it was resolved
    INVESTIGATE = "investigate"  # a public update saying "investigating"
    IDENTIFY = "identify"  # a public update saying "identified"
    MONITOR = "monitor"  # a public update saying "monitoring" (by hand or on recovery)
    RESOLVE = "resolve"  # the final public update (by hand or on recovery)
    ACK = "ack"  # someone acknowledged: escalation stops
    HAND_OFF = "hand_off"  # its owner asked someone else to take it over
    ACCEPT = "accept"  # the person asked accepted the handoff
    SET_COMMS = "set_comms"  # someone was named (or unnamed) to write the public updates
    MERGE = "merge"  # it was folded into another incident, and closes
    ABSORB = "absorb"  # another incident was folded into it
    POSTMORTEM = "postmortem"  # its postmortem was published
    ESCALATE = "escalate"  # its escalation timer came due
    REMIND = "remind"  # its update reminder came due
    HANDOFF_DUE = "handoff_due"  # its handoff went unaccepted for too long


#: The public update event that leaves an incident in each status.
UPDATE_EVENTS: Mapping[IncidentStatus, Event] = {
    INVESTIGATING: Event.INVESTIGATE, IDENTIFIED: Event.IDENTIFY, MONITORING: Event.MONITOR, RESOLVED: Event.RESOLVE,
}
#: The event of each kind of timer.
TIMER_EVENTS: Mapping[str, Event] = {"escalate": Event.ESCALATE, "remind": Event.REMIND, "handoff": Event.HANDOFF_DUE}
#: Every kind of timer an incident can have; resolving or merging it cancels them all.
ALL_TIMERS = tuple(TIMER_EVENTS)


@dataclass(frozen=True, slots=True)
class Transition:
    """The event applies: the status becomes `to` (None: it stays)."""

    to: IncidentStatus | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The event does not apply: the caller gets `error(incident)`, the same error the API answered before."""

    error: Callable[[Incident], StatusdError]


@dataclass(frozen=True, slots=True)
class Ignored:
    """The event no longer matters (a timer that came due after its incident closed): nothing happens."""


Outcome = Transition | Refusal | Ignored


def _not_open(incident: Incident) -> StatusdError:
    return Conflict(f"incident {incident.id} is already {incident.status.value}")


def _still_open(incident: Incident) -> StatusdError:
    return Conflict(f"incident {incident.id} is still open")


def _not_resolved(incident: Incident) -> StatusdError:
    return Conflict(f"incident {incident.id} is not resolved yet; publish the postmortem after resolution")


def _not_a_merge_target(incident: Incident) -> StatusdError:
    return ValidationError("into", f"incident {incident.id} does not exist or is not open")


STAY = Transition()
NOT_OPEN = Refusal(_not_open)
IGNORED = Ignored()


def _row(event: Event, *, investigating: Outcome, identified: Outcome, monitoring: Outcome, resolved: Outcome,
         postmortem: Outcome) -> dict[tuple[IncidentStatus, Event], Outcome]:
    return {(INVESTIGATING, event): investigating, (IDENTIFIED, event): identified,
            (MONITORING, event): monitoring, (RESOLVED, event): resolved, (POSTMORTEM, event): postmortem}


def _while_open(event: Event, outcome: Outcome, *, closed: Outcome = NOT_OPEN) -> dict[tuple[IncidentStatus, Event],
                                                                                         Outcome]:
    return _row(event, investigating=outcome, identified=outcome, monitoring=outcome, resolved=closed,
                postmortem=closed)


#: Every (status, event) pair and its outcome.
TABLE: Mapping[tuple[IncidentStatus, Event], Outcome] = {
    # A repeat while monitoring means the fix did not hold.
    **_row(Event.REFIRE, investigating=STAY, identified=STAY, monitoring=Transition(INVESTIGATING),
           resolved=NOT_OPEN, postmortem=NOT_OPEN),
    **_while_open(Event.JOIN, STAY),
    # Only the store's "resolved recently" finds a closed incident to re-open; a postmortem stays attached.
    **_row(Event.REOPEN, investigating=Refusal(_still_open), identified=Refusal(_still_open),
           monitoring=Refusal(_still_open), resolved=Transition(INVESTIGATING), postmortem=Transition(INVESTIGATING)),
    **_while_open(Event.INVESTIGATE, Transition(INVESTIGATING)),
    **_while_open(Event.IDENTIFY, Transition(IDENTIFIED)),
    **_while_open(Event.MONITOR, Transition(MONITORING)),
    **_while_open(Event.RESOLVE, Transition(RESOLVED)),
    **_while_open(Event.ACK, STAY),
    **_while_open(Event.HAND_OFF, STAY),
    **_while_open(Event.ACCEPT, STAY),
    **_while_open(Event.SET_COMMS, STAY),
    **_while_open(Event.MERGE, Transition(RESOLVED)),
    **_while_open(Event.ABSORB, STAY, closed=Refusal(_not_a_merge_target)),
    # Publishing again replaces the postmortem.
    **_row(Event.POSTMORTEM, investigating=Refusal(_not_resolved), identified=Refusal(_not_resolved),
           monitoring=Refusal(_not_resolved), resolved=Transition(POSTMORTEM), postmortem=Transition(POSTMORTEM)),
    **_while_open(Event.ESCALATE, STAY, closed=IGNORED),
    **_while_open(Event.REMIND, STAY, closed=IGNORED),
    **_while_open(Event.HANDOFF_DUE, STAY, closed=IGNORED),
}

#: The fields each event's caller supplies (`apply`'s keyword arguments); anything else is a programming error.
DATA: Mapping[Event, frozenset[str]] = {
    Event.REFIRE: frozenset(),
    Event.JOIN: frozenset({"components", "impact"}),
    Event.REOPEN: frozenset(),
    Event.INVESTIGATE: frozenset({"impact"}),
    Event.IDENTIFY: frozenset({"impact"}),
    Event.MONITOR: frozenset({"impact"}),
    Event.RESOLVE: frozenset({"impact"}),
    Event.ACK: frozenset({"acknowledged_by", "commander"}),
    Event.HAND_OFF: frozenset({"handoff"}),
    Event.ACCEPT: frozenset({"commander"}),
    Event.SET_COMMS: frozenset({"comms"}),
    Event.MERGE: frozenset({"merged_into"}),
    Event.ABSORB: frozenset({"components", "impact", "dedup_key"}),
    Event.POSTMORTEM: frozenset({"postmortem"}),
    Event.ESCALATE: frozenset(),
    Event.REMIND: frozenset(),
    Event.HANDOFF_DUE: frozenset(),
}


def _effects(incident: Incident, event: Event, now: datetime) -> dict[str, Any]:
    """What an event changes beyond the status and the caller's data."""
    if event is Event.REOPEN:  # paged afresh, acknowledged afresh
        return {"resolved_at": None, "acknowledged_at": None, "acknowledged_by": None,
                "escalation": reopened_json(incident.escalation)}
    if event is Event.RESOLVE:  # nobody can accept a handoff of a resolved incident
        return {"resolved_at": now, "handoff": None}
    if event is Event.MERGE:  # its detector now follows the incident it was merged into
        return {"resolved_at": now, "handoff": None, "dedup_key": None}
    if event is Event.ACK:
        return {"acknowledged_at": now}
    if event is Event.ACCEPT:
        return {"handoff": None}
    if event is Event.POSTMORTEM:
        return {"postmortem_at": now}
    return {}


def outcome(incident: Incident, event: Event) -> Outcome:
    """The table's outcome for the incident's status, refined by what the status alone does not say."""
    result = TABLE[incident.status, event]
    if not isinstance(result, Transition):
        return result
    if event is Event.ACK and incident.acknowledged_at is not None:  # the first acknowledgement wins
        return Refusal(lambda i: Conflict(f"incident {i.id} was already acknowledged by {i.acknowledged_by}"))
    if event is Event.ESCALATE and incident.acknowledged_at is not None:
        return IGNORED
    if event is Event.ACCEPT and incident.handoff is None:
        return Refusal(lambda i: Conflict(f"incident {i.id} has no handoff to accept"))
    if event is Event.HANDOFF_DUE and incident.handoff is None:
        return IGNORED
    return result


def check(incident: Incident, event: Event) -> bool:
    """Whether `event` applies to `incident` (False: ignore it); raises the refusal's error when it is refused."""
    result = outcome(incident, event)
    if isinstance(result, Refusal):
        raise result.error(incident)
    return isinstance(result, Transition)


def apply(incident: Incident, event: Event, now: datetime, *, published: bool = False, **data: Any) -> Incident:
    """The incident after `event` at `now`, with the caller's `data` (see DATA); raises like `check`.

    `published`: the event comes with a public update, which dates the first and last public update.
    """
    result = outcome(incident, event)
    if isinstance(result, Refusal):
        raise result.error(incident)
    if isinstance(result, Ignored):
        raise Conflict(f"incident {incident.id}: {event.value} no longer applies")
    unexpected = set(data) - DATA[event]
    if unexpected:
        raise TypeError(f"{event.value} does not set {', '.join(sorted(unexpected))}")
    changes: dict[str, Any] = {"updated_at": now, **_effects(incident, event, now), **data}
    if result.to is not None:
        changes["status"] = result.to
    if published:
        changes["first_public_update_at"] = incident.first_public_update_at or now
        changes["last_public_update_at"] = now
    return replace(incident, **changes)
