"""Slow clients on real loopback sockets: cut off after the header or body deadline; the connection cap keeps
the server answering. The server is the one `statusd serve` runs (statusd.web.server)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from statusd.web.server import ConnectionLimits
from tests.support.http_server import guarded_site, open_idle, trickle_until_closed

# Long enough that the whole request, sent a byte per 20 ms, would take seconds: a server without a
# deadline answers it in the end; one with a deadline of 0.3 s hangs up long before the last byte.
PADDED_HEADERS = b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: " + b"a" * 150 + b"\r\n\r\n"


def _app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"read {len(await request.read())} bytes")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    return app


async def _answers(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/echo", data=b"hello") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_a_client_sending_headers_byte_by_byte_is_cut_off_and_the_server_still_answers() -> None:
    limits = ConnectionLimits(header_timeout_s=0.3, body_timeout_s=60, max_connections=100)
    async with guarded_site(_app(), limits) as (port, _server):
        sent, answered = await trickle_until_closed(port, PADDED_HEADERS)
        assert answered == b"", "the server answered a request whose headers took longer than header_timeout_s"
        assert sent < len(PADDED_HEADERS)  # it hung up before the headers were complete
        assert await _answers(port) == "read 5 bytes"


async def test_a_slow_request_after_a_quick_one_on_the_same_connection_is_cut_off_too() -> None:
    """The deadline's timer is kept across requests on a keep-alive connection: the second request gets its own."""
    limits = ConnectionLimits(header_timeout_s=0.3, body_timeout_s=60, max_connections=100)
    async with guarded_site(_app(), limits) as (port, _server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            assert (await reader.readuntil(b"read 0 bytes")).startswith(b"HTTP/1.1 200")
            # Pacing only: the second request's deadline then lies well after the timer the first one armed.
            await asyncio.sleep(0.15)
            sent = 0
            for byte in PADDED_HEADERS:
                if reader.at_eof():
                    break
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    break
                sent += 1
                try:  # the server's answer or its hang-up, whichever comes, paces the next byte
                    assert await asyncio.wait_for(reader.read(), 0.02) == b"", "a slow second request was answered"
                    break
                except TimeoutError:
                    pass
            assert sent < len(PADDED_HEADERS)  # it hung up before the second request's headers were complete
        finally:
            writer.close()
        assert await _answers(port) == "read 5 bytes"


async def test_a_client_sending_its_body_byte_by_byte_is_cut_off() -> None:
    body = b"x" * 150
    request = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    limits = ConnectionLimits(header_timeout_s=60, body_timeout_s=0.3, max_connections=100)
    async with guarded_site(_app(), limits) as (port, _server):
        sent, answered = await trickle_until_closed(port, request + body)
        assert b"200 OK" not in answered and sent < len(request) + len(body)
        assert await _answers(port) == "read 5 bytes"


async def test_a_whole_request_sent_in_time_is_answered_and_the_connection_kept() -> None:
    limits = ConnectionLimits(header_timeout_s=5, body_timeout_s=5, max_connections=100)
    async with guarded_site(_app(), limits) as (port, _server):
        async with aiohttp.ClientSession() as http:
            for _ in range(3):  # keep-alive: the deadline is per request, not per connection
                async with http.post(f"http://127.0.0.1:{port}/echo", data=b"abc") as resp:
                    assert await resp.text() == "read 3 bytes"


async def test_more_connections_than_max_connections_close_the_oldest_idle_ones_and_the_server_answers() -> None:
    limits = ConnectionLimits(header_timeout_s=600, body_timeout_s=600, max_connections=5)
    async with guarded_site(_app(), limits) as (port, server):
        idle = [await open_idle(port) for _ in range(12)]
        assert await _answers(port) == "read 5 bytes"
        # The 8 oldest made room (7 for the later idle ones, 1 for the request): the server closed them.
        for reader, _writer in idle[:8]:
            assert await asyncio.wait_for(reader.read(), 30) == b""
        assert len([h for h in server.connections if not h._force_close]) <= limits.max_connections
        assert server.refused >= 8
        for _reader, writer in idle:
            writer.close()


async def test_a_malformed_request_is_one_bounded_log_line_without_the_raw_bytes(
        caplog: pytest.LogCaptureFixture) -> None:
    # A request line with a bad tail: aiohttp's parser quotes the whole line in its error (6 KB here).
    junk = b"GET /" + b"Z" * 6000 + b" HTTP/1.1 junk\r\nHost: x\r\n\r\n"
    caplog.set_level(logging.DEBUG)
    limits = ConnectionLimits(header_timeout_s=5, body_timeout_s=5, max_connections=100)
    async with guarded_site(_app(), limits) as (port, _server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(junk)
        await writer.drain()
        assert b"400" in await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert await _answers(port) == "read 5 bytes"
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.INFO]
    assert server_lines, "the malformed request was not logged at all"
    for record in server_lines:
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert len(record.getMessage()) < 400
        assert "Z" * 300 not in record.getMessage()


async def test_a_body_cut_off_for_being_slow_logs_no_error_in_the_statusd_application(
        caplog: pytest.LogCaptureFixture) -> None:
    from statusd.web.application import web_application

    app = web_application(1024)

    async def post(request: web.Request) -> web.Response:
        return web.json_response({"read": len(await request.read())})

    app.router.add_post("/api/v1/echo", post)
    request = b"POST /api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 150\r\n\r\n"
    caplog.set_level(logging.INFO)
    async with guarded_site(app, ConnectionLimits(header_timeout_s=60, body_timeout_s=0.3)) as (port, _server):
        sent, answered = await trickle_until_closed(port, request + b"x" * 150)
        assert b"200 OK" not in answered and sent < len(request) + 150
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
