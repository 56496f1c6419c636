"""The result writer: probe results into the store, and raw results out of it after the retention window.

Results reach the store through a write-behind buffer flushed in one transaction every
`flush_s` (10,000 results a minute become four small transactions a second instead of 170).
Raw results older than the retention window are pruned oldest first, a slice at a time, so
no single transaction holds the writer for long; the store's daily rollups outlive them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Protocol

from statusd.core.clock import Clock, sleep_until_due_or_woken
from statusd.core.model import ProbeResult
from statusd.core.protocols import Store

log = logging.getLogger(__name__)


class PruneObserver(Protocol):
    """What retention reports (statusd.metrics.Metrics implements it)."""

    def probe_results_pruned(self, count: int) -> None: ...


class ResultWriter:
    """A write-behind buffer of probe results: `add` never waits; batches are stored in one transaction each.

    A batch that fails to store is kept for the next flush (at most `max_pending` results;
    the oldest are dropped beyond that), so a short store outage loses nothing.
    """

    def __init__(self, store: Store, clock: Clock, *, flush_s: float = 0.25, max_batch: int = 2000,
                 max_pending: int = 100_000) -> None:
        self.store = store
        self.clock = clock
        self.flush_s = flush_s
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._pending: list[ProbeResult] = []
        self._wakeup = asyncio.Event()
        self._flushing = asyncio.Lock()  # one batch at a time keeps results in the order they came
        self._closing = False

    @property
    def pending(self) -> int:
        """Results waiting to be stored."""
        return len(self._pending)

    def add(self, result: ProbeResult) -> None:
        """Queue a result; a full batch wakes the writer early."""
        self._pending.append(result)
        if len(self._pending) >= self.max_batch:
            self._wakeup.set()

    async def flush(self) -> int:
        """Store everything queued so far in one transaction; returns how many results."""
        async with self._flushing:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                async with self.store.transaction() as tx:
                    await tx.probe_results.add_many(batch)
            except BaseException:
                kept = (batch + self._pending)[-self.max_pending:]
                if len(kept) < len(batch) + len(self._pending):
                    log.warning("probe result buffer full: dropped %d oldest results",
                                len(batch) + len(self._pending) - len(kept))
                self._pending = kept
                raise
            return len(batch)

    async def run(self) -> None:
        """Flush every `flush_s` (or when a batch fills) until `close()`, then flush what is left."""
        while not self._closing:
            await sleep_until_due_or_woken(self.clock, None, self._wakeup, self.flush_s)
            # Cleared after waking, not before sleeping: a batch that filled meanwhile is not missed.
            self._wakeup.clear()
            await self.try_flush()
        await self.try_flush()

    def close(self) -> None:
        """Ask `run()` to flush once more and return."""
        self._closing = True
        self._wakeup.set()

    async def try_flush(self) -> bool:
        """`flush()`, logging a failure instead of raising it; returns whether it succeeded."""
        try:
            await self.flush()
        except Exception:
            log.exception("storing %d probe results failed; keeping them for the next flush", self.pending)
            return False
        return True


class ResultRetention:
    """Deletes raw probe results older than `retention`, a `prune_slice` of time per transaction."""

    def __init__(self, store: Store, clock: Clock, *, retention: timedelta = timedelta(days=7),
                 prune_slice: timedelta = timedelta(seconds=15), observer: PruneObserver | None = None) -> None:
        if prune_slice <= timedelta(0):
            raise ValueError("prune_slice must be positive")
        self.store = store
        self.clock = clock
        self.retention = retention
        self.prune_slice = prune_slice
        self.observer = observer

    async def prune(self) -> int:
        """Delete raw results older than the retention window, a slice at a time; returns how many."""
        cutoff = self.clock.now() - self.retention
        deleted = 0
        while True:
            async with self.store.read() as r:
                oldest = await r.probe_results.oldest()
            if oldest is None or oldest >= cutoff:
                break
            async with self.store.transaction() as tx:
                deleted += await tx.probe_results.prune(min(cutoff, oldest + self.prune_slice))
            await self.clock.sleep(0)  # let waiting writers (the result buffer, the coordinator) in between slices
        if deleted:
            log.info("pruned %d probe results older than %s", deleted, cutoff.isoformat())
        if self.observer is not None:
            self.observer.probe_results_pruned(deleted)
        return deleted
