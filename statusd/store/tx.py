"""A unit of work: every repository over one session, so they share its transaction."""

from __future__ import annotations

from statusd.core.protocols import (
    ComponentRepo,
    IncidentRepo,
    OutboxRepo,
    ProbeResultRepo,
    ReportRepo,
    SubscriberRepo,
    TimerRepo,
)
from statusd.store.repos.components import SqlComponents
from statusd.store.repos.incidents import SqlIncidents
from statusd.store.repos.outbox import SqlOutbox
from statusd.store.repos.probe_results import SqlProbeResults
from statusd.store.repos.reports import SqlReports
from statusd.store.repos.subscribers import SqlSubscribers
from statusd.store.repos.timers import SqlTimers
from statusd.store.session import Session


class SqlTx:
    """The repositories of `statusd.core.protocols.Tx` over one session."""

    def __init__(self, db: Session) -> None:
        self.components: ComponentRepo = SqlComponents(db)
        self.incidents: IncidentRepo = SqlIncidents(db)
        self.probe_results: ProbeResultRepo = SqlProbeResults(db)
        self.subscribers: SubscriberRepo = SqlSubscribers(db)
        self.outbox: OutboxRepo = SqlOutbox(db)
        self.timers: TimerRepo = SqlTimers(db)
        self.reports: ReportRepo = SqlReports(db)
