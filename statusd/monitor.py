"""Runs probes on their intervals and feeds their results through detection to the coordinator.

Scheduling is APScheduler's: one interval job per probe, first runs spread over the
interval by a stable hash of the probe's name (no herd at :00), interval triggers anchored
to a start time (no drift), at most one run of a probe at a time, and a semaphore bounding
how many checks are in flight. A hanging target costs only its own timeout.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import zlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from statusd.coordinator import Coordinator
from statusd.core.clock import Clock
from statusd.core.model import ComponentStatus, ProbeResult
from statusd.core.protocols import Probe, Store
from statusd.detection import ProbeState, Thresholds, dedup_key, observe, rebuild

log = logging.getLogger(__name__)


class Monitor:
    """Owns the probes, their detector state and their schedule."""

    def __init__(self, store: Store, coordinator: Coordinator, clock: Clock, probes: Mapping[str, Probe],
                 settings: Mapping[str, Any], *, concurrency: int = 256, observer: Any = None) -> None:
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
        self.observer = observer
        self._slots = asyncio.Semaphore(concurrency)
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()

    async def restore(self) -> None:
        """Rebuild detector state from the store: open incidents and the latest results."""
        async with self.store.read() as r:
            open_keys = {i.dedup_key for i in await r.incidents.list_open()}
            for name in self.probes:
                recent = await r.probe_results.recent(name, limit=max(self.thresholds[name].failure_threshold,
                                                                      self.thresholds[name].success_threshold))
                self.states[name] = rebuild(recent, self.thresholds[name], failing=dedup_key(name) in open_keys)
                probe = self.probes[name]
                if hasattr(probe, "check_in"):  # a push probe remembers its last check-in across restarts
                    history = await r.probe_results.recent(name, limit=200)
                    last = next((res for res in history if res.detail.get("check_in")), None)
                    if last is not None:
                        probe.check_in(last.at)

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

    async def run_once(self, name: str) -> None:
        """Check one probe now and act on the result."""
        probe = self.probes[name]
        async with self._slots:
            result = await probe.check(self.clock.now())
        state, signal = observe(self.states.get(name, ProbeState()), result, self.thresholds[name])
        self.states[name] = state
        async with self.store.transaction() as tx:
            await tx.probe_results.add(result)
        if self.observer:
            self.observer.probe_result(result)
        if signal is not None:
            log.info("probe %s %s", name, "fired" if signal.firing else "recovered")
            await self.coordinator.handle(signal)

    async def _run_safely(self, name: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self.run_once(name)
        except Exception:  # one broken probe must not stop the others
            log.exception("probe %s failed to run", name)
        finally:
            self._running.discard(task)  # type: ignore[arg-type]

    def start(self) -> None:
        """Schedule every probe on the running event loop."""
        scheduler = AsyncIOScheduler(timezone="UTC")
        now = self.clock.now()
        for name, settings in self.settings.items():
            interval = float(settings.interval_s)
            offset = (zlib.crc32(name.encode()) % 1000) / 1000 * min(interval, 60.0)
            scheduler.add_job(
                self._run_safely, IntervalTrigger(seconds=interval, start_date=now + timedelta(seconds=offset),
                                                  timezone="UTC"),
                args=[name], id=f"probe:{name}", max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop scheduling, cancel checks in flight and wait until they have ended."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
