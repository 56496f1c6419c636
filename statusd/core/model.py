"""The statusd domain model, in Statuspage's vocabulary (see DESIGN.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any


#: Over `max_window_reports`, no group's window is cut below this many reports: far more than a surge
#: needs, so the cut only ever shortens windows that are surging or flooding already.
WINDOW_FLOOR = 64


class ComponentStatus(StrEnum):
    """Status of one component, ordered from best to worst by `rank`."""

    OPERATIONAL = "operational"
    UNDER_MAINTENANCE = "under_maintenance"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"

    @property
    def rank(self) -> int:
        """How bad the status is: 0 for operational, higher is worse."""
        return _COMPONENT_RANK[self]

    @property
    def label(self) -> str:
        """The status for people: "Partial outage"."""
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
        """Whether the incident still needs attention (not resolved, no postmortem yet)."""
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
        """How severe the impact is: 0 for none, higher is worse."""
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


#: Who signs what statusd writes by itself (automatic public updates, notes).
AUTOMATED_AUTHOR = "statusd (automated)"
#: Templates of messages to the people handling an incident (a page, a reminder to post an update,
#: a handoff): claimed before other due messages, and noted in the timeline if they end undelivered.
URGENT_TEMPLATES = ("alert", "reminder", "handoff")


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


# --- uptime -------------------------------------------------------------------------------

PARTIAL_OUTAGE_WEIGHT = 0.3  # Statuspage: a partial outage counts as 30 % downtime, degraded as none


@dataclass(frozen=True, slots=True)
class DayUptime:
    """Seconds one component spent in each status on one UTC day, and its probe checks that day.

    Uptime is counted the Statuspage way: major outage is fully down, partial outage 30 %
    down, degraded performance up. Time under maintenance is left out of the denominator,
    so planned work neither lowers nor pads the figure; a day spent wholly in maintenance
    (or not observed at all) has no uptime figure.
    """

    day: date
    major_s: float = 0.0
    partial_s: float = 0.0
    degraded_s: float = 0.0
    maintenance_s: float = 0.0
    operational_s: float = 0.0
    checks: int = 0
    failures: int = 0

    @property
    def observed_s(self) -> float:
        """Seconds of the day for which the component's status is known."""
        return self.operational_s + self.maintenance_s + self.degraded_s + self.partial_s + self.major_s

    @property
    def counted_s(self) -> float:
        """Seconds that count towards uptime: observed time outside maintenance."""
        return self.observed_s - self.maintenance_s

    @property
    def downtime_s(self) -> float:
        """Weighted seconds of downtime: major outage fully, partial outage at 30 %."""
        return self.major_s + PARTIAL_OUTAGE_WEIGHT * self.partial_s

    @property
    def uptime(self) -> float | None:
        """Uptime ratio in [0, 1], or None when no time of the day counts."""
        return uptime_ratio([self])

    @property
    def worst(self) -> ComponentStatus | None:
        """The worst status the component had at any time of the day; None when unobserved."""
        spent = {ComponentStatus.MAJOR_OUTAGE: self.major_s, ComponentStatus.PARTIAL_OUTAGE: self.partial_s,
                 ComponentStatus.DEGRADED_PERFORMANCE: self.degraded_s,
                 ComponentStatus.UNDER_MAINTENANCE: self.maintenance_s, ComponentStatus.OPERATIONAL: self.operational_s}
        return next((status for status, seconds in spent.items() if seconds > 0), None)

    def plus(self, status: ComponentStatus, seconds: float) -> DayUptime:
        """This day with `seconds` more spent in `status`."""
        # Built directly rather than with dataclasses.replace: a page adds up thousands of these.
        spent = [self.major_s, self.partial_s, self.degraded_s, self.maintenance_s, self.operational_s]
        spent[_SPENT_INDEX[status]] += seconds
        return DayUptime(self.day, spent[0], spent[1], spent[2], spent[3], spent[4], self.checks, self.failures)


_SPENT_INDEX = {ComponentStatus.MAJOR_OUTAGE: 0, ComponentStatus.PARTIAL_OUTAGE: 1,
                ComponentStatus.DEGRADED_PERFORMANCE: 2, ComponentStatus.UNDER_MAINTENANCE: 3,
                ComponentStatus.OPERATIONAL: 4}

STATUS_SECONDS_FIELD: dict[ComponentStatus, str] = {
    ComponentStatus.OPERATIONAL: "operational_s",
    ComponentStatus.UNDER_MAINTENANCE: "maintenance_s",
    ComponentStatus.DEGRADED_PERFORMANCE: "degraded_s",
    ComponentStatus.PARTIAL_OUTAGE: "partial_s",
    ComponentStatus.MAJOR_OUTAGE: "major_s",
}
"""The DayUptime field (and rollup column) that holds the seconds spent in each status."""


def uptime_ratio(days: Iterable[DayUptime]) -> float | None:
    """Uptime over several days (time-weighted, see DayUptime), or None when no time counts."""
    counted = downtime = 0.0
    for day in days:
        counted += day.counted_s
        downtime += day.downtime_s
    if counted <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - downtime / counted))


def utc_day_spans(start: datetime, end: datetime) -> Iterator[tuple[date, float]]:
    """Split [start, end) at UTC midnights into (UTC day, seconds) pieces; nothing when end <= start."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    while start < end:
        midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), UTC)
        piece_end = min(end, midnight)
        yield start.date(), (piece_end - start).total_seconds()
        start = piece_end


def uptime_window(days: int, now: datetime, recorded: Iterable[DayUptime], status: ComponentStatus,
                  since: datetime | None) -> list[DayUptime]:
    """The `days` UTC days ending with `now`'s day, oldest first: `recorded` rollups plus the open interval.

    The open interval is the time from `since` (when the current `status` began; None when
    unknown) until `now`; recorded days outside the window are ignored.
    """
    if days <= 0:
        return []
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    by_day = {d.day: d for d in recorded}
    # Seconds of the open interval per day. Past days it covers whole are 86,400 s each, so only
    # its first and last day need arithmetic (a page of 90 days × many components stays cheap).
    open_s: dict[date, float] = {}
    if since is not None:
        start = max(since.astimezone(UTC), datetime.combine(first, datetime.min.time(), UTC))
        if start < now:
            last = now.astimezone(UTC).date()
            if start.date() == last:
                open_s[last] = (now - start).total_seconds()
            else:
                open_s[start.date()] = (datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), UTC)
                                        - start).total_seconds()
                day = start.date() + timedelta(days=1)
                while day < last:
                    open_s[day] = 86_400.0
                    day += timedelta(days=1)
                open_s[last] = (now - datetime.combine(last, datetime.min.time(), UTC)).total_seconds()
    window = []
    for i in range(days):
        day = first + timedelta(days=i)
        seconds = open_s.get(day, 0.0)
        known = by_day.get(day)
        if known is None:
            known = DayUptime(day)
        window.append(known.plus(status, seconds) if seconds else known)
    return window


@dataclass(frozen=True, slots=True)
class CustomerReport:
    """One customer's report of a problem, as stored; `contact` is (notifier name, address) to keep them informed."""

    source: str  # the intake: "api:<token id>" or "form"
    client_id: str
    text: str
    received_at: datetime
    channel: str = "api"
    tags: dict[str, str] = field(default_factory=dict)
    contact: tuple[str, str] | None = None
    external_id: str | None = None  # the helpdesk's ticket id; (source, external_id) is unique
    ticket_url: str | None = None
    created_at: datetime | None = None
    incident_id: int | None = None
    id: int | None = None
