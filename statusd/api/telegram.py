"""Telegram's webhook delivery of button presses: the HTTP side (secret header, body), in front of the notifier."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from notifiers.telegram import SECRET_HEADER, TelegramCallbacks
from statusd.core.errors import ValidationError
from statusd.core.json_body import parse_json
from statusd.web.auth import same_secret
from statusd.web.body import read_body
from statusd.web.errors import error_response

WEBHOOK_ROUTE = "/telegram/{notifier}/webhook"


class TelegramWebhook:
    """POST /telegram/{notifier}/webhook: one Update per request, for the Telegram notifier of that name."""

    def __init__(self, receivers: Callable[[str], TelegramCallbacks | None]) -> None:
        """`receivers(name)` is the button-press receiver of the Telegram notifier `name`, or None (404)."""
        self._receivers = receivers

    def add_routes(self, app: web.Application) -> None:
        """The webhook's one route."""
        app.router.add_post(WEBHOOK_ROUTE, self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        """Take one Update; 401 without the configured secret header, 400 for a bad body.

        Without `webhook_secret` the webhook is off (404): anyone who can reach it could post a
        forged press of an engineer's Acknowledge button.
        """
        callbacks = self._receivers(request.match_info["notifier"])
        if callbacks is None:
            raise web.HTTPNotFound()
        secret = callbacks.webhook_secret
        if secret is None:
            return error_response(404, "webhook_secret", "this notifier's webhook is off: set webhook_secret in its "
                                                         "config and give it to setWebhook as secret_token")
        if not same_secret(secret.reveal().encode("utf-8"), request.headers.get(SECRET_HEADER, "")):
            return error_response(401, SECRET_HEADER, "missing or wrong secret token")
        try:
            update = parse_json(await read_body(request, request.client_max_size, "[server] max_body_bytes"),
                                replace_nul=True)
        except ValidationError as exc:
            return error_response(exc.status, exc.field, f"expected a JSON Telegram Update: {exc.message}")
        try:
            answer = await callbacks.answer_update(update)
        except ValidationError as exc:
            return error_response(exc.status, exc.field, exc.message)
        if answer is None:
            return web.Response(status=200)
        return web.json_response(answer)
