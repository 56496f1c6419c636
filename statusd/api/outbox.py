"""/api/v1/outbox: what the notification log holds, for operators."""

from __future__ import annotations

from aiohttp import web

from statusd.core.errors import ValidationError
from statusd.core.protocols import Store
from statusd.web.auth import TokenAuth
from statusd.web.fields import iso


class OutboxApi:
    """The outbox handler (admin): counts per status and the latest messages."""

    def __init__(self, store: Store, auth: TokenAuth) -> None:
        self.store = store
        self.auth = auth

    async def list_outbox(self, request: web.Request) -> web.Response:
        """GET /api/v1/outbox?limit=N (1 to 1000, default 100)."""
        self.auth.authorize(request, "admin")
        try:
            limit = min(1000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            raise ValidationError("limit", "must be an integer") from None
        async with self.store.read() as r:
            messages = await r.outbox.list(limit)
            counts = await r.outbox.counts()
        return web.json_response({"counts": counts, "messages": [
            {"id": m.id, "key": m.key, "notifier": m.notifier, "recipient": m.recipient, "template": m.template,
             "status": m.status.value, "attempts": m.attempts, "last_error": m.last_error,
             "created_at": iso(m.created_at), "next_attempt_at": iso(m.next_attempt_at), "sent_at": iso(m.sent_at)}
            for m in messages]})
