"""The group commit of customer reports: store → detect → link, in three stages that overlap.

Every accepted report is stored first (idempotent on source + external id), then folded
into the report detector. A surge becomes a Signal for the coordinator; every report of
the surging group is linked to the incident, and so is every later report of the group
while it is active (which incident: statusd.reports.surge_incidents). Linked clients hear from
the coordinator's outbox: an acknowledgement with the latest state, then every public update,
then the resolution. Reports reach this pipeline validated (statusd.reports.validation), from
the API (statusd.reports.http) or the public form (statusd.reports.form).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from statusd.core.clock import Clock
from statusd.core.model import CustomerReport, EntryKind
from statusd.core.protocols import Store, Tx
from statusd.incidents.coordinator import Coordinator
from statusd.reports.host import DetectorHost, DetectorLost
from statusd.reports.outcome import ReportOutcome
from statusd.reports.surge_incidents import OpenIncidents, SurgeIncidents
from statusd.reports.text import Report
from statusd.reports.validation import IntakeLimits

log = logging.getLogger(__name__)


class IntakeObserver(Protocol):
    """What the pipeline reports (statusd.metrics.Metrics implements it)."""

    def reports_received(self, source: str, stored: int, duplicates: int) -> None: ...

    def reports_not_detected(self, reason: str, count: int) -> None: ...

    def reports_linked_to_incidents(self, count: int) -> None: ...

    def report_surge(self) -> None: ...

    def report_detector_restarted(self) -> None: ...

    def report_detector_warming_up(self, warming: bool) -> None: ...


class _Unobserved:
    """The observer when none is given (tests of the pipeline alone): every report is a no-op."""

    def reports_received(self, source: str, stored: int, duplicates: int) -> None: ...

    def reports_not_detected(self, reason: str, count: int) -> None: ...

    def reports_linked_to_incidents(self, count: int) -> None: ...

    def report_surge(self) -> None: ...

    def report_detector_restarted(self) -> None: ...

    def report_detector_warming_up(self, warming: bool) -> None: ...


class ReportPipeline:
    """Stores, detects and links validated customer reports in a group commit; the only writer of reports."""

    def __init__(self, store: Store, coordinator: Coordinator, detector: DetectorHost, clock: Clock, *,
                 limits: IntakeLimits = IntakeLimits(), rebuild_hours: float = 24.0,
                 observer: IntakeObserver | None = None) -> None:
        self.store = store
        self.coordinator = coordinator
        self.detector = detector
        self.clock = clock
        self.limits = limits
        self.rebuild_hours = rebuild_hours  # what a new detector learns from the store
        self.observer: IntakeObserver = observer or _Unobserved()
        self.surges = SurgeIncidents(store)
        self._waiting: deque[_Pending] = deque()  # stage one: to be stored
        self._stored: deque[_Pending] = deque()  # stage two: stored, to be detected
        self._observed: deque[_Observed] = deque()  # stage three: detected, to be linked and answered
        self._committer: asyncio.Task[None] | None = None
        self._detecting: asyncio.Task[None] | None = None
        self._linking: asyncio.Task[None] | None = None
        self._rebuilding: asyncio.Task[None] | None = None  # the start-up replay (`start_rebuild`)
        # What that replay left: "done", "failed" (the next live batch relearns first, as after a lost
        # detector) or "cancelled" (shutting down: live reports stay stored, the next start replays them).
        self._replayed = "done"

    # --- processing ------------------------------------------------------------------------

    async def ingest(self, reports: Sequence[CustomerReport]) -> list[dict[str, Any]]:
        """Store, detect and link a validated batch; returns one result per report.

        Requests share the work, in three stages that overlap. Stage one stores every report
        waiting since its last commit in one transaction. Stage two hands every stored report
        not yet detected to the detector at once. Stage three, in the same order, opens
        incidents for surges and links reports in one more transaction, while the detector
        already works on the next reports. So under load the cost per report shrinks, and
        each stage overlaps the others, instead of each request queueing for its own
        commits behind the single writer, or the detector waiting for the links.
        """
        waiter: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(list(reports), waiter))
        self._committer = _ensure_running(self._committer, self._store_waiting, "report-store")
        return await asyncio.shield(waiter)  # a client hanging up must not cancel the others' commit

    async def close(self) -> None:
        """Finish the work under way and queued behind it, then stop the detector (before the store closes)."""
        if self._rebuilding is not None and self._replaying():
            # A replay half done is of no use now, and relearning during shutdown would only delay it.
            self._replayed = "cancelled"
            self._rebuilding.cancel()
            await asyncio.wait([self._rebuilding])
        # A stage may start the next one again while finishing, hence the loop.
        while running := [t for t in (self._committer, self._detecting, self._linking)
                          if t is not None and not t.done()]:
            await asyncio.gather(*running, return_exceptions=True)
        await self.detector.close()

    async def _store_waiting(self) -> None:
        while self._waiting:
            batch: list[_Pending] = []
            size = 0
            while self._waiting and size < self.limits.commit_batch:
                batch.append(self._waiting.popleft())
                size += len(batch[-1].reports)
            try:
                await self._store(batch)
            except Exception as exc:  # noqa: BLE001 - answered below
                if len(batch) == 1:
                    _fail(batch, exc)
                    continue
                # What failed may be one request's reports, not the store: each request is stored on its
                # own, so only the requests that fail alone answer with an error.
                kept = []
                for pending in batch:
                    try:
                        await self._store([pending])
                    except Exception as alone:  # noqa: BLE001 - this request answers with its failure
                        _fail([pending], alone)
                    else:
                        kept.append(pending)
                batch = kept
            if self._replaying():
                # The detector is still relearning the stored history (start-up, 30 s and more for 40,000
                # reports): say at once that the reports are stored rather than hold the callers for it.
                # They are detected, linked and acknowledged after the history, in order.
                for pending in batch:
                    if not pending.waiter.done():
                        pending.waiter.set_result([{**result, "detection": "pending"}
                                                   for result in _stored_results(pending.stored)])
            self._stored.extend(batch)
            if self._stored:
                self._detecting = _ensure_running(self._detecting, self._detect_stored, "report-detect")

    async def _store(self, batch: list[_Pending]) -> None:
        """Every report of these requests in one transaction; each request then holds its stored reports."""
        async with self.store.transaction(brief=True) as tx:
            stored = await tx.reports.add_many([report for pending in batch for report in pending.reports])
        for pending in batch:
            pending.stored, stored = stored[:len(pending.reports)], stored[len(pending.reports):]
            created = sum(1 for _, new in pending.stored if new)
            self.observer.reports_received(pending.reports[0].source, created, len(pending.stored) - created)

    async def _detect_stored(self) -> None:
        """Stage two: the detector folds in every stored report it has not seen, in order, in one call.

        Meanwhile the open incidents are read, so that stage three maps surges to incidents
        without waiting for a read of its own.
        """
        await self.replayed()  # live reports come after the history the detector is replaying
        while self._stored:
            batch = list(self._stored)
            self._stored.clear()
            fresh = [report for pending in batch for report, created in pending.stored if created]
            outcomes, open_now = await asyncio.gather(self._observe(fresh), self.surges.read_open()) if fresh else ([], None)
            self._observed.append(_Observed(batch, outcomes, open_now))
            self._linking = _ensure_running(self._linking, self._link_observed, "report-link")

    async def _link_observed(self) -> None:
        """Stage three, in detection order: incidents for surges, links, and the answers to the requests."""
        while self._observed:
            done = list(self._observed)
            self._observed.clear()
            batch = [pending for observed in done for pending in observed.batch]
            stored = [pair for pending in batch for pair in pending.stored]
            try:
                results = await self._link(stored, [outcome for observed in done for outcome in observed.outcomes],
                                           done[-1].open_now)
            except Exception:  # noqa: BLE001 - the reports are stored: answer so, and say what failed in the log
                log.exception("opening incidents or linking failed for %d stored reports", len(stored))
                results = _stored_results(stored)
            for pending in batch:
                mine, results = results[:len(pending.stored)], results[len(pending.stored):]
                if not pending.waiter.done():
                    pending.waiter.set_result(mine)

    async def _observe(self, fresh: list[CustomerReport]) -> list[ReportOutcome | None]:
        """The detector's outcome per newly stored report; None for backfill and where detection failed.

        Backfill (received before the surge window) is not detected live: twenty-day-old tickets
        must not open an incident today, nor land in today's windows among the current reports.
        Never raises: the requests waiting for these reports are answered whatever happens here.
        """
        since = self.clock.now() - timedelta(seconds=self.limits.live_s)
        live = [report for report in fresh if report.received_at >= since]
        self.observer.reports_not_detected("backfill", len(fresh) - len(live))
        detected = await self._observe_live(live) if live else []
        if missed := detected.count(None):
            self.observer.reports_not_detected("shutdown" if self._replayed == "cancelled" else "detector_failed",
                                               missed)
        outcomes = iter(detected)
        return [next(outcomes) if report.received_at >= since else None for report in fresh]

    async def _observe_live(self, fresh: list[CustomerReport]) -> list[ReportOutcome | None]:
        reports: list[Report] = []
        try:
            reports = [_for_detector(report) for report in fresh]
            if self._replayed != "done":
                if self._replayed == "cancelled":  # shutting down mid-replay: a restart's replay includes these
                    return [None] * len(fresh)
                self._replayed = "done"  # failed: relearn on a new detector first, once
                return await self._recover(reports, before_id=min(int(r.id) for r in reports))
            return await self.detector.observe_many(reports)
        except DetectorLost:
            log.exception("report detector lost; starting a new one from the last %g h of reports", self.rebuild_hours)
            return await self._recover(reports, before_id=min(int(r.id) for r in reports))
        except Exception:  # noqa: BLE001 - e.g. the detector cannot be built: the reports stay stored
            log.exception("report detection failed for %d reports; they are stored, undetected", len(fresh))
            return [None] * len(fresh)

    async def _link(self, stored: list[tuple[CustomerReport, bool]], outcomes: list[ReportOutcome | None],
                    open_now: OpenIncidents | None) -> list[dict[str, Any]]:
        """Results for stored reports: open incidents for surges and link what belongs to them.

        `outcomes` are the detector's, one per newly stored report, in order. `open_now`: the
        open incidents as read during detection (None: read them here).
        """
        results = _stored_results(stored)
        fresh = [result for result, (_, created) in zip(results, stored) if created]
        links: dict[str, list[int]] = {}  # incident key → reports to link
        signalled: set[str] = set()  # keys whose surge signalled in this batch: opened, re-opened, joined or grew
        keyed: list[tuple[dict[str, Any], str]] = []
        for result, outcome in zip(fresh, outcomes):
            if outcome is None:
                continue
            result.update(group=outcome.group_key, incident_id=None)
            if outcome.signal is not None:
                self.observer.report_surge()
                incident = await self.coordinator.handle(outcome.signal)
                if incident is not None and incident.id is not None:
                    result["incident_id"] = incident.id
                    self.surges.handled(incident.id, incident.dedup_key, outcome.incident_key)
            if outcome.incident_key and outcome.link_report_ids:
                links.setdefault(outcome.incident_key, []).extend(int(i) for i in outcome.link_report_ids)
                keyed.append((result, outcome.incident_key))
                if outcome.signal is not None:
                    signalled.add(outcome.incident_key)
        incidents = await self.surges.incidents_for(links, self.surges.still_open(open_now))
        if incidents:
            by_incident: dict[int, list[int]] = {}  # two surges may share one incident (one joined the other)
            for key, ids in links.items():
                if key in incidents:
                    by_incident.setdefault(incidents[key], []).extend(ids)
            linked = await self.coordinator.link_reports_many(
                by_incident, noted={incidents[key] for key in signalled if key in incidents}, open_only=True)
            self.observer.reports_linked_to_incidents(sum(linked.values()))
            # `incidents` came from a read older than the link's transaction: one resolved since takes no reports.
            incidents = {key: incident_id for key, incident_id in incidents.items() if incident_id in linked}
        for result, key in keyed:
            result["incident_id"] = incidents.get(key)
        return results

    async def _recover(self, reports: list[Report], *, before_id: int) -> list[ReportOutcome | None]:
        """A new detector that learnt what came before these reports, then these: their surges still fire.

        Only reports older than the batch are replayed (signals dropped); the batch itself is
        observed for real, and later batches, already stored, come after it as usual.
        """
        try:
            await self.detector.restart()
            self.observer.report_detector_restarted()
            await self.rebuild(self.rebuild_hours, before_id=before_id)
            return await self.detector.observe_many(reports)
        except Exception:  # noqa: BLE001 - the reports stay stored and accepted; the next batch tries again
            log.exception("could not restart the report detector; %d reports are stored, undetected", len(reports))
            return [None] * len(reports)

    async def start_rebuild(self, hours: float) -> int:
        """At start-up: read the last `hours` of stored reports now, and `rebuild` from them in the background.

        The server answers meanwhile (the status page, the API); reports that arrive are stored
        at once and detected after the replay, in order. Returns how many reports are replayed.
        """
        recent = await self._recent(hours)

        async def replay() -> None:
            try:
                await self._replay(recent)
            except Exception:  # noqa: BLE001 - the first live batch relearns on a new detector (`_recover`)
                log.exception("warming up the report detector from %d stored reports failed", len(recent))
                self._replayed = "failed"
            else:
                if recent:
                    log.info("report detector warmed up with %d stored reports", len(recent))

        self._rebuilding = asyncio.create_task(replay(), name="report-rebuild")
        return len(recent)

    def _replaying(self) -> bool:
        """The start-up replay is under way."""
        return self._rebuilding is not None and not self._rebuilding.done()

    async def replayed(self) -> None:
        """Until the start-up replay has ended (done, failed or cancelled)."""
        if self._rebuilding is not None:
            await asyncio.wait([self._rebuilding])

    async def rebuild(self, hours: float, *, before_id: int | None = None) -> int:
        """Warm the detector with the last `hours` of stored reports (after a restart), then catch up on its surges.

        `before_id`: only reports stored before that one (the batch being recovered and later ones are not).
        """
        recent = await self._recent(hours, before_id)
        await self._replay(recent)
        return len(recent)

    async def _recent(self, hours: float, before_id: int | None = None) -> list[CustomerReport]:
        async with self.store.read() as r:
            recent = await r.reports.recent(self.clock.now() - timedelta(hours=hours))
        if before_id is not None:
            recent = [report for report in recent if report.id is not None and report.id < before_id]
        return recent

    async def _replay(self, recent: list[CustomerReport]) -> None:
        self.observer.report_detector_warming_up(True)
        try:
            active = await self.detector.rebuild([_for_detector(report) for report in recent])
        finally:
            self.observer.report_detector_warming_up(False)
        for outcome in active or ():
            try:
                await self._catch_up(outcome)
            except Exception:  # noqa: BLE001 - the others still catch up; the next restart tries again
                log.exception("catching up on surge %s after the rebuild failed", outcome.incident_key)

    async def _catch_up(self, outcome: ReportOutcome) -> None:
        """An active surge after a restart: its incident open and every report of it linked, as if nothing happened.

        Usually both are so already and this links nothing. A process killed after storing the
        report that tipped the surge, but before its signal was handled, lost the incident; one
        killed before the link transaction, the links. An incident resolved after the surge fired
        is left alone: people closed it. A surge whose incident people merged into another was
        joined to that one (the merge records it so), and is linked there.
        """
        signal = outcome.signal
        assert signal is not None and outcome.incident_key is not None
        async with self.store.read() as r:
            incident = (await r.incidents.find_open_by_dedup_key(signal.dedup_key)
                        or await r.incidents.find_open_joined(signal.dedup_key))
            if incident is None and (await r.incidents.find_recent_by_dedup_key(signal.dedup_key, signal.at)
                                     or await _resolved_joined(r, signal.dedup_key, signal.at)):
                return
        if incident is None:
            log.warning("surge %s fired before the restart without an incident: opening it now", outcome.incident_key)
            self.observer.report_surge()  # its count, if any, was lost with the process
            incident = await self.coordinator.handle(signal)
        if incident is None or incident.id is None:
            return
        self.surges.remember(outcome.incident_key, incident.id)
        linked = await self.coordinator.link_reports_many({incident.id: [int(i) for i in outcome.link_report_ids]},
                                                          open_only=True)
        self.observer.reports_linked_to_incidents(sum(linked.values()))


async def _resolved_joined(r: Tx, dedup_key: str, since: datetime) -> bool:
    """Whether an incident resolved since `since` had joined signals with `dedup_key` (merged into it, say)."""
    resolved = [i.id for i in await r.incidents.list_recent(since, _RECENTLY_RESOLVED)
                if i.id is not None and i.resolved_at is not None and i.resolved_at >= since]
    entries = await r.incidents.entries(resolved) if resolved else {}
    return any(entry.kind is EntryKind.SIGNAL and entry.data.get("joined") == dedup_key
               for timeline in entries.values() for entry in timeline)


_RECENTLY_RESOLVED = 200  # incidents read by `_resolved_joined`: far more than close while one surge lasts


@dataclass(frozen=True, slots=True)
class _Observed:
    """Requests whose reports the detector has seen, with its outcome per newly stored report."""

    batch: list[_Pending]
    outcomes: list[ReportOutcome | None]
    open_now: OpenIncidents | None  # read during detection


@dataclass(slots=True)
class _Pending:
    """One request's reports on their way through the intake's three stages."""

    reports: list[CustomerReport]
    waiter: asyncio.Future[list[dict[str, Any]]]
    stored: list[tuple[CustomerReport, bool]] = field(default_factory=list)


def _ensure_running(task: asyncio.Task[None] | None, stage: Callable[[], Coroutine[Any, Any, None]],
                    name: str) -> asyncio.Task[None]:
    """The stage's task: the running one, or a new one when it finished (stages exit when idle)."""
    if task is None or task.done():
        return asyncio.create_task(stage(), name=name)
    return task


def _stored_results(stored: list[tuple[CustomerReport, bool]]) -> list[dict[str, Any]]:
    return [{"id": report.id, "duplicate": not created, "incident_id": report.incident_id} for report, created in stored]


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.waiter.done():
            pending.waiter.set_exception(exc)


def _for_detector(report: CustomerReport) -> Report:
    return Report(id=str(report.id), client_id=report.client_id, text=report.text, received_at=report.received_at,
                  channel=report.channel, tags=dict(report.tags),
                  contact=":".join(report.contact) if report.contact else None)
