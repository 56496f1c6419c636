"""The settle stage: what becomes of a claimed outbox row once its attempt has ended.

Sent, retried after a backoff, dead, or — on shutdown — handed back with its attempt not
counted. Each is one transaction, so the row's state and a page's timeline note never part.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal, Protocol

from statusd.core.clock import Clock
from statusd.core.model import AUTOMATED_AUTHOR, URGENT_TEMPLATES, EntryKind, OutboxMessage, TimelineEntry
from statusd.core.protocols import Store
from statusd.notify.failure import Failure
from statusd.notify.retry import RetryPolicy

log = logging.getLogger(__name__)

#: The `outcome` label of `statusd_notification_deliveries_total`.
Outcome = Literal["sent", "retry", "dead"]
OUTCOMES: tuple[Outcome, ...] = ("sent", "retry", "dead")


class DeliveryObserver(Protocol):
    """Told how each delivery attempt ended (statusd.metrics.Metrics is one)."""

    def notifiers_configured(self, notifiers: Sequence[str]) -> None:
        """The notifiers deliveries will be counted for, known before the first one ends."""
        ...

    def delivery(self, notifier: str, outcome: Outcome, latency_s: float | None) -> None:
        """An attempt ended in `outcome`; `latency_s` from enqueueing, for a sent one."""
        ...

    def delivery_failed(self, notifier: str, failure: Failure) -> None:
        """An attempt failed, for `failure.reason` (then retried or dead: `delivery` says which)."""
        ...


class Settlement:
    """Records the end of each attempt on the outbox row; a page that ends undelivered is noted in its incident."""

    def __init__(self, store: Store, clock: Clock, retry: RetryPolicy, rng: random.Random,
                 observer: DeliveryObserver | None = None) -> None:
        self.store = store
        self.clock = clock
        self.retry = retry
        self.rng = rng
        self.observer = observer

    async def sent(self, message: OutboxMessage) -> Outcome:
        """Mark `message` sent now."""
        assert message.id is not None
        now = self.clock.now()
        async with self.store.transaction() as tx:
            await tx.outbox.mark_sent(message.id, now)
        log.info("sent %s #%s via %s", message.template, message.id, message.notifier)  # no address: it is a customer's
        if self.observer is not None:
            self.observer.delivery(message.notifier, "sent", (now - message.created_at).total_seconds())
        return "sent"

    async def failed(self, message: OutboxMessage, failure: Failure) -> Outcome:
        """Schedule a retry after the backoff when the policy allows one, else mark it dead: `max_attempts` bounds all."""
        if self.observer is not None:
            self.observer.delivery_failed(message.notifier, failure)
        # A notifier bug is bounded by max_attempts too: retried without end, a message that always
        # crashes it would sit in the outbox for ever, never dead, never noted on its incident.
        if self.retry.retries(message.attempts, failure.retryable):
            await self._retry(message, failure)
            return "retry"
        await self._dead(message, failure)
        return "dead"

    async def hand_back(self, message: OutboxMessage) -> None:
        """Shutting down: make `message` due now, its attempt not counted; a newer claim of it is left alone."""
        assert message.id is not None
        async with self.store.transaction() as tx:
            await tx.outbox.release(message.id, message.attempts, self.clock.now())

    async def _retry(self, message: OutboxMessage, failure: Failure) -> None:
        assert message.id is not None
        delay = self.retry.delay_s(message.attempts, self.rng)
        async with self.store.transaction() as tx:
            await tx.outbox.mark_retry(message.id, self.clock.now() + timedelta(seconds=delay), failure.recorded())
        log.warning("delivery %s via %s failed (attempt %d, %s), retrying in %.0fs: %s",
                    f"#{message.id} ({message.template})", message.notifier, message.attempts, failure.reason, delay,
                    failure.error)
        if self.observer is not None:
            self.observer.delivery(message.notifier, "retry", None)

    async def _dead(self, message: OutboxMessage, failure: Failure) -> None:
        assert message.id is not None
        now = self.clock.now()
        error = failure.error
        async with self.store.transaction() as tx:
            await tx.outbox.mark_dead(message.id, now, failure.recorded())
            # A page nobody received must not read as "paged Bob" in the incident's timeline.
            incident = message.context.get("incident") if isinstance(message.context, dict) else None
            incident_id = incident.get("id") if isinstance(incident, dict) else None
            if message.template in URGENT_TEMPLATES and isinstance(incident_id, int) \
                    and await tx.incidents.get(incident_id) is not None:
                await tx.incidents.add_entry(TimelineEntry(
                    incident_id, now, EntryKind.NOTE, author=AUTOMATED_AUTHOR,
                    data={"undelivered": message.key, "notifier": message.notifier, "reason": failure.reason.value,
                          "error": error[:500]},
                    body=f"Could not deliver the {message.template} to {message.recipient} via {message.notifier} "
                         f"after {message.attempts} attempts: {error[:200]}"))
        log.error("delivery %s via %s given up after %d attempts (%s): %s",
                  f"#{message.id} ({message.template})", message.notifier, message.attempts, failure.reason, error)
        if self.observer is not None:
            self.observer.delivery(message.notifier, "dead", None)
