"""The HTTP server as `statusd serve` runs it (GuardedAppRunner) on loopback, and raw sockets that talk to it slowly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from statusd.web.server import ConnectionLimits, GuardedAppRunner, GuardedServer


@asynccontextmanager
async def guarded_site(app: web.Application, limits: ConnectionLimits) -> AsyncIterator[tuple[int, GuardedServer]]:
    """`app` served by a GuardedAppRunner on 127.0.0.1 (a free port): (port, server)."""
    runner = GuardedAppRunner(app, limits=limits, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = runner.server
    assert isinstance(server, GuardedServer)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, server
    finally:
        await runner.cleanup()


async def trickle_until_closed(port: int, request: bytes, *, pause_s: float = 0.02) -> tuple[int, bytes]:
    """Send `request` one byte at a time until the server closes the connection: (bytes sent, bytes answered).

    The pause only paces the client; what a test asserts is whether the server hung up early.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(reader.read())  # b"" or the answer, once the server closes
    sent = 0
    try:
        for i in range(len(request)):
            if answer.done():
                break
            try:
                writer.write(request[i:i + 1])
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            await asyncio.sleep(pause_s)
        try:
            received = await answer
        except ConnectionError:
            received = b""
        return sent, received
    finally:
        answer.cancel()
        writer.close()


async def open_idle(port: int, partial: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n") -> tuple[asyncio.StreamReader,
                                                                                                asyncio.StreamWriter]:
    """A connection that sent the start of a request and then nothing: (reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(partial)
    await writer.drain()
    return reader, writer
