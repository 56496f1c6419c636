"""Every Prometheus series statusd exposes, in one object on an injected registry.

Names follow `statusd_<subsystem>_<noun>_<unit>`; label values come from bounded sets
(probe and component names from config, enums) — never incident ids or addresses.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from statusd.core.clock import Clock
from statusd.core.model import ComponentStatus, Incident, OutboxStatus, ProbeResult
from statusd.core.protocols import Store
from statusd.notify.failure import Failure, Reason
from statusd.notify.settlement import OUTCOMES
from statusd.oncall.schedule import Schedule

_IMPACTS = ("none", "minor", "major", "critical", "maintenance")
_KPI_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


class Metrics:
    """Counters, gauges and histograms; the coordinator, monitor and outbox report into it."""

    reload_interval_s = 5.0  # after a change, the store-mirrored gauges are reloaded at most this often
    max_age_s = 60.0  # and at least this often, for changes no hook reported

    def __init__(self, registry: CollectorRegistry, *, clock: Clock | None = None,
                 reminder_s: Mapping[str, float] | None = None,
                 schedules: Mapping[str, Schedule] | None = None) -> None:
        self.registry = registry
        self._clock = clock
        self._reminder_s = dict(reminder_s or {})
        self._schedules = dict(schedules or {})
        self._stale = True
        self._loaded_at: datetime | None = None
        self._reloaded_at: datetime | None = None  # the last load a scrape made
        self._schedules_at: datetime | None = None
        self._overdue_from: list[datetime] = []  # when each open incident's public update becomes overdue
        self._loading = asyncio.Lock()
        self.probe_up = Gauge("statusd_probe_up", "1 when the probe's last check succeeded, else 0.",
                              ["probe"], registry=registry)
        self.probe_duration = Histogram("statusd_probe_check_duration_seconds", "Duration of probe checks.",
                                        ["probe"], registry=registry,
                                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.probe_checks = Counter("statusd_probe_checks_total", "Probe checks by outcome.",
                                    ["probe", "outcome"], registry=registry)
        # No probe label: ten thousand probes times fifteen buckets would be too many series.
        self.probe_schedule_lag = Histogram("statusd_probe_schedule_lag_seconds",
                                            "From when a check was due to when it started (after waiting for a "
                                            "free slot).", registry=registry,
                                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                     2.5, 5, 10, 30, 60))
        self.probe_results_pruned_total = Counter("statusd_probe_results_pruned_total",
                                                  "Raw probe results deleted after the retention window.",
                                                  registry=registry)
        self.incidents_opened = Counter("statusd_incidents_opened_total", "Incidents opened, by source and impact.",
                                        ["source", "impact"], registry=registry)
        self.incidents_resolved = Counter("statusd_incidents_resolved_total", "Incidents resolved, by impact.",
                                          ["impact"], registry=registry)
        self.incidents_open = Gauge("statusd_incidents_open", "Unresolved incidents, by impact.",
                                    ["impact"], registry=registry)
        self.time_to_ack = Histogram("statusd_incident_time_to_acknowledge_seconds",
                                     "From opening to the first acknowledgement.", ["impact"],
                                     registry=registry, buckets=_KPI_BUCKETS)
        self.time_to_first_update = Histogram("statusd_incident_time_to_first_public_update_seconds",
                                              "From opening to the first public update.", ["impact"],
                                              registry=registry, buckets=_KPI_BUCKETS)
        self.time_to_resolve = Histogram("statusd_incident_time_to_resolve_seconds",
                                         "From opening to resolution.", ["impact"],
                                         registry=registry, buckets=_KPI_BUCKETS)
        self.component_status = Gauge("statusd_component_status",
                                      "1 for the component's current status, 0 for the others.",
                                      ["component", "status"], registry=registry)
        self.deliveries = Counter("statusd_notification_deliveries_total",
                                  "Delivery attempts by notifier and outcome (sent, retry, dead).",
                                  ["notifier", "outcome"], registry=registry)
        self.delivery_failures = Counter("statusd_notification_failures_total",
                                         "Failed delivery attempts by notifier and reason (render, unconfigured, "
                                         "invalid, timeout, connect, http_3xx, http_4xx, http_5xx, rate_limited, "
                                         "rejected, internal, unknown).", ["notifier", "reason"], registry=registry)
        self.delivery_latency = Histogram("statusd_notification_delivery_latency_seconds",
                                          "From enqueueing to successful delivery.", ["notifier"],
                                          registry=registry, buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
        self.outbox_messages = Gauge("statusd_outbox_messages", "Outbox rows by delivery status.",
                                     ["status"], registry=registry)
        self.update_reminders = Counter("statusd_incident_update_reminders_total",
                                        "Reminders sent because no public update was posted in time.",
                                        ["impact"], registry=registry)
        self.updates_overdue = Gauge("statusd_incidents_update_overdue",
                                     "Open incidents whose next public update is overdue.", registry=registry)
        self.oncall_covered = Gauge("statusd_oncall_covered", "1 when someone is on call in the schedule now.",
                                    ["schedule"], registry=registry)
        # Customer reports (statusd.reports.http). `source` is "form" or "api:<token id>": both from config.
        self.reports_accepted = Counter("statusd_reports_received_total",
                                        "Customer reports accepted, by source and outcome (stored, duplicate).",
                                        ["source", "outcome"], registry=registry)
        self.reports_undetected = Counter("statusd_reports_undetected_total",
                                          "Stored reports the detector did not see live, by reason (backfill: "
                                          "received before the surge window; detector_failed; shutdown).",
                                          ["reason"], registry=registry)
        self.reports_linked = Counter("statusd_reports_linked_total", "Reports newly linked to an incident.",
                                      registry=registry)
        self.report_surges = Counter("statusd_report_surges_total",
                                     "Surges of customer reports signalled (each opens, re-opens, joins or grows "
                                     "an incident).", registry=registry)
        self.report_detector_restarts = Counter("statusd_report_detector_restarts_total",
                                                "Times a lost report detector was replaced by a new one.",
                                                registry=registry)
        self.report_detector_warming = Gauge("statusd_report_detector_warming",
                                             "1 while the report detector relearns the stored history (start-up, "
                                             "restart); new reports are detected after it.", registry=registry)
        self.report_form_refused = Counter("statusd_report_form_refused_total",
                                           "Public form submissions not stored, by reason (rate_limited, honeypot, "
                                           "invalid).", ["reason"], registry=registry)
        # Every reason from the start at 0: a series that appears at its first count has no increase() to alert on.
        for reason in ("backfill", "detector_failed", "shutdown"):
            self.reports_undetected.labels(reason)
        for reason in ("rate_limited", "honeypot", "invalid"):
            self.report_form_refused.labels(reason)
        self.oncall_gap = Gauge("statusd_oncall_coverage_gap_seconds",
                                "Seconds with nobody on call in the schedule over the next 7 days.",
                                ["schedule"], registry=registry)

    # observer hooks ------------------------------------------------------------------

    def probe_result(self, result: ProbeResult) -> None:
        """A probe check finished: its up/down state, duration and outcome."""
        outcome = "degraded" if result.ok and result.degraded else ("up" if result.ok else "down")
        self.probe_up.labels(result.probe).set(1 if result.ok else 0)
        self.probe_duration.labels(result.probe).observe(result.latency_s)
        self.probe_checks.labels(result.probe, outcome).inc()

    def probe_lag(self, probe: str, lag_s: float) -> None:
        """A check started `lag_s` after it was due."""
        self.probe_schedule_lag.observe(lag_s)  # not by probe: see the histogram's definition

    def probe_results_pruned(self, count: int) -> None:
        """`count` raw probe results were deleted after the retention window."""
        self.probe_results_pruned_total.inc(count)

    def incident_opened(self, incident: Incident) -> None:
        """An incident was opened."""
        self.incidents_opened.labels(incident.source, incident.impact.value).inc()

    def incident_acknowledged(self, incident: Incident) -> None:
        """An incident was first acknowledged: its time to acknowledge."""
        if incident.acknowledged_at:
            self.time_to_ack.labels(incident.impact.value).observe(
                (incident.acknowledged_at - incident.opened_at).total_seconds())

    def first_public_update(self, incident: Incident) -> None:
        """An incident got its first public update: the time it took."""
        if incident.first_public_update_at:
            self.time_to_first_update.labels(incident.impact.value).observe(
                (incident.first_public_update_at - incident.opened_at).total_seconds())

    def incident_resolved(self, incident: Incident) -> None:
        """An incident was resolved: counted, with its time to resolve."""
        self.incidents_resolved.labels(incident.impact.value).inc()
        if incident.resolved_at:
            self.time_to_resolve.labels(incident.impact.value).observe(
                (incident.resolved_at - incident.opened_at).total_seconds())

    def reminder(self, incident: Incident) -> None:
        """A reminder went out because an incident's public update was overdue."""
        self.update_reminders.labels(incident.impact.value).inc()

    def notifiers_configured(self, notifiers: Sequence[str]) -> None:
        """Every outcome and failure reason of each notifier from 0, so the first dead delivery has an increase()."""
        for notifier in notifiers:
            for outcome in OUTCOMES:
                self.deliveries.labels(notifier, outcome)
            for reason in Reason:
                self.delivery_failures.labels(notifier, reason.value)

    def delivery(self, notifier: str, outcome: str, latency_s: float | None) -> None:
        """A delivery attempt ended in `outcome`; `latency_s` (from enqueueing) for a sent one."""
        self.deliveries.labels(notifier, outcome).inc()
        self.stale()  # the outbox counts moved
        if latency_s is not None:
            self.delivery_latency.labels(notifier).observe(latency_s)

    def delivery_failed(self, notifier: str, failure: Failure) -> None:
        """A delivery attempt failed; counted by its bounded reason, never by its error text."""
        self.delivery_failures.labels(notifier, failure.reason.value).inc()

    def reports_received(self, source: str, stored: int, duplicates: int) -> None:
        """Reports accepted from `source`: how many were new and how many duplicates."""
        if stored:
            self.reports_accepted.labels(source, "stored").inc(stored)
        if duplicates:
            self.reports_accepted.labels(source, "duplicate").inc(duplicates)

    def reports_not_detected(self, reason: str, count: int) -> None:
        """`count` stored reports were not seen by the live detector, for `reason`."""
        if count:
            self.reports_undetected.labels(reason).inc(count)

    def reports_linked_to_incidents(self, count: int) -> None:
        """`count` reports were newly linked to an incident."""
        if count:
            self.reports_linked.inc(count)

    def report_surge(self) -> None:
        """A surge of reports was signalled."""
        self.report_surges.inc()

    def report_detector_restarted(self) -> None:
        """A lost report detector was replaced."""
        self.report_detector_restarts.inc()

    def report_detector_warming_up(self, warming: bool) -> None:
        """Whether the report detector is relearning the stored history now."""
        self.report_detector_warming.set(int(warming))

    def report_form_refusal(self, reason: str) -> None:
        """A public form submission was not stored, for `reason`."""
        self.report_form_refused.labels(reason).inc()

    # scrape ----------------------------------------------------------------------------

    def stale(self) -> None:
        """Something in the store changed: the next scrape after `reload_interval_s` reloads the mirrored gauges."""
        self._stale = True

    async def load(self, store: Store) -> None:
        """Recompute every gauge that mirrors the store from scratch (at start, and after changes)."""
        # Cleared before reading, so a change committed while we read marks the mirror stale again.
        self._stale = False
        async with store.read() as r:
            open_incidents = await r.incidents.list_open()
            components = await r.components.list()
            counts = await r.outbox.counts()
        self._loaded_at = self._clock.now() if self._clock is not None else None
        deadlines = []
        by_impact: dict[str, int] = {}
        for incident in open_incidents:
            by_impact[incident.impact.value] = by_impact.get(incident.impact.value, 0) + 1
            if limit := self._reminder_s.get(incident.impact.value):
                last = incident.last_public_update_at or incident.opened_at
                deadlines.append(last + timedelta(seconds=limit))
        self._overdue_from = sorted(deadlines)
        for impact in _IMPACTS:
            self.incidents_open.labels(impact).set(by_impact.get(impact, 0))
        self.component_status.clear()
        for component in components:
            for status in ComponentStatus:
                self.component_status.labels(component.id, status.value).set(int(component.status == status))
        for outbox_status in OutboxStatus:
            self.outbox_messages.labels(outbox_status.value).set(counts.get(outbox_status.value, 0))

    async def scrape(self, store: Store) -> bytes:
        """The exposition; costs O(series) unless the store changed and the last load is `reload_interval_s` old."""
        now = self._clock.now() if self._clock is not None else None
        # The first change after a quiet spell shows at the next scrape; a busy spell costs one load per interval.
        due = self._loaded_at is None or now is None or (now - self._loaded_at).total_seconds() >= self.max_age_s or (
            self._stale and (self._reloaded_at is None
                             or (now - self._reloaded_at).total_seconds() >= self.reload_interval_s))
        if due and not self._loading.locked():  # one load at a time; scrapes meanwhile see the last values
            async with self._loading:
                self._reloaded_at = now
                await self.load(store)
        if now is not None:
            # Deadlines are sorted: the overdue ones are those before now.
            self.updates_overdue.set(bisect.bisect_left(self._overdue_from, now))
            self._set_schedule_gauges(now)
        return self.exposition()

    def _set_schedule_gauges(self, now: datetime) -> None:
        if self._schedules_at is not None and (now - self._schedules_at).total_seconds() < self.reload_interval_s:
            return
        self._schedules_at = now
        for name, schedule in self._schedules.items():
            self.oncall_covered.labels(name).set(int(schedule.on_call(now) is not None))
            gaps = schedule.gaps(now, now + timedelta(days=7))
            self.oncall_gap.labels(name).set(sum((g.end - g.start).total_seconds() for g in gaps))

    def exposition(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
