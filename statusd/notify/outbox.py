"""The notification worker: claims due outbox rows, renders, sends, and settles each one.

Each message is claimed under a lease, so a crash mid-send leaves it to be retried after
the lease expires (at-least-once; receivers dedupe on the delivery key). A retryable
failure backs off exponentially with jitter; a permanent one, or running out of attempts,
marks the message dead. One failing channel or recipient never holds up the others: each
notifier has its own lane of deliveries in flight, topped up as they finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from statusd.core.clock import Clock, sleep_until_due_or_woken
from statusd.core.errors import NotifyError, StatusdError
from statusd.core.model import AUTOMATED_AUTHOR, URGENT_TEMPLATES, EntryKind, OutboxMessage, TimelineEntry
from statusd.core.protocols import Notifier, Store
from statusd.notify.templates import Templates

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: initial, doubled per attempt, capped; jitter spreads retries of a burst."""

    max_attempts: int = 8
    initial_s: float = 5.0
    max_s: float = 900.0
    jitter: float = 0.2

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry `attempt`: jitter spreads it upward, and the cap (`backoff_max_s`) holds after it."""
        base = self.initial_s * 2 ** min(max(0, attempt - 1), 64)
        return min(self.max_s, base * (1 + self.jitter * rng.random()))


class OutboxWorker:
    """Drains the outbox until cancelled; `wake()` tells it new rows were committed.

    Each notifier has its own lane of `concurrency` deliveries in flight, claimed as they
    finish, so a hanging mail server or one slow webhook receiver holds up only its own
    lane's slots; one more lane settles messages for notifiers no longer configured.
    """

    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], templates: Templates, clock: Clock, *,
                 retry: RetryPolicy = RetryPolicy(), lease_s: float = 120.0, batch_size: int = 50,
                 concurrency: int = 16, observer: Any = None, rng: random.Random | None = None,
                 idle_poll_s: float = 30.0) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.templates = templates
        self.clock = clock
        self.retry = retry
        self.lease_s = lease_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.observer = observer
        self.rng = rng or random.Random()
        self.idle_poll_s = idle_poll_s
        self._lanes = [_Lane(self, (name,), ()) for name in self.notifiers] + [_Lane(self, None, tuple(self.notifiers))]

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
                await self._deliver(message)

        await asyncio.gather(*(deliver(m) for m in batch))
        return len(batch)

    async def _deliver(self, message: OutboxMessage) -> None:
        assert message.id is not None
        notifier = self.notifiers.get(message.notifier)
        if notifier is None:
            await self._settle_dead(message, f"no notifier named {message.notifier!r} is configured")
            return
        try:
            rendered = self.templates.render(message.template, message.context)
            await notifier.send(message.recipient, rendered, key=message.key)
        except asyncio.CancelledError:
            # Shutting down mid-send: hand the message back now instead of after its lease.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(message))
            raise
        except NotifyError as exc:
            if exc.retryable and message.attempts < self.retry.max_attempts:
                await self._settle_retry(message, str(exc))
            else:
                await self._settle_dead(message, str(exc))
            return
        except StatusdError as exc:  # a broken template: retrying will not help
            await self._settle_dead(message, str(exc))
            return
        except Exception as exc:  # a notifier bug: keep the message, retry later
            log.exception("notifier %s crashed", message.notifier)
            await self._settle_retry(message, f"internal error: {type(exc).__name__}")
            return
        now = self.clock.now()
        async with self.store.transaction() as tx:
            await tx.outbox.mark_sent(message.id, now)
        log.info("sent %s to %s via %s", message.template, message.recipient, message.notifier)
        if self.observer:
            self.observer.delivery(message.notifier, "sent", (now - message.created_at).total_seconds())

    async def _release(self, message: OutboxMessage) -> None:
        assert message.id is not None
        async with self.store.transaction() as tx:
            await tx.outbox.release(message.id, message.attempts, self.clock.now())

    async def _settle_retry(self, message: OutboxMessage, error: str) -> None:
        assert message.id is not None
        delay = self.retry.delay_s(message.attempts, self.rng)
        async with self.store.transaction() as tx:
            await tx.outbox.mark_retry(message.id, self.clock.now() + timedelta(seconds=delay), error)
        log.warning("delivery %s via %s failed (attempt %d), retrying in %.0fs: %s",
                    message.key, message.notifier, message.attempts, delay, error)
        if self.observer:
            self.observer.delivery(message.notifier, "retry", None)

    async def _settle_dead(self, message: OutboxMessage, error: str) -> None:
        assert message.id is not None
        now = self.clock.now()
        async with self.store.transaction() as tx:
            await tx.outbox.mark_dead(message.id, now, error)
            # A page nobody received must not read as "paged Bob" in the incident's timeline.
            incident = message.context.get("incident") if isinstance(message.context, dict) else None
            incident_id = incident.get("id") if isinstance(incident, dict) else None
            if message.template in URGENT_TEMPLATES and isinstance(incident_id, int) \
                    and await tx.incidents.get(incident_id) is not None:
                await tx.incidents.add_entry(TimelineEntry(
                    incident_id, now, EntryKind.NOTE, author=AUTOMATED_AUTHOR,
                    data={"undelivered": message.key, "notifier": message.notifier, "error": error[:500]},
                    body=f"Could not deliver the {message.template} to {message.recipient} via {message.notifier} "
                         f"after {message.attempts} attempts: {error[:200]}"))
        log.error("delivery %s via %s given up after %d attempts: %s",
                  message.key, message.notifier, message.attempts, error)
        if self.observer:
            self.observer.delivery(message.notifier, "dead", None)


class _Lane:
    """The deliveries of some notifiers: up to `concurrency` in flight, topped up in rounds as they finish."""

    def __init__(self, worker: OutboxWorker, notifiers: tuple[str, ...] | None, other_than: tuple[str, ...]) -> None:
        self.worker = worker
        self.notifiers = notifiers
        self.other_than = other_than
        self.woken = asyncio.Event()
        self.sending: dict[asyncio.Task[None], int | None] = {}  # each delivery under way → its message's id
        # Claim again once half the slots are free (or all, for one slot): one claim per round, not per send.
        self.refill_at = max(1, worker.concurrency // 2)

    async def run(self) -> None:
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
                    await w._release(message)
            raise
        new = 0
        for message in batch:
            # A send that outlasted its lease comes back with the claim: it is still under way, and
            # the new lease now covers it. A second, concurrent send would repeat the message.
            if message.id in self.sending.values():
                continue
            task = asyncio.create_task(w._deliver(message), name=f"deliver-{message.id}")
            self.sending[task] = message.id
            task.add_done_callback(self._finished)
            new += 1
        return len(batch) if new else 0

    def _finished(self, task: asyncio.Task[None]) -> None:
        del self.sending[task]
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Settling failed (the store): the message stays claimed and is retried after its lease.
            log.error("settling a delivery failed: %r", exc)
        if self.worker.concurrency - len(self.sending) >= self.refill_at:
            self.woken.set()
