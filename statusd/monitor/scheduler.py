"""Runs probes on their intervals and feeds their results through detection to the coordinator.

Scheduling is APScheduler's: one interval job per probe. Each probe has a stable phase in
its interval, from a hash of its name, on a grid anchored to a fixed epoch: ten thousand
probes at 60 s spread evenly over the whole minute (no herd at :00), each keeps its second
across restarts and replicas, and the interval trigger counts from that anchor, never from
the last run, so nothing drifts. At most one run of a probe at a time; a semaphore bounds
how many checks are in flight; every check has a deadline just past its own timeout, so a
hanging target costs its own slot for its own timeout and nothing else — provided the
probes' HTTP connection pool is no smaller than `concurrency` (aiohttp's default cap of 100
connections is: a thousand hung requests then starve the healthy probes, see bench/README.md).
The lag histogram shows it: a check's lag runs from when it was due to when it got a slot.

Results reach the store through the result writer (`statusd.monitor.results`), a
write-behind buffer. A result that flips a probe's state flushes the buffer before the
coordinator hears of it, so the store never holds an incident without the results that
opened it. The retention job runs every `prune_every_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from statusd.core.clock import Clock
from statusd.core.model import ComponentStatus, ProbeResult, Signal
from statusd.core.protocols import Probe, Store
from statusd.monitor.results import ResultRetention, ResultWriter
from statusd.monitor.thresholds import ProbeState, Thresholds, dedup_key, observe, rebuild

log = logging.getLogger(__name__)

GRID_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # every probe's grid is anchored here, so phases survive restarts
DEADLINE_GRACE_S = 1.0  # a check gets its own timeout plus this before the monitor gives up on it


class MonitorObserver(Protocol):
    """What the monitor reports (statusd.metrics.Metrics implements it)."""

    def probe_result(self, result: ProbeResult) -> None: ...

    def probe_lag(self, probe: str, lag_s: float) -> None: ...

    def probe_results_pruned(self, count: int) -> None: ...


class SignalHandler(Protocol):
    """Where the monitor's Signals go (statusd.incidents.coordinator.Coordinator implements it)."""

    async def handle(self, signal: Signal) -> object: ...


def combined_key(component: str) -> str:
    """The dedup key of a component whose probes are combined (policy all or quorum)."""
    return f"component:{component}"


def phase_s(name: str, interval_s: float) -> float:
    """A stable offset in [0, interval_s) for a probe: the same on every start and every replica."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval_s


def first_run(name: str, interval_s: float, now: datetime) -> datetime:
    """The first time at or after `now` on the probe's grid: GRID_EPOCH + phase + k × interval."""
    interval = timedelta(seconds=interval_s)
    origin = GRID_EPOCH + timedelta(seconds=phase_s(name, interval_s))
    return origin - ((origin - now) // interval) * interval  # origin + ceil((now - origin) / interval) × interval


def scheduled_at(anchor: datetime, interval_s: float, now: datetime) -> datetime:
    """The latest grid time at or before `now` (the run `now` belongs to) on a grid through `anchor`."""
    interval = timedelta(seconds=interval_s)
    return anchor + ((now - anchor) // interval) * interval


class Monitor:
    """Runs each probe on its grid, turns its results into Signals, and hands results to the result writer."""

    def __init__(self, store: Store, coordinator: SignalHandler, clock: Clock, probes: Mapping[str, Probe],
                 settings: Mapping[str, Any], *, concurrency: int = 256, observer: MonitorObserver | None = None,
                 retention: timedelta = timedelta(days=7), prune_every_s: float = 3600.0,
                 prune_slice: timedelta = timedelta(seconds=15), flush_s: float = 0.25,
                 component_policy: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.coordinator = coordinator
        self.clock = clock
        self.probes = dict(probes)
        self.settings = dict(settings)  # probe name → its ProbeSettings
        self.thresholds = {
            name: Thresholds(s.failure_threshold, s.success_threshold, ComponentStatus(s.severity))
            for name, s in self.settings.items()
        }
        self.states: dict[str, ProbeState] = {}
        # component → "any" (each probe speaks for itself), "all" or "quorum" (its probes are combined)
        self.component_policy = dict(component_policy or {})
        self._combined: dict[str, ComponentStatus] = {}
        self.observer = observer
        if prune_every_s <= 0:
            raise ValueError("prune_every_s must be positive")
        self.retention = ResultRetention(store, clock, retention=retention, prune_slice=prune_slice,
                                         observer=observer)
        self.prune_every_s = prune_every_s
        # flush_s = 0 stores each result in its own transaction as it comes (no buffer).
        self.results = ResultWriter(store, clock, flush_s=flush_s) if flush_s > 0 else None
        self._slots = asyncio.Semaphore(concurrency)
        self._scheduler: AsyncIOScheduler | None = None
        self._anchors: dict[str, datetime] = {}  # probe name → the first run on its grid
        self._tasks: dict[str, asyncio.Task[None]] = {}  # checks (and the pruning) in flight, by job id
        self._writer: asyncio.Task[None] | None = None

    async def restore(self) -> None:
        """Rebuild detector state from the store: open incidents and the latest results."""
        async with self.store.read() as r:
            open_keys = {i.dedup_key for i in await r.incidents.list_open()}
            for name in self.probes:
                recent = await r.probe_results.recent(name, limit=max(self.thresholds[name].failure_threshold,
                                                                      self.thresholds[name].success_threshold))
                combined = self._policy(name) != "any"
                state = rebuild(recent, self.thresholds[name], failing=dedup_key(name) in open_keys)
                if combined:  # no incident per probe here: the latest results say whether it is failing
                    state = replace(state, failing=state.failures >= self.thresholds[name].failure_threshold)
                self.states[name] = state
                probe = self.probes[name]
                if hasattr(probe, "check_in"):  # a push probe remembers its last check-in across restarts
                    history = await r.probe_results.recent(name, limit=200)
                    last = next((res for res in history if res.detail.get("check_in")), None)
                    if last is not None:
                        probe.check_in(last.at)

        for cid in {s.component for s in self.settings.values() if s.component}:
            if self.component_policy.get(cid, "any") != "any" and combined_key(cid) in open_keys:
                self._combined[cid] = self._combine(cid)[0]

    def _policy(self, name: str) -> str:
        component = self.settings[name].component
        return self.component_policy.get(component, "any") if component else "any"

    def _combine(self, component: str) -> tuple[ComponentStatus, list[str], list[str]]:
        """The component's status from its probes under its policy, with the probes failing and all of them."""
        names = sorted(n for n, s in self.settings.items() if s.component == component)
        failing = [n for n in names if self.states.get(n, ProbeState()).failing]
        if not failing:
            return ComponentStatus.OPERATIONAL, failing, names
        if self.component_policy.get(component) == "all":  # redundancy: down only when every probe is
            status = (ComponentStatus.MAJOR_OUTAGE if len(failing) == len(names)
                      else ComponentStatus.DEGRADED_PERFORMANCE)
        else:  # quorum: a majority failing is an outage, fewer a partial one
            status = (ComponentStatus.MAJOR_OUTAGE if len(failing) * 2 > len(names)
                      else ComponentStatus.PARTIAL_OUTAGE)
        return status, failing, names

    def _combined_signal(self, component: str, at: datetime) -> Signal | None:
        """A component-level Signal when the combined status changed, else None."""
        status, failing, names = self._combine(component)
        previous = self._combined.get(component, ComponentStatus.OPERATIONAL)
        if status == previous:
            return None
        self._combined[component] = status
        firing = status != ComponentStatus.OPERATIONAL
        policy = self.component_policy[component]
        summary = (f"{len(failing)} of {len(names)} probes of {component} failing ({policy}): {', '.join(failing)}"
                   if firing else f"probes of {component} recovered")
        return Signal(source="probe", dedup_key=combined_key(component), components=(component,),
                      severity=status if firing else previous, summary=summary, at=at, firing=firing,
                      evidence={"policy": policy, "failing": failing, "probes": names})

    async def check_in(self, token: str) -> str | None:
        """A push probe's job checked in: record it (restart-safe) and return the probe's name, or None."""
        now = self.clock.now()
        for name, probe in self.probes.items():
            expected = getattr(probe, "token", None)
            if expected is not None and hmac.compare_digest(str(expected).encode(), token.encode()):
                probe.check_in(now)  # type: ignore[attr-defined]
                result = ProbeResult(probe=name, component=probe.component, at=now, ok=True, latency_s=0.0,
                                     detail={"check_in": True})
                async with self.store.transaction() as tx:
                    await tx.probe_results.add(result)
                return name
        return None

    async def run_once(self, name: str, scheduled: datetime | None = None) -> ProbeResult:
        """Check one probe now, act on the result and return it; `scheduled` is when the run was due (for lag)."""
        probe = self.probes[name]
        deadline_s = float(self.settings[name].timeout_s) + DEADLINE_GRACE_S
        async with self._slots:
            started = self.clock.now()
            if scheduled is not None and self.observer is not None:
                self.observer.probe_lag(name, max(0.0, (started - scheduled).total_seconds()))
            try:
                # The probe's own timeout should end it first; this bounds a plugin that forgets to.
                async with asyncio.timeout(deadline_s):
                    result = await probe.check(started)
            except TimeoutError:
                result = ProbeResult(probe=name, component=probe.component, at=started, ok=False,
                                     latency_s=deadline_s, error=f"no result within {deadline_s:g}s")
        state, signal = observe(self.states.get(name, ProbeState()), result, self.thresholds[name])
        self.states[name] = state
        if self.results is not None and self._writer is not None:
            self.results.add(result)
        else:
            async with self.store.transaction() as tx:
                await tx.probe_results.add(result)
        if self.observer is not None:
            self.observer.probe_result(result)
        if signal is not None:
            log.info("probe %s %s", name, "fired" if signal.firing else "recovered")
            if self.results is not None:
                await self.results.try_flush()  # a store hiccup here must not swallow the signal
            if self._policy(name) == "any":
                await self.coordinator.handle(signal)
            elif (combined := self._combined_signal(result.component or "", result.at)) is not None:
                await self.coordinator.handle(combined)
        return result

    async def prune(self) -> int:
        """Delete raw results older than the retention window, a slice at a time; returns how many."""
        return await self.retention.prune()

    # APScheduler's jobs only start monitor-owned tasks and return: stop() can then cancel and
    # await every check itself, and a check cancelled at shutdown is not logged as a job error.

    async def _run_scheduled(self, name: str) -> None:
        anchor = self._anchors[name]
        due = scheduled_at(anchor, float(self.settings[name].interval_s), self.clock.now())
        if not self._spawn(f"probe:{name}", lambda: self.run_once(name, due)):
            log.warning("probe %s skipped a run: its previous check is still going", name)

    async def _prune_scheduled(self) -> None:
        self._spawn("retention", self.prune)

    def _spawn(self, key: str, work: Callable[[], Awaitable[Any]]) -> bool:
        """Start `work()` as an owned task unless the one under `key` is still running; returns whether it started."""
        running = self._tasks.get(key)
        if running is not None and not running.done():
            return False

        async def logged() -> None:
            try:
                await work()
            except Exception:  # one broken probe must not stop the others
                log.exception("%s failed to run", key)

        task = asyncio.create_task(logged(), name=key)
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._tasks.pop(key) if self._tasks.get(key) is done else None)
        return True

    def start(self) -> None:
        """Schedule every probe and the retention job on the running event loop, and start the result writer."""
        scheduler = AsyncIOScheduler(timezone="UTC")
        now = self.clock.now()
        for name, settings in self.settings.items():
            interval = float(settings.interval_s)
            anchor = first_run(name, interval, now)
            self._anchors[name] = anchor
            scheduler.add_job(
                self._run_scheduled, IntervalTrigger(seconds=interval, start_date=anchor, timezone="UTC"),
                args=[name], id=f"probe:{name}", max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )
        scheduler.add_job(
            self._prune_scheduled, IntervalTrigger(seconds=self.prune_every_s, timezone="UTC",
                                                   start_date=now + timedelta(seconds=min(60.0, self.prune_every_s))),
            id="retention", max_instances=1, coalesce=True, misfire_grace_time=int(self.prune_every_s),
        )
        if self.results is not None:
            self._writer = asyncio.create_task(self.results.run(), name="probe-result-writer")
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop scheduling, cancel checks in flight, wait until they have ended, then store buffered results."""
        if self._scheduler is not None:
            # Job wrappers APScheduler has already started only hand a check over to us; let them
            # finish, so that shutdown has none of its own to cancel (and log as failed jobs).
            self._scheduler.pause()
            for _ in range(2):
                await self.clock.sleep(0)
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        running = list(self._tasks.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._writer is not None and self.results is not None:
            self.results.close()
            await self._writer
            self._writer = None
