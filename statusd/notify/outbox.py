"""The outbox worker: claims due rows under a lease and hands each to its `Delivery`, lane by lane.

Each message is claimed under a lease, so a crash mid-send leaves it to be retried after
the lease expires (at-least-once; receivers dedupe on the delivery key). What happens to one
claimed message — route, render, send, classify, settle — is declared in `delivery`; retry
timing is `retry`'s. One failing channel or recipient never holds up the others: each
notifier has its own lane of deliveries in flight, topped up as they finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping

from statusd.core.clock import Clock, sleep_until_due_or_woken
from statusd.core.model import OutboxMessage
from statusd.core.protocols import Notifier, Store
from statusd.notify.audience import Audience
from statusd.notify.delivery import Delivery
from statusd.notify.retry import RetryPolicy
from statusd.notify.settlement import DeliveryObserver, Outcome, Settlement
from statusd.notify.templates import Templates

__all__ = ["OutboxWorker", "RetryPolicy"]  # RetryPolicy: the composition root configures both from here

log = logging.getLogger(__name__)


class OutboxWorker:
    """Drains the outbox until cancelled; `wake()` tells it new rows were committed.

    Each notifier has its own lane of `concurrency` deliveries in flight, claimed as they
    finish, so a hanging mail server or one slow webhook receiver holds up only its own
    lane's slots; one more lane settles messages for notifiers no longer configured.
    """

    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], templates: Templates, clock: Clock, *,
                 retry: RetryPolicy = RetryPolicy(), lease_s: float = 120.0, batch_size: int = 50,
                 concurrency: int = 16, observer: DeliveryObserver | None = None, rng: random.Random | None = None,
                 idle_poll_s: float = 30.0, audience: Audience | None = None) -> None:
        """`audience` tells operators' recipients from outsiders' (guarded session, public view); without it
        every recipient is treated as the operator's own."""
        self.store = store
        self.clock = clock
        self.lease_s = lease_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.idle_poll_s = idle_poll_s
        self.settlement = Settlement(store, clock, retry, rng or random.Random(), observer)
        self.delivery = Delivery(notifiers, templates, self.settlement, audience=audience)
        names = tuple(notifiers)
        if observer is not None:
            observer.notifiers_configured(names)
        self._lanes = [_Lane(self, (name,), ()) for name in names] + [_Lane(self, None, names)]

    def wake(self) -> None:
        """New messages were committed: look now instead of at the next due time."""
        for lane in self._lanes:
            lane.woken.set()

    async def run(self) -> None:
        """Deliver until cancelled; in-flight messages are then handed back, their attempt not counted."""
        async with asyncio.TaskGroup() as lanes:  # unlike gather, waits for every lane to hand its messages back
            for lane in self._lanes:
                lanes.create_task(lane.run())

    async def drain_once(self) -> int:
        """Claim one batch of due messages of any notifier and settle each; returns how many were handled."""
        async with self.store.transaction() as tx:
            batch = await tx.outbox.claim(self.clock.now(), self.batch_size, self.lease_s)
        slots = asyncio.Semaphore(self.concurrency)

        async def deliver(message: OutboxMessage) -> None:
            async with slots:
                await self.delivery(message)

        await asyncio.gather(*(deliver(m) for m in batch))
        return len(batch)


class _Lane:
    """The deliveries of some notifiers: up to `concurrency` in flight, topped up in rounds as they finish."""

    def __init__(self, worker: OutboxWorker, notifiers: tuple[str, ...] | None, other_than: tuple[str, ...]) -> None:
        self.worker = worker
        self.notifiers = notifiers
        self.other_than = other_than
        self.woken = asyncio.Event()
        self.sending: dict[asyncio.Task[Outcome], int | None] = {}  # each delivery under way → its message's id
        # Claim again once half the slots are free (or all, for one slot): one claim per round, not per send.
        self.refill_at = max(1, worker.concurrency // 2)

    async def run(self) -> None:
        """Claim and start deliveries as slots free up, until cancelled; then hand back what is under way."""
        w = self.worker
        try:
            while True:
                self.woken.clear()
                try:
                    free = w.concurrency - len(self.sending)
                    if free < self.refill_at:
                        await self.woken.wait()  # set as deliveries finish
                        continue
                    if await self._claim(min(w.batch_size, free)):
                        continue
                    async with w.store.read() as r:
                        due = await r.outbox.next_due(notifiers=self.notifiers, other_than=self.other_than)
                    await sleep_until_due_or_woken(w.clock, due, self.woken, w.idle_poll_s)
                except Exception:  # a store hiccup must not stop delivery for good
                    log.exception("outbox worker failed; trying again in a second")
                    await w.clock.sleep(1.0)
        finally:  # cancelled: each delivery under way hands its message back
            for task in self.sending:
                task.cancel()
            await asyncio.gather(*self.sending, return_exceptions=True)

    async def _claim(self, limit: int) -> int:
        w = self.worker

        async def claim() -> list[OutboxMessage]:
            async with w.store.transaction() as tx:
                return await tx.outbox.claim(w.clock.now(), limit, w.lease_s, notifiers=self.notifiers,
                                             other_than=self.other_than)

        claiming = asyncio.ensure_future(claim())
        try:
            batch = await asyncio.shield(claiming)
        except asyncio.CancelledError:  # shutting down: what the claim committed goes back at once
            with contextlib.suppress(Exception):
                for message in await claiming:
                    await w.settlement.hand_back(message)
            raise
        new = 0
        for message in batch:
            # A send that outlasted its lease comes back with the claim: it is still under way, and
            # the new lease now covers it. A second, concurrent send would repeat the message.
            if self._under_way(message):
                continue
            task = asyncio.create_task(w.delivery(message), name=f"deliver-{message.id}")
            self.sending[task] = message.id
            task.add_done_callback(self._finished)
            new += 1
        return len(batch) if new else 0

    def _under_way(self, message: OutboxMessage) -> bool:
        return message.id in self.sending.values()

    def _finished(self, task: asyncio.Task[Outcome]) -> None:
        del self.sending[task]
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Settling failed (the store): the message stays claimed and is retried after its lease.
            log.error("settling a delivery failed: %r", exc)
        if self.worker.concurrency - len(self.sending) >= self.refill_at:
            self.woken.set()
