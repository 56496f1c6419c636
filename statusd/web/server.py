"""The HTTP server's connections: bounded time to send a request, a cap on open connections, bounded logs.

aiohttp's server waits for request headers and bodies for as long as the client likes (only an
idle keep-alive connection times out), accepts connections until the process runs out of file
descriptors, and logs a malformed request as an ERROR traceback carrying the raw bytes. A few
hundred slow clients then kept statusd unreachable, and a flood of junk filled the disk. This
module guards the connections at the protocol level:

- the request line and headers must arrive within `header_timeout_s` of their first byte, and
  the body within `body_timeout_s` of the headers; a client that dawdles is disconnected;
- at most `max_connections` are open; one over the cap closes the oldest connection that has
  no request being handled (idle, or still sending headers), else the new one at once;
- a malformed request is one bounded WARNING line; a failing `accept()` (EMFILE) is logged once
  per interval with a count, not once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

#: How much of a malformed request's error message reaches the log (the message may quote the raw bytes).
LOGGED_ERROR_CHARS = 200


def default_max_connections() -> int:
    """Three quarters of the process's soft open-file limit: the rest is for the store, probes and notifiers."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, soft * 3 // 4)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, how long an idle connection stays, how many are open."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 768


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with deadlines for a request's headers and body and bounded error logs."""

    def __init__(self, manager: GuardedServer, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=limits.keepalive_timeout_s, **kwargs)
        self.limits = limits
        # The current request's deadline as (loop time, part), and one timer that checks it. On a busy
        # keep-alive connection the timer is not cancelled and re-armed per request (measurable in
        # bench/page_herd.py): a request that finishes only clears the deadline, and a timer that
        # fires early for a later request's deadline waits on for it.
        self._deadline: tuple[float, str] | None = None
        self._read_deadline: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # the body being received, once its headers are in

    @property
    def handling(self) -> bool:
        """A request of this connection is being handled (its body may still be arriving)."""
        return self._request_in_progress or bool(self._messages)

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does, starting the header deadline at a request's first byte and the body's after it."""
        receiving_body = self._body is not None and not self._body.is_eof()
        if self._deadline is None and not receiving_body and data:
            self._arm(self.limits.header_timeout_s, "headers")
        requests = self._request_count
        super().data_received(data)
        if self._request_count != requests:  # headers complete: the body's deadline, if there is a body to come
            self._disarm()
            body = self._messages[-1][1] if self._messages else None
            self._body = body if isinstance(body, StreamReader) and not body.is_eof() else None
            if self._body is not None:
                self._arm(self.limits.body_timeout_s, "body")
        elif self._body is not None and self._body.is_eof():
            self._body = None
            self._disarm()

    def _arm(self, timeout_s: float, part: str) -> None:
        at = self._loop.time() + timeout_s
        self._deadline = (at, part)
        if self._read_deadline is not None and self._read_deadline.when() > at:
            self._read_deadline.cancel()  # it would fire too late for this deadline
            self._read_deadline = None
        if self._read_deadline is None:
            self._read_deadline = self._loop.call_at(at, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = None  # a pending timer finds nothing to do

    def _check_deadline(self) -> None:
        self._read_deadline = None
        if self._deadline is None:
            return
        at, part = self._deadline
        if self._loop.time() < at:  # a later request's deadline: wait for that one
            self._read_deadline = self._loop.call_at(at, self._check_deadline)
            return
        self._deadline = None
        self._too_slow(part)

    def _too_slow(self, part: str) -> None:
        if part == "body" and (self._body is None or self._body.is_eof()):
            return
        log.debug("closing a connection from %s: its request %s took longer than %s s", self._peer(), part,
                  self.limits.header_timeout_s if part == "headers" else self.limits.body_timeout_s)
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Also stops the deadline: a connection that is gone cannot be too slow."""
        self._disarm()
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None
        self._body = None
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A malformed request as one bounded WARNING line; anything else as aiohttp logs it."""
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            text = ascii(str(exc))  # escaped: the message may quote control characters of the raw request
            if len(text) > LOGGED_ERROR_CHARS:
                text = text[:LOGGED_ERROR_CHARS] + "..."
            self.logger.warning("malformed HTTP request from %s: %s %s", self._peer(), type(exc).__name__, text)
            return
        super().log_exception(*args, **kw)

    def _peer(self) -> str:
        peer = self.peername
        return str(peer[0]) if isinstance(peer, tuple) else str(peer or "unknown")


class GuardedServer(web.Server):
    """aiohttp's server with GuardedRequestHandler connections and at most `limits.max_connections` open."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.refused = 0  # connections closed because the cap was reached, since start

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, limits=self.limits, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        """Register the connection; over the cap, close the oldest one not handling a request, else this one."""
        super().connection_made(handler, transport)
        open_now = [h for h in self._connections if not h._force_close]
        if len(open_now) <= self.limits.max_connections:
            return
        # Oldest first (the dict keeps the order connections came in): a slow client that holds a
        # connection without finishing its request goes before a newcomer, so the server keeps answering.
        victim = next((h for h in open_now if h is not handler and not _handling(h)), handler)
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("%d open connections reached [server] max_connections; closing the oldest idle ones "
                        "(%d so far)", len(open_now), self.refused)
        victim.force_close()


def _handling(handler: RequestHandler) -> bool:
    return handler.handling if isinstance(handler, GuardedRequestHandler) else True


class GuardedAppRunner(web.AppRunner):
    """web.AppRunner whose server is a GuardedServer."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, loop=plain._loop,
                             limits=self.limits, **plain._kwargs)


class AcceptFailureLog:
    """An event-loop exception handler that logs a failing `accept()` (EMFILE, ENFILE...) once per interval.

    asyncio retries a listening socket a second after `accept()` runs out of file descriptors and
    reports every failure; under a connection flood that is one ERROR with a traceback per second
    per socket, for as long as the flood lasts. Other errors go to the previous handler.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = None,
                 *, interval_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.previous = previous
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._last: float | None = None
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self._monotonic()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            return
        log.error("cannot accept connections: %s (%d more such failures in the last %.0f s); "
                  "lower [server] max_connections or raise the open-file limit (ulimit -n)",
                  context.get("exception"), self.suppressed, self.interval_s if self._last is not None else 0)
        self._last, self.suppressed = now, 0
