"""The statusd domain model, in Statuspage's vocabulary (see DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ComponentStatus(StrEnum):
    """Status of one component, ordered from best to worst by `rank`."""

    OPERATIONAL = "operational"
    UNDER_MAINTENANCE = "under_maintenance"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"

    @property
    def rank(self) -> int:
        return _COMPONENT_RANK[self]

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


_COMPONENT_RANK = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


class IncidentStatus(StrEnum):
    """Lifecycle of an incident."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"

    @property
    def is_open(self) -> bool:
        return self not in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)


class Impact(StrEnum):
    """How bad an incident is; also Statuspage's `status.indicator` vocabulary."""

    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"
    MAINTENANCE = "maintenance"

    @property
    def rank(self) -> int:
        return _IMPACT_RANK[self]


_IMPACT_RANK = {Impact.NONE: 0, Impact.MAINTENANCE: 1, Impact.MINOR: 2, Impact.MAJOR: 3, Impact.CRITICAL: 4}


def impact_for(status: ComponentStatus) -> Impact:
    """The incident impact that a component status implies."""
    return {
        ComponentStatus.OPERATIONAL: Impact.NONE,
        ComponentStatus.UNDER_MAINTENANCE: Impact.MAINTENANCE,
        ComponentStatus.DEGRADED_PERFORMANCE: Impact.MINOR,
        ComponentStatus.PARTIAL_OUTAGE: Impact.MAJOR,
        ComponentStatus.MAJOR_OUTAGE: Impact.CRITICAL,
    }[status]


class EntryKind(StrEnum):
    """Kinds of timeline entries. Only `update` entries are public."""

    UPDATE = "update"  # public, signed by its author
    NOTE = "note"  # internal
    SIGNAL = "signal"  # a detector spoke (opened, recovered, repeated)
    ASSIGNED = "assigned"
    ACKNOWLEDGED = "acknowledged"
    STATUS = "status"  # status/impact change without a public text
    ESCALATED = "escalated"  # a level of the escalation policy was paged
    HANDOFF = "handoff"  # ownership handed over (requested or accepted)
    ROLE = "role"  # commander or comms set
    REMINDER = "reminder"  # a public update is overdue
    POSTMORTEM = "postmortem"
    MERGED = "merged"
    REOPENED = "reopened"


@dataclass(frozen=True, slots=True)
class Component:
    """A part of the service whose status the page shows."""

    id: str
    name: str
    description: str = ""
    group: str | None = None
    position: int = 0
    status: ComponentStatus = ComponentStatus.OPERATIONAL
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can be on duty; `contacts` maps a notifier name to an address on it."""

    id: str
    name: str
    contacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Signal:
    """What every detector emits; the coordinator never knows which detector spoke.

    `firing` is False when the detector says the problem is over.
    """

    source: str
    dedup_key: str
    components: tuple[str, ...]
    severity: ComponentStatus
    summary: str
    at: datetime
    firing: bool = True
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check of one target. A target that is down is a result, not an exception."""

    probe: str
    component: str | None
    at: datetime
    ok: bool
    latency_s: float
    degraded: bool = False
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Incident:
    """One outage (or other event) as customers and engineers see it."""

    id: int
    title: str
    status: IncidentStatus
    impact: Impact
    components: tuple[str, ...]
    opened_at: datetime
    updated_at: datetime
    source: str = "manual"
    dedup_key: str | None = None
    assignee: str | None = None  # Person.id of the duty engineer who owns it
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    first_public_update_at: datetime | None = None
    resolved_at: datetime | None = None
    commander: str | None = None  # Person.id who owns the incident (the acknowledging engineer)
    comms: str | None = None  # Person.id who writes the public updates, when set
    escalation: dict[str, Any] = field(default_factory=dict)  # the policy as it was when the incident opened
    handoff: dict[str, Any] | None = None  # a pending handoff: {"from", "to", "note", "at"}
    last_public_update_at: datetime | None = None
    postmortem: str | None = None  # Markdown, published after resolution
    postmortem_at: datetime | None = None
    merged_into: int | None = None

    def kpis(self) -> dict[str, float | None]:
        """The support KPIs of this incident in seconds (None until they happen)."""
        def since_open(t: datetime | None) -> float | None:
            return None if t is None else (t - self.opened_at).total_seconds()

        return {"time_to_acknowledge_s": since_open(self.acknowledged_at),
                "time_to_first_public_update_s": since_open(self.first_public_update_at),
                "time_to_resolve_s": since_open(self.resolved_at)}


@dataclass(frozen=True, slots=True)
class Timer:
    """Something the coordinator must do at `due_at` unless cancelled first; kept in the store so restarts keep it.

    `kind` is one of "escalate", "remind", "handoff"; `payload` holds what the kind needs.
    """

    kind: str
    incident_id: int
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    fired_at: datetime | None = None
    cancelled_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class NewIncident:
    """An incident before the store has given it an id."""

    title: str
    status: IncidentStatus
    impact: Impact
    components: tuple[str, ...]
    opened_at: datetime
    source: str = "manual"
    dedup_key: str | None = None
    assignee: str | None = None
    escalation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line in an incident's history. `author` signs public updates."""

    incident_id: int
    at: datetime
    kind: EntryKind
    body: str = ""
    author: str = ""
    status: IncidentStatus | None = None
    public: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Someone who asked to hear about some (or, with no components, all) components."""

    notifier: str
    target: str
    components: tuple[str, ...] = ()
    id: int | None = None
    created_at: datetime | None = None


class OutboxStatus(StrEnum):
    """Delivery state of one outbox row."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One notification to one recipient on one notifier.

    `key` is unique: enqueueing the same key twice stores it once, so nothing is sent twice.
    `template` names what to render; `context` is a JSON-safe snapshot taken when the
    message was enqueued, so a retry sends what was true then.
    """

    key: str
    notifier: str
    recipient: str
    template: str
    context: dict[str, Any]
    created_at: datetime
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""
    sent_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message rendered for a channel: subject (may be unused), text body, optional HTML body and JSON payload."""

    subject: str
    text: str
    html: str | None = None
    payload: dict[str, Any] | None = None
