"""Real peers on loopback for tests: a watched target, a collecting webhook receiver and an SMTP sink."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from notifiers.webhook import verify_signature
from tests.support.network import free_port


class Target:
    """The service statusd watches; `healthy` decides what /health answers."""

    def __init__(self) -> None:
        self.healthy = True
        self.server: TestServer | None = None

    async def start(self) -> Target:
        """Serve /health on a free loopback port."""
        async def health(request: web.Request) -> web.Response:
            return web.Response(text="ok") if self.healthy else web.Response(status=503, text="down")

        app = web.Application()
        app.router.add_get("/health", health)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        """Stop serving; safe before `start`."""
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        """The /health URL to configure a probe with."""
        assert self.server is not None
        return str(self.server.make_url("/health"))


@dataclass
class Hook:
    """One webhook request as received."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """An aiohttp app that records every POST; `fail_with` makes it answer with that status instead."""

    secret: str | None = None
    fail_with: int | None = None
    hooks: list[Hook] = field(default_factory=list)
    rejected: int = 0
    server: TestServer | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> WebhookReceiver:
        """Listen on a free loopback port for POSTs to any path."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        """Stop listening; safe before `start`."""
        if self.server is not None:
            await self.server.close()

    def url(self, path: str = "/hook") -> str:
        """The URL that records a POST under `path`."""
        assert self.server is not None
        return str(self.server.make_url(path))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_with is not None:
            self.rejected += 1
            return web.Response(status=self.fail_with, text="receiver says no")
        if self.secret is not None:
            ok = verify_signature(self.secret, request.headers.get("X-Statusd-Timestamp", ""), body,
                                  request.headers.get("X-Statusd-Signature", ""))
            if not ok:
                self.rejected += 1
                return web.Response(status=401, text="bad signature")
        self.hooks.append(Hook(request.path, dict(request.headers), body))
        self.arrived.set()
        return web.Response(status=204)


class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


class SmtpSink:
    """A real aiosmtpd server on loopback that keeps every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Sink()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        """Accept SMTP on `port` (in a thread of its own, as aiosmtpd's controller runs)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop accepting mail."""
        self._controller.stop()

    @property
    def messages(self) -> list[tuple[str, list[str], Message]]:
        """Every message so far as (sender, recipients, parsed message), in arrival order."""
        return self._handler.messages
