"""One claimed outbox message through its declared stages: route → render → send → classify → settle.

Each stage is a small unit that can be tested alone: `route` and `send` here, `render` in
`templates`, `classify` in `failure`, `settle` in `settlement`. `Delivery.__call__` is the
one place that says in which order they run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from statusd.core.model import OutboxMessage, Rendered
from statusd.core.protocols import Notifier
from statusd.notify.audience import Audience, public_view
from statusd.notify.failure import Failure, Reason, UnknownNotifier, classify
from statusd.notify.settlement import Outcome, Settlement
from statusd.notify.templates import Templates

log = logging.getLogger(__name__)


class Delivery:
    """Delivers one claimed message and settles it; a failure of any stage settles it too, never escapes."""

    def __init__(self, notifiers: Mapping[str, Notifier], templates: Templates, settlement: Settlement, *,
                 classify: Callable[[Exception], Failure] = classify, audience: Audience | None = None) -> None:
        """Without an `audience` every recipient is treated as the operator's own."""
        self.notifiers = dict(notifiers)
        self.audience = audience
        self.templates = templates
        self.settlement = settlement
        self.classify = classify

    async def __call__(self, message: OutboxMessage) -> Outcome:
        """Route, render, send; classify what went wrong; settle. Cancelled mid-way, it hands the message back."""
        # No await before `send`: a lane that starts this task knows the send has begun once the task ran.
        try:
            notifier = self.route(message)
            rendered = self.render(message)
            await self.send(notifier, message, rendered)
        except asyncio.CancelledError:
            # Shutting down mid-send: hand the message back now instead of after its lease.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.settlement.hand_back(message))
            raise
        except Exception as exc:
            failure = self.classify(exc)
            if failure.reason is Reason.INTERNAL:
                log.error("notifier %s crashed", message.notifier, exc_info=exc)
            return await self.settlement.failed(message, failure)
        return await self.settlement.sent(message)

    def route(self, message: OutboxMessage) -> Notifier:
        """The notifier the message names (its guarded twin for an outsider); UnknownNotifier when config lacks it."""
        notifier = self.notifiers.get(message.notifier)
        if notifier is None:
            raise UnknownNotifier(message.notifier)
        return notifier if self.audience is None else self.audience.notifier_for(message, notifier)

    def render(self, message: OutboxMessage) -> Rendered:
        """The message rendered from its template and the context snapshot taken when it was enqueued.

        An outsider's JSON payload is the public view only: a webhook receiver gets every field verbatim.
        """
        rendered = self.templates.render(message.template, message.context)
        if self.audience is not None and self.audience.is_outsider(message) and rendered.payload is not None:
            rendered = replace(rendered, payload=public_view(rendered.payload))
        return rendered

    @staticmethod
    async def send(notifier: Notifier, message: OutboxMessage, rendered: Rendered) -> None:
        """Send through the notifier, keyed by the message's idempotency key (receivers dedupe on it)."""
        await notifier.send(message.recipient, rendered, key=message.key)
