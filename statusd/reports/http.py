"""Customer reports in: the token API for helpdesks, chat and phone systems, and the public form.

Every accepted report is stored first (idempotent on source + external id), then folded
into the report detector. A surge becomes a Signal for the coordinator; every report of
the surging group is linked to the incident, and so is every later report of the group
while it is active. Linked clients hear from the coordinator's outbox: an
acknowledgement with the latest state, then every public update, then the resolution.
A whole request is validated before anything is stored: a batch with one bad item is
refused whole, naming the item and field.
"""

from __future__ import annotations

import asyncio
import codecs
import html
import logging
import time as _time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from aiohttp import web

from statusd.api.routes import Body, Token, WriteApi, parse_time, path_id
from statusd.incidents.coordinator import Coordinator
from statusd.core.clock import Clock
from statusd.core.errors import NotFound, ValidationError
from statusd.web.body import UnsupportedCoding, content_coding, read_body
from statusd.core.model import CustomerReport
from statusd.core.protocols import Store
from statusd.core.schema import http_url
from statusd.reports.text import TAG_KEYS, Report
from statusd.reports.host import DetectorHost, DetectorLost
from statusd.reports.outcome import ReportOutcome

log = logging.getLogger(__name__)

REPORT_FIELDS = {"client_id", "text", "channel", "contact", "tags", "received_at", "external_id", "ticket_url"}


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """Bounds on what one report may carry (from `[reports]` in config)."""

    max_text_chars: int = 5000
    max_batch: int = 500
    max_future_s: float = 300.0
    max_age_days: float = 30.0
    form_notifier: str | None = None
    form_rate_per_min: int = 5
    commit_batch: int = 1000  # most reports stored in one group commit
    # A report received longer ago than this (the surge window) is backfill: stored and listed, and
    # replayed in time order by a rebuild within `rebuild_hours`, but never part of a live surge.
    live_s: float = 1800.0


class IntakeObserver(Protocol):
    """What the intake reports (statusd.metrics.Metrics implements it)."""

    def reports_received(self, source: str, stored: int, duplicates: int) -> None: ...

    def reports_not_detected(self, reason: str, count: int) -> None: ...

    def reports_linked_to_incidents(self, count: int) -> None: ...

    def report_surge(self) -> None: ...

    def report_detector_restarted(self) -> None: ...

    def report_detector_warming_up(self, warming: bool) -> None: ...

    def report_form_refusal(self, reason: str) -> None: ...


class _Unobserved:
    """The observer when none is given (tests of the intake alone)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


class ReportIntake:
    """Stores, detects and links customer reports; the only writer of reports."""

    def __init__(self, store: Store, coordinator: Coordinator, detector: DetectorHost, clock: Clock, *,
                 components: Mapping[str, str], notifiers: Mapping[str, Any], limits: IntakeLimits = IntakeLimits(),
                 rebuild_hours: float = 24.0, observer: IntakeObserver | None = None) -> None:
        self.store = store
        self.coordinator = coordinator
        self.detector = detector
        self.clock = clock
        self.components = dict(components)  # id → display name
        self.notifiers = dict(notifiers)  # name → config, for check_recipient
        self.limits = limits
        self.rebuild_hours = rebuild_hours  # what a new detector learns from the store
        self.observer: IntakeObserver = observer or _Unobserved()  # type: ignore[assignment]
        self._incident_by_key: dict[str, int] = {}
        # Incidents stage three's signals opened or joined, numbered in order: a read of the open
        # incidents taken during detection may predate the latest of them.
        self._handled: dict[int, tuple[int, str | None]] = {}  # incident id → (number, dedup key)
        self._handled_count = 0
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

    # --- validation ------------------------------------------------------------------------

    def parse(self, data: Any, path: str, source: str) -> CustomerReport:
        """One report from a JSON object, or ValidationError naming `path.field`."""
        if not isinstance(data, dict):
            raise ValidationError(path or "body", "must be a JSON object")
        body = _Prefixed(data, REPORT_FIELDS, path)
        now = self.clock.now()
        client_id = body.text("client_id", required=True, max_len=320)  # room for an e-mail address and a prefix
        text = body.text("text", required=True, max_len=self.limits.max_text_chars)
        if not any(c.isprintable() and not c.isspace() for c in text or ""):
            raise ValidationError(body.key("text"), "must contain visible text")
        channel = body.text("channel", max_len=50) or "api"
        external_id = body.text("external_id", max_len=200)
        if external_id == "":  # "" would make every later empty id a duplicate of the first report
            raise ValidationError(body.key("external_id"), "must not be empty (leave it out when there is none)")
        ticket_url = body.text("ticket_url", max_len=2000)
        if ticket_url is not None and not http_url(ticket_url):
            raise ValidationError(body.key("ticket_url"), "expected an absolute http(s) URL")
        contact = self._contact(data.get("contact"), body.key("contact"))
        tags = self._tags(data.get("tags"), body.key("tags"))
        received_at = now
        if data.get("received_at") is not None:
            received_at = parse_time(data["received_at"], body.key("received_at"))
            if received_at > now + timedelta(seconds=self.limits.max_future_s):
                raise ValidationError(body.key("received_at"), "is in the future")
            if received_at < now - timedelta(days=self.limits.max_age_days):
                raise ValidationError(body.key("received_at"), f"is older than {self.limits.max_age_days:g} days")
        return CustomerReport(source=source, client_id=client_id or "", text=text or "", channel=channel,
                              received_at=received_at, tags=tags, contact=contact, external_id=external_id,
                              ticket_url=ticket_url, created_at=now)

    def _contact(self, value: Any, key: str) -> tuple[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"notifier", "address"}:
            raise ValidationError(key, 'expected {"notifier": <name>, "address": <address on it>}')
        notifier, address = value.get("notifier"), value.get("address")
        if not isinstance(notifier, str) or notifier not in self.notifiers:
            raise ValidationError(f"{key}.notifier", "expected one of: " + (", ".join(sorted(self.notifiers)) or "none"))
        if not isinstance(address, str) or not address.strip():
            raise ValidationError(f"{key}.address", "required")
        problem = self.notifiers[notifier].check_recipient(address.strip())
        if problem:
            raise ValidationError(f"{key}.address", problem)
        return notifier, address.strip()

    def _tags(self, value: Any, key: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValidationError(key, "must be an object with component, region or category")
        for tag, tag_value in value.items():
            if tag not in TAG_KEYS:
                raise ValidationError(f"{key}.{tag}", "unknown tag (allowed: " + ", ".join(TAG_KEYS) + ")")
            if not isinstance(tag_value, str) or not tag_value or len(tag_value) > 100:
                raise ValidationError(f"{key}.{tag}", "must be a non-empty string of at most 100 characters")
        if "component" in value and value["component"] not in self.components:
            raise ValidationError(f"{key}.component", f"no component {value['component']!r}")
        return dict(value)

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
            outcomes, open_now = await asyncio.gather(self._observe(fresh), self._open_now()) if fresh else ([], None)
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
                    open_now: _OpenIncidents | None) -> list[dict[str, Any]]:
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
                    self._handled_count += 1
                    self._handled[incident.id] = (self._handled_count, incident.dedup_key)
                    if outcome.incident_key:
                        self._incident_by_key[outcome.incident_key] = incident.id
            if outcome.incident_key and outcome.link_report_ids:
                links.setdefault(outcome.incident_key, []).extend(int(i) for i in outcome.link_report_ids)
                keyed.append((result, outcome.incident_key))
                if outcome.signal is not None:
                    signalled.add(outcome.incident_key)
        incidents = await self._incidents_for(links, self._still_open(open_now))
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

    async def _open_now(self) -> _OpenIncidents | None:
        """Every open incident's id and dedup key (few, even in a flood); None if the read failed."""
        handled = self._handled_count  # before the read: what stage three handled until now, it sees
        try:
            async with self.store.read() as r:
                return _OpenIncidents(await r.incidents.open_keys(), handled)
        except Exception:  # noqa: BLE001 - stage three reads them again
            log.exception("reading the open incidents failed")
            return None

    def _still_open(self, read: _OpenIncidents | None) -> dict[int, str | None] | None:
        """The incidents open at `read`, plus those stage three's signals opened or joined since it began."""
        if read is None:
            return None
        self._handled = {i: handled for i, handled in self._handled.items() if handled[0] > read.handled}
        return {**read.keys, **{i: key for i, (_, key) in self._handled.items()}}

    async def _incidents_for(self, keys: Iterable[str], open_ids: dict[int, str | None] | None) -> dict[str, int]:
        """The open incident each surge belongs to: remembered, or found by its dedup key (e.g. after a restart).

        `open_ids`: the open incidents' ids and dedup keys, read here if None.
        """
        keys = list(keys)
        if not keys:
            return {}
        if open_ids is None:
            async with self.store.read() as r:
                open_ids = await r.incidents.open_keys()
        by_key = {key: incident_id for incident_id, key in open_ids.items() if key}
        # Forget surges whose incident was resolved, so the map stays as small as the open incidents.
        self._incident_by_key = {k: v for k, v in self._incident_by_key.items() if v in open_ids}
        found: dict[str, int] = {}
        for key in keys:
            known = self._incident_by_key.get(key)
            incident_id = known if known in open_ids else by_key.get(key)
            if incident_id is not None:
                self._incident_by_key[key] = found[key] = incident_id
        return found

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
        is left alone: people closed it.
        """
        signal = outcome.signal
        assert signal is not None and outcome.incident_key is not None
        async with self.store.read() as r:
            incident = (await r.incidents.find_open_by_dedup_key(signal.dedup_key)
                        or await r.incidents.find_open_joined(signal.dedup_key))
            if incident is None and await r.incidents.find_recent_by_dedup_key(signal.dedup_key, signal.at):
                return
        if incident is None:
            log.warning("surge %s fired before the restart without an incident: opening it now", outcome.incident_key)
            self.observer.report_surge()  # its count, if any, was lost with the process
            incident = await self.coordinator.handle(signal)
        if incident is None or incident.id is None:
            return
        self._incident_by_key[outcome.incident_key] = incident.id
        linked = await self.coordinator.link_reports_many({incident.id: [int(i) for i in outcome.link_report_ids]},
                                                          open_only=True)
        self.observer.reports_linked_to_incidents(sum(linked.values()))

    # --- HTTP ----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application, api: WriteApi) -> None:
        """The token API (`reports:write`, authorised by `api`) and the public form, in the page's layout."""
        self._api = api
        self._render = api.render_page
        app.router.add_post("/api/v1/reports", self.post_report)
        app.router.add_post("/api/v1/reports/batch", self.post_batch)
        app.router.add_get("/api/v1/incidents/{id}/reports", self.incident_reports)
        app.router.add_get("/report", self.form)
        app.router.add_post("/report", self.submit_form)
        self._buckets: dict[str, tuple[float, float]] = {}

    def _token(self, request: web.Request) -> Token:
        return self._api.authorize(request, "reports:write")

    async def post_report(self, request: web.Request) -> web.Response:
        token = self._token(request)
        body = await Body.read(request, REPORT_FIELDS)
        report = self.parse(body.data, "", f"api:{token.id}")
        [result] = await self.ingest([report])
        return web.json_response({"report": result}, status=200 if result["duplicate"] else 202)

    async def post_batch(self, request: web.Request) -> web.Response:
        token = self._token(request)
        body = await Body.read(request, {"reports"})
        items = body.data.get("reports")
        if not isinstance(items, list) or not items:
            raise ValidationError("reports", "must be a non-empty list of reports")
        if len(items) > self.limits.max_batch:
            raise ValidationError("reports", f"at most {self.limits.max_batch} reports per batch")
        reports = [self.parse(item, f"reports[{i}]", f"api:{token.id}") for i, item in enumerate(items)]
        seen: dict[str, int] = {}
        for i, report in enumerate(reports):
            if report.external_id is not None:
                if report.external_id in seen:
                    raise ValidationError(f"reports[{i}].external_id",
                                          f"repeats reports[{seen[report.external_id]}].external_id")
                seen[report.external_id] = i
        results = await self.ingest(reports)
        return web.json_response({"reports": results}, status=202)

    async def incident_reports(self, request: web.Request) -> web.Response:
        """The reports linked to an incident and the distinct clients affected."""
        self._api.authorize(request, None)
        incident_id = path_id(request)
        async with self.store.read() as r:
            if await r.incidents.get(incident_id) is None:
                raise NotFound("incident", incident_id)
            linked = await r.reports.for_incident(incident_id)
        clients: dict[str, dict[str, Any]] = {}
        for report in linked:
            entry = clients.setdefault(report.client_id, {"client_id": report.client_id, "reports": 0,
                                                          "contacts": [], "first_report_at": report.received_at})
            entry["reports"] += 1
            if report.contact and list(report.contact) not in entry["contacts"]:
                entry["contacts"].append(list(report.contact))
        return web.json_response({
            "incident_id": incident_id,
            "clients": [{**c, "first_report_at": c["first_report_at"].isoformat()} for c in clients.values()],
            "reports": [{"id": r.id, "client_id": r.client_id, "channel": r.channel, "text": r.text,
                         "received_at": r.received_at.isoformat(), "tags": r.tags, "external_id": r.external_id,
                         "ticket_url": r.ticket_url} for r in linked],
        })

    # --- the public form ---------------------------------------------------------------------

    async def form(self, request: web.Request) -> web.Response:
        return self._render("Report a problem", _FORM.format(
            max=self.limits.max_text_chars,
            email=_EMAIL_FIELD if self.limits.form_notifier else "",
            options="".join(f'<option value="{html.escape(cid)}">{html.escape(name)}</option>'
                            for cid, name in self.components.items())), 200)

    async def submit_form(self, request: web.Request) -> web.Response:
        """A visitor's report: rate-limited per address, size-limited, with a honeypot against bots."""
        if not self._allow(request.remote or "unknown"):
            self.observer.report_form_refusal("rate_limited")
            return self._render("Too many reports", "<p>Thank you — we already have your reports. Please try again "
                                "in a few minutes.</p>", 429)
        try:
            form = await _form_fields(request)
        except ValidationError as exc:
            return self._form_error(exc.field, exc.message, exc.status)
        if form.get("website"):  # the hidden honeypot: people leave it empty, bots fill it in
            self.observer.report_form_refusal("honeypot")
            return self._render("Thank you", "<p>Thank you for your report.</p>", 200)
        files = [name for name, value in form.items() if not isinstance(value, str)]
        if files:
            return self._form_error(files[0], "must be text, not a file")
        nul = [name for name, value in form.items() if "\0" in value]
        if nul:  # as in a JSON body (statusd.core.json_body): PostgreSQL's text cannot hold it
            return self._form_error(nul[0], "contains a NUL character")
        data: dict[str, Any] = {"client_id": f"form:{request.remote or 'unknown'}", "channel": "form",
                                "text": str(form.get("text", ""))}
        email = str(form.get("email", "")).strip()
        if email and self.limits.form_notifier:
            data["client_id"] = f"form:{email.lower()}"
            data["contact"] = {"notifier": self.limits.form_notifier, "address": email}
        component = str(form.get("component", "")).strip()
        if component:
            data["tags"] = {"component": component}
        try:
            report = self.parse(data, "", "form")
        except ValidationError as exc:
            # The form's own field names: the e-mail address is also the client id.
            field = {"contact.address": "email", "client_id": "email", "tags.component": "component"}
            return self._form_error(field.get(exc.field, exc.field), exc.message)
        await self.ingest([report])
        kept = " We will e-mail you about it." if "contact" in data else ""
        return self._render("Thank you", f"<p>Thank you — your report reached our team.{kept}</p>"
                            '<p><a href="/">Back to the status page</a></p>', 200)

    def _form_error(self, field: str, message: str, status: int = 400) -> web.Response:
        self.observer.report_form_refusal("invalid")
        return self._render("Please check your report", f"<p>{html.escape(field)}: {html.escape(message)}</p>"
                            '<p><a href="/report">Back to the form</a></p>', status)

    def _allow(self, remote: str) -> bool:
        """A token bucket per address: `form_rate_per_min` reports a minute, refilled continuously."""
        rate = self.limits.form_rate_per_min
        now = _time.monotonic()
        tokens, last = self._buckets.get(remote, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate / 60.0)
        if tokens < 1:
            self._buckets[remote] = (tokens, now)
            return False
        self._buckets[remote] = (tokens - 1, now)
        if len(self._buckets) > 100_000:  # bounded memory under a flood of addresses
            self._buckets.clear()
        return True


_FORM_CHARSETS = {"utf-8", "ascii", "iso8859-1", "cp1252"}  # codec names (codecs.lookup) a form may arrive in


async def _form_fields(request: web.Request) -> Mapping[str, Any]:
    """The form's fields; text that is not valid in its charset is refused, naming the field.

    aiohttp decodes a URL-encoded body leniently (a percent-encoded invalid byte becomes U+FFFD,
    a raw one fails with a traceback), so that form is decoded here, strictly.
    """
    if request.content_type not in ("application/x-www-form-urlencoded", ""):
        if content_coding(request) != "identity":
            raise UnsupportedCoding("Content-Encoding", "a multipart form is read as it is sent: send it without one")
        try:
            return await request.post()
        except (UnicodeError, LookupError) as exc:
            raise ValidationError("body", f"could not be decoded: {exc}") from None
        except web.HTTPException:  # over max_body_bytes: 413
            raise
        except Exception as exc:  # noqa: BLE001 - aiohttp's multipart reader: a part without a name, bad base64...
            raise ValidationError("body", f"is not a multipart form statusd can read: {exc}") from None
    charset = request.charset or "utf-8"
    try:
        known = codecs.lookup(charset).name
    except LookupError:
        known = ""
    if known not in _FORM_CHARSETS:  # e.g. utf-7 or unicode_escape, which decode to lone surrogates
        raise ValidationError("body", f"charset {charset!r} is not supported (utf-8, iso-8859-1 or windows-1252)")
    fields: dict[str, str] = {}
    for pair in (await read_body(request, request.client_max_size, "[server] max_body_bytes")).split(b"&"):
        if not pair.strip():
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode(charset)
        except UnicodeDecodeError:
            raise ValidationError("body", f"a field name is not valid {charset}") from None
        try:
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode(charset)
        except UnicodeDecodeError:
            raise ValidationError(name, f"is not valid {charset} text") from None
        fields.setdefault(name, value)  # the first of a repeated field, as aiohttp's MultiDict.get gives
    return fields


@dataclass(frozen=True, slots=True)
class _Observed:
    """Requests whose reports the detector has seen, with its outcome per newly stored report."""

    batch: list[_Pending]
    outcomes: list[ReportOutcome | None]
    open_now: _OpenIncidents | None  # read during detection


@dataclass(frozen=True, slots=True)
class _OpenIncidents:
    """The open incidents' ids and dedup keys, read after stage three had handled `handled` signals."""

    keys: dict[int, str | None]
    handled: int


@dataclass(slots=True)
class _Pending:
    """One request's reports on their way through the intake's three stages."""

    reports: list[CustomerReport]
    waiter: asyncio.Future[list[dict[str, Any]]]
    stored: list[tuple[CustomerReport, bool]] = field(default_factory=list)


def _ensure_running(task: asyncio.Task[None] | None, stage: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
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


class _Prefixed(Body):
    """A Body whose field errors carry a prefix (`reports[3].text`)."""

    def __init__(self, data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        self.prefix = prefix
        for key in data:
            if key not in allowed:
                raise ValidationError(self.key(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def text(self, key: str, *, required: bool = False, max_len: int = 10_000, default: str | None = None) -> str | None:
        try:
            return super().text(key, required=required, max_len=max_len, default=default)
        except ValidationError as exc:
            raise ValidationError(self.key(exc.field), exc.message) from None


def _for_detector(report: CustomerReport) -> Report:
    return Report(id=str(report.id), client_id=report.client_id, text=report.text, received_at=report.received_at,
                  channel=report.channel, tags=dict(report.tags),
                  contact=":".join(report.contact) if report.contact else None)


_EMAIL_FIELD = ('<p><label for="email">Your e-mail (optional): we will tell you when it is fixed</label><br>'
                '<input id="email" name="email" type="email" maxlength="254" autocomplete="email"></p>')
_FORM = """<form method="post" action="/report">
<p><label for="text">What is not working?</label><br>
<textarea id="text" name="text" rows="5" cols="60" maxlength="{max}" required></textarea></p>
<p><label for="component">Which service (optional)</label><br>
<select id="component" name="component"><option value="">Not sure</option>{options}</select></p>
{email}
<p class="hp" aria-hidden="true" style="position:absolute;left:-10000px"><label for="website">Leave this empty</label>
<input id="website" name="website" tabindex="-1" autocomplete="off"></p>
<p><button type="submit">Send report</button></p>
</form>"""
