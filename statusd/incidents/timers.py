"""The timer worker: fires escalation steps, reminders and handoff checks when they come due.

Timers live in the store, written in the same transaction as the change that caused them,
so a restart finds every one: overdue timers fire at once, future ones on time. The
coordinator takes each timer inside the transaction that carries it out, so none fires twice.
"""

from __future__ import annotations

import asyncio
import logging

from statusd.incidents.coordinator import Coordinator
from statusd.core.clock import Clock, sleep_until_due_or_woken
from statusd.core.protocols import Store

log = logging.getLogger(__name__)


class TimerWorker:
    """Fires due timers until cancelled; `wake()` says a new timer may be due sooner."""

    def __init__(self, store: Store, coordinator: Coordinator, clock: Clock, *, batch_size: int = 50,
                 idle_poll_s: float = 30.0) -> None:
        self.store = store
        self.coordinator = coordinator
        self.clock = clock
        self.batch_size = batch_size
        self.idle_poll_s = idle_poll_s
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A timer may have been scheduled: look again now."""
        self._wakeup.set()

    async def fire_due(self) -> int:
        """Fire every timer due now; returns how many did something."""
        async with self.store.read() as r:
            due = await r.timers.due(self.clock.now(), self.batch_size)
        fired = 0
        for timer in due:
            try:
                fired += await self.coordinator.fire(timer)
            except Exception:  # one broken timer must not block the rest
                log.exception("timer %s (%s) failed", timer.id, timer.kind)
        return fired

    async def run(self) -> None:
        """Fire timers until cancelled."""
        while True:
            self._wakeup.clear()
            try:
                await self.fire_due()
                async with self.store.read() as r:
                    due = await r.timers.next_due()
                await sleep_until_due_or_woken(self.clock, due, self._wakeup, self.idle_poll_s)
            except Exception:
                log.exception("timer worker failed; trying again in a second")
                await self.clock.sleep(1.0)
