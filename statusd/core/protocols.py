"""Interfaces between the core and its plugins and stores.

A store hands out units of work: every repository reached through one `Tx` shares one
transaction, committed when the `async with` block ends normally and rolled back when it
raises. That is how the coordinator writes an incident, its timeline entry and its outbox
rows atomically.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from statusd.core.model import (
    CustomerReport,
    Component,
    ComponentStatus,
    DayUptime,
    Incident,
    NewIncident,
    OutboxMessage,
    ProbeResult,
    Rendered,
    Subscriber,
    TimelineEntry,
    Timer,
)


class ComponentRepo(Protocol):
    async def sync(self, components: Sequence[Component], at: datetime) -> None:
        """Make the stored definitions match config: insert new, update names/groups/order, delete absent. Keeps statuses.

        A new component's first status interval starts at `at`; a deleted component's daily rollups are kept.
        """
        ...

    async def list(self) -> builtins.list[Component]:
        """All components ordered by group position then position."""
        ...

    async def get(self, component_id: str) -> Component | None: ...

    async def set_status(self, component_id: str, status: ComponentStatus, at: datetime) -> bool:
        """Set a status; returns whether it changed.

        A change closes the previous status interval: the time from when that status began
        until `at` is added to the component's daily rollups (split at UTC midnights), in the
        same transaction as the change.
        """
        ...

    async def uptime(self, component_ids: Iterable[str], days: int, now: datetime) -> dict[str, builtins.list[DayUptime]]:
        """Per component, one DayUptime for each of the `days` UTC days ending with `now`'s day, oldest first.

        Includes the still-open status interval up to `now`. Reads the daily rollups only,
        never raw probe results; a day with nothing recorded comes back all zeros.
        """
        ...


class IncidentRepo(Protocol):
    async def create(self, incident: NewIncident) -> Incident: ...

    async def get(self, incident_id: int) -> Incident | None: ...

    async def save(self, incident: Incident) -> None:
        """Store every mutable field of an existing incident."""
        ...

    async def find_open_by_dedup_key(self, dedup_key: str) -> Incident | None: ...

    async def find_open_joined(self, dedup_key: str) -> Incident | None:
        """The open incident a signal with this key joined (a SIGNAL entry with `data.joined`), or None."""
        ...

    async def find_recent_by_dedup_key(self, dedup_key: str, resolved_since: datetime) -> Incident | None:
        """The latest incident with this key resolved at or after `resolved_since` (for re-opening)."""
        ...

    async def list_open(self) -> list[Incident]:
        """Unresolved incidents, newest first."""
        ...

    async def open_keys(self) -> dict[int, str | None]:
        """Id → dedup key of every unresolved incident: what a hot path needs without reading whole incidents."""
        ...

    async def list_recent(self, since: datetime, limit: int = 50) -> list[Incident]:
        """Incidents opened or resolved since `since`, open or not, newest first."""
        ...

    async def add_entry(self, entry: TimelineEntry) -> TimelineEntry: ...

    async def entries(self, incident_ids: Iterable[int], *, public_only: bool = False) -> dict[int, list[TimelineEntry]]:
        """Timeline entries per incident, oldest first."""
        ...


class ProbeResultRepo(Protocol):
    async def add(self, result: ProbeResult) -> None:
        """Store one result; one with a component also counts as a check (and a failure when not ok) in its daily rollup."""
        ...

    async def add_many(self, results: Sequence[ProbeResult]) -> None:
        """Store many results exactly as `add` would, in as few statements as the database allows."""
        ...

    async def recent(self, probe: str, limit: int = 20) -> list[ProbeResult]:
        """The newest results of one probe, newest first."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete raw results older than `before`; returns how many."""
        ...

    async def oldest(self) -> datetime | None:
        """When the oldest stored result was taken, or None when there are none."""
        ...


class SubscriberRepo(Protocol):
    async def add(self, subscriber: Subscriber) -> Subscriber:
        """Store a subscriber; the same (notifier, target) again updates its components."""
        ...

    async def remove(self, subscriber_id: int) -> bool: ...

    async def list(self) -> builtins.list[Subscriber]: ...

    async def for_components(self, components: Iterable[str]) -> builtins.list[Subscriber]:
        """Subscribers to any of `components`, plus those subscribed to everything."""
        ...


class OutboxRepo(Protocol):
    async def enqueue(self, messages: Iterable[OutboxMessage]) -> int:
        """Store messages whose key is new; returns how many were stored."""
        ...

    async def claim(self, now: datetime, limit: int, lease_s: float, *, notifiers: Sequence[str] | None = None,
                    other_than: Sequence[str] = ()) -> builtins.list[OutboxMessage]:
        """Take due messages (pending and due, or sending with an expired lease) for `lease_s` seconds.

        Only messages for `notifiers` (None: any notifier) and for none of `other_than`.
        """
        ...

    async def release(self, message_id: int, attempts: int, at: datetime) -> None:
        """Hand a claimed message back, due at `at`, its attempt not counted (a shutdown is not a failure).

        `attempts`: its count as claimed; a message claimed again since (its lease ran out) is left alone.
        """
        ...

    async def mark_sent(self, message_id: int, at: datetime) -> None: ...

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None: ...

    async def mark_dead(self, message_id: int, at: datetime, error: str) -> None: ...

    async def next_due(self, *, notifiers: Sequence[str] | None = None,
                       other_than: Sequence[str] = ()) -> datetime | None:
        """When the earliest pending message (of those `claim` would take) is due, or None when nothing waits."""
        ...

    async def counts(self) -> dict[str, int]:
        """Number of messages per status."""
        ...

    async def list(self, limit: int = 100) -> builtins.list[OutboxMessage]:
        """Newest messages first (for the console and tests)."""
        ...


class TimerRepo(Protocol):
    async def schedule(self, timer: Timer) -> Timer:
        """Store a pending timer; returns it with its id."""
        ...

    async def cancel(self, incident_id: int, kinds: Iterable[str], at: datetime) -> int:
        """Cancel the incident's pending timers of these kinds; returns how many."""
        ...

    async def take(self, timer_id: int, at: datetime) -> Timer | None:
        """Mark a pending timer fired and return it; None if it already fired or was cancelled.

        Called inside the transaction that carries out the timer, so it fires exactly once.
        """
        ...

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        """Pending timers due at `now`, earliest first (not yet taken)."""
        ...

    async def next_due(self) -> datetime | None:
        """When the earliest pending timer is due."""
        ...

    async def pending(self, incident_id: int) -> list[Timer]:
        """The incident's pending timers, earliest first."""
        ...


class ReportRepo(Protocol):
    async def add(self, report: CustomerReport) -> tuple[CustomerReport, bool]:
        """Store a report; the same (source, external_id) again returns the stored one and False."""
        ...

    async def add_many(self, reports: Sequence[CustomerReport]) -> list[tuple[CustomerReport, bool]]:
        """`add` for each report in order, in as few round trips as the store allows (the intake's group commit)."""
        ...

    async def link(self, report_ids: Iterable[int], incident_id: int) -> list[CustomerReport]:
        """Link reports not yet linked to any incident; returns the ones newly linked."""
        ...

    async def link_many(self, links: Mapping[int, Sequence[int]]) -> list[CustomerReport]:
        """`link` for several incidents at once ({incident id: report ids}); returns every newly linked report."""
        ...

    async def for_incident(self, incident_id: int) -> list[CustomerReport]:
        """Reports linked to the incident, oldest first."""
        ...

    async def recent(self, since: datetime, limit: int = 100_000) -> list[CustomerReport]:
        """Reports received since `since`, oldest first (to warm the detector after a restart)."""
        ...

    async def move(self, from_incident: int, to_incident: int) -> int:
        """Re-link every report of one incident to another (a merge); returns how many."""
        ...


class Tx(Protocol):
    """Repositories that share one transaction."""

    components: ComponentRepo
    incidents: IncidentRepo
    probe_results: ProbeResultRepo
    subscribers: SubscriberRepo
    outbox: OutboxRepo
    timers: TimerRepo
    reports: ReportRepo


class Store(Protocol):
    """A database behind the repository protocols."""

    #: Names of the migrations the last `open()` applied, in order (empty when the schema was current).
    applied_migrations: list[str]

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None: ...

    def transaction(self, *, brief: bool = False) -> AbstractAsyncContextManager[Tx]:
        """A unit of work: commit on normal exit, roll back on error.

        `brief`: a few small statements on a path where latency counts (the report intake's
        group commits). A store may run them without handing them to another thread, so it
        must never be asked for work that can take long.
        """
        ...

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Repositories for reading; may see a consistent snapshot, must not write."""
        ...


class Notifier(Protocol):
    """A delivery channel. `send` raises NotifyError, whose `retryable` says if trying again can help."""

    name: str

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        """Deliver `message` to `recipient`; `key` is the idempotency key of this delivery."""
        ...


class Probe(Protocol):
    """A check of one target; returns a result whatever happens to the target."""

    name: str
    component: str | None

    async def check(self, now: datetime) -> ProbeResult: ...
