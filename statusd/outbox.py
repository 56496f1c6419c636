"""The notification worker: claims due outbox rows, renders, sends, and settles each one.

Each message is claimed under a lease, so a crash mid-send leaves it to be retried after
the lease expires (at-least-once; receivers dedupe on the delivery key). A retryable
failure backs off exponentially with jitter; a permanent one, or running out of attempts,
marks the message dead. One failing channel or recipient never holds up the others.
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
from statusd.template import Templates

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
    """Drains the outbox until cancelled; `wake()` tells it new rows were committed."""

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
        self.observer = observer
        self.rng = rng or random.Random()
        self.idle_poll_s = idle_poll_s
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)

    def wake(self) -> None:
        """New messages were committed: look now instead of at the next due time."""
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            self._wakeup.clear()
            try:
                if await self.drain_once():
                    continue
                await self._wait()
            except Exception:  # a store hiccup must not stop delivery for good
                log.exception("outbox worker failed; trying again in a second")
                await self.clock.sleep(1.0)

    async def _wait(self) -> None:
        async with self.store.read() as r:
            due = await r.outbox.next_due()
        await sleep_until_due_or_woken(self.clock, due, self._wakeup, self.idle_poll_s)

    async def drain_once(self) -> int:
        """Claim one batch of due messages and settle each; returns how many were handled."""
        async with self.store.transaction() as tx:
            batch = await tx.outbox.claim(self.clock.now(), self.batch_size, self.lease_s)
        if batch:
            await asyncio.gather(*(self._deliver(m) for m in batch))
        return len(batch)

    async def _deliver(self, message: OutboxMessage) -> None:
        async with self._slots:
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
            await tx.outbox.mark_retry(message.id, self.clock.now(), "interrupted by shutdown")

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
