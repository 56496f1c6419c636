"""The HTTP probe against a real aiohttp target on loopback: every outcome is a result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probes.http import HttpConfig, HttpProbe
from statusd.core.schema import load_section
from tests.conftest import free_port

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def target() -> AsyncIterator[TestServer]:
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="hello")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "x": request.headers.get("X-Probe"),
                                  "body": await request.text()})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/status/200")

    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_post("/echo", echo)
    app.router.add_get("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def probe(http: aiohttp.ClientSession, url: str, **kw) -> HttpProbe:
    return HttpProbe(HttpConfig(name="p", type="http", component="api", url=url, **kw), http)


@pytest.mark.parametrize(("path", "expected", "ok", "error"), [
    pytest.param("/status/200", [], True, "", id="2xx-by-default"),
    pytest.param("/status/204", [], True, "", id="204-is-2xx"),
    pytest.param("/status/503", [], False, "HTTP 503", id="503-fails"),
    pytest.param("/status/404", [404], True, "", id="expected-404"),
    pytest.param("/status/200", [201], False, "HTTP 200", id="unexpected-200"),
])
async def test_status_codes(target, http, path, expected, ok, error) -> None:
    result = await probe(http, str(target.make_url(path)), expected_status=expected).check(NOW)
    assert result.ok is ok and result.error == error
    assert result.probe == "p" and result.component == "api" and result.at == NOW
    assert result.detail["status_code"] == int(path.rsplit("/", 1)[1])


async def test_timeout_is_a_failed_result(target, http) -> None:
    result = await probe(http, str(target.make_url("/slow?s=5")), timeout_s=0.2).check(NOW)
    assert not result.ok and "timed out" in result.error
    assert 0.15 < result.latency_s < 2


async def test_connection_refused_is_a_failed_result(http) -> None:
    result = await probe(http, f"http://127.0.0.1:{free_port()}/", timeout_s=2).check(NOW)
    assert not result.ok and "cannot connect" in result.error


async def test_slow_success_is_degraded(target, http) -> None:
    result = await probe(http, str(target.make_url("/slow?s=0.3")), timeout_s=2,
                         degraded_latency_s=0.1).check(NOW)
    assert result.ok and result.degraded


async def test_method_headers_body_and_redirects(target, http) -> None:
    result = await probe(http, str(target.make_url("/echo")), method="POST", headers={"X-Probe": "1"},
                         body="ping").check(NOW)
    assert result.ok
    not_followed = await probe(http, str(target.make_url("/moved")), follow_redirects=False).check(NOW)
    assert not not_followed.ok and not_followed.error == "HTTP 302"
    followed = await probe(http, str(target.make_url("/moved"))).check(NOW)
    assert followed.ok


@pytest.mark.parametrize(("table", "path"), [
    pytest.param({"url": "ftp://x"}, "probes.p.url", id="scheme"),
    pytest.param({"url": "http://x", "expected_status": [700]}, "probes.p.expected_status[0]", id="status-code"),
    pytest.param({"url": "http://x", "timeout_s": 0}, "probes.p.timeout_s", id="zero-timeout"),
    pytest.param({"url": "http://x", "timeout_s": 60, "interval_s": 30}, "probes.p.timeout_s", id="timeout-gt-interval"),
    pytest.param({"url": "http://x", "degraded_latency_s": 20}, "probes.p.degraded_latency_s", id="degraded-gt-timeout"),
    pytest.param({"url": "http://x", "method": "BREW"}, "probes.p.method", id="method"),
    pytest.param({"url": "http://x", "severity": "meh"}, "probes.p.severity", id="severity"),
    pytest.param({}, "probes.p.url", id="url-required"),
])
def test_config_problems_name_the_key(table, path) -> None:
    problems: list[tuple[str, str]] = []
    load_section(HttpConfig, {"type": "http", **table}, "probes.p", problems, extra={"name": "p"})
    assert path in [p for p, _ in problems], problems
