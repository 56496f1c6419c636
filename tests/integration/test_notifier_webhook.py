"""The webhook notifier against a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from notifiers.base import DeliveryError
from notifiers.webhook import WebhookConfig, WebhookNotifier, verify_signature
from statusd.core.clock import FakeClock
from statusd.core.errors import NotifyError
from statusd.core.model import Rendered
from statusd.core.schema import Problems, Secret, load_section
from tests.support.leaks import assert_no_secret_in_error
from tests.support.network import free_port

SECRET = "hook-secret-3f9a"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MESSAGE = Rendered(subject="API down", text="The API is down.", payload={"event": "incident.opened", "title": "API – down"})


@dataclass
class Request:
    """One request the receiver saw."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A fake webhook endpoint that records every request."""

    server: TestServer
    requests: list[Request] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    rec = Receiver(server)

    async def record(request: web.Request) -> web.Response:
        rec.requests.append(Request(request.path, dict(request.headers), await request.read()))
        status = int(request.match_info.get("status", "204"))
        return web.Response(status=status, text="" if status == 204 else f"answer {status}")

    async def hang(request: web.Request) -> web.Response:
        rec.requests.append(Request(request.path, dict(request.headers), await request.read()))
        await rec.release.wait()
        return web.Response(status=204)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hook")

    app.router.add_post("/hook", record)
    app.router.add_post("/status/{status}", record)
    app.router.add_post("/hang", hang)
    app.router.add_post("/redirect", redirect)
    await server.start_server()
    try:
        yield rec
    finally:
        rec.release.set()  # let hanging handlers finish so the server shuts down at once
        await server.close()


def notifier(http: aiohttp.ClientSession, **settings: object) -> WebhookNotifier:
    config = WebhookConfig(name="hook", type="webhook", **settings)  # type: ignore[arg-type]
    return WebhookNotifier(config, http, clock=FakeClock(NOW))




async def test_delivers_payload_with_headers_and_a_valid_signature(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    hook = notifier(http, secret=Secret(SECRET), headers={"Authorization": "Bearer t0k"})
    await hook.send(receiver.url("/hook"), MESSAGE, key="incident-7/update-2/hook/x")

    [req] = receiver.requests
    assert json.loads(req.body) == MESSAGE.payload
    assert req.body == json.dumps(MESSAGE.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"] == "statusd"
    assert req.headers["Authorization"] == "Bearer t0k"
    assert req.headers["X-Statusd-Delivery"] == "incident-7/update-2/hook/x"
    timestamp = req.headers["X-Statusd-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    signature = req.headers["X-Statusd-Signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, timestamp, req.body, signature)
    assert verify_signature(SECRET, timestamp, req.body, signature, now=NOW.timestamp() + 299)


async def test_signature_rejects_wrong_secret_tampering_and_stale_timestamps(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    await notifier(http, secret=Secret(SECRET)).send(receiver.url("/hook"), MESSAGE, key="k1")
    [req] = receiver.requests
    timestamp, signature, now = req.headers["X-Statusd-Timestamp"], req.headers["X-Statusd-Signature"], NOW.timestamp()

    assert not verify_signature("other-secret", timestamp, req.body, signature)
    assert not verify_signature(SECRET, timestamp, req.body.replace(b"down", b"up"), signature)
    assert not verify_signature(SECRET, str(int(timestamp) + 1), req.body, signature)
    assert not verify_signature(SECRET, timestamp, req.body, signature, now=now + 301)
    assert not verify_signature(SECRET, timestamp, req.body, signature, now=now - 301)
    assert not verify_signature(SECRET, timestamp, req.body, signature, now=now + 30, tolerance_s=10)
    assert not verify_signature(SECRET, timestamp, req.body, signature.removeprefix("sha256="))
    assert not verify_signature(SECRET, timestamp, req.body, "sha256=ünïcode")
    assert not verify_signature(SECRET, "not-a-number", req.body, signature, now=now)


async def test_without_secret_sends_no_signature_and_falls_back_to_subject_and_text(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    await notifier(http).send(receiver.url("/hook"), Rendered(subject="S", text="T"), key="k")

    [req] = receiver.requests
    assert "X-Statusd-Signature" not in req.headers
    assert json.loads(req.body) == {"subject": "S", "text": "T"}


@pytest.mark.parametrize(("status", "retryable", "reason"), [
    pytest.param(500, True, "http_5xx", id="500-server-error"),
    pytest.param(503, True, "http_5xx", id="503-unavailable"),
    pytest.param(429, True, "rate_limited", id="429-rate-limited"),
    pytest.param(408, True, "timeout", id="408-request-timeout"),
    pytest.param(400, False, "http_4xx", id="400-bad-request"),
    pytest.param(404, False, "http_4xx", id="404-not-found"),
    pytest.param(410, False, "http_4xx", id="410-gone"),
])
async def test_http_status_is_classified(receiver: Receiver, http: aiohttp.ClientSession, status: int, retryable: bool,
                                         reason: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, secret=Secret(SECRET)).send(receiver.url(f"/status/{status}"), MESSAGE, key="k")

    assert caught.value.retryable is retryable and caught.value.reason == reason
    assert f"HTTP {status}" in str(caught.value)
    assert_no_secret_in_error(caught.value, SECRET)


async def test_a_redirect_is_a_permanent_failure_not_a_resend(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    with pytest.raises(DeliveryError) as caught:
        await notifier(http).send(receiver.url("/redirect"), MESSAGE, key="k")

    assert caught.value.retryable is False and caught.value.reason == "http_3xx"
    assert receiver.requests == []


async def test_a_receiver_slower_than_the_timeout_is_retryable(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, secret=Secret(SECRET), timeout_s=0.2).send(receiver.url("/hang"), MESSAGE, key="k")

    assert caught.value.retryable is True and caught.value.reason == "timeout"
    assert loop.time() - started < 2
    assert_no_secret_in_error(caught.value, SECRET)


async def test_connection_refused_is_retryable(http: aiohttp.ClientSession) -> None:
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, secret=Secret(SECRET)).send(f"http://127.0.0.1:{free_port()}/hook", MESSAGE, key="k")

    assert caught.value.retryable is True and caught.value.reason == "connect"
    assert "cannot connect" in str(caught.value)
    assert_no_secret_in_error(caught.value, SECRET)


async def test_errors_name_the_origin_but_never_the_path_query_or_userinfo(http: aiohttp.ClientSession) -> None:
    url = f"http://user:pa55@127.0.0.1:{free_port()}/hooks/T0KEN?sig=abc"
    with pytest.raises(NotifyError) as caught:
        await notifier(http).send(url, MESSAGE, key="k")

    assert "127.0.0.1" in str(caught.value)
    assert_no_secret_in_error(caught.value, "pa55", "T0KEN", "sig=abc")


@pytest.mark.parametrize("url", [
    pytest.param("ftp://example.com/hook", id="ftp-scheme"),
    pytest.param("example.com/hook", id="no-scheme"),
    pytest.param("http:///hook", id="no-host"),
    pytest.param("", id="empty"),
])
async def test_an_invalid_url_is_not_retryable(http: aiohttp.ClientSession, url: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, secret=Secret(SECRET)).send(url, MESSAGE, key="k")

    assert caught.value.retryable is False and caught.value.reason == "invalid"
    assert_no_secret_in_error(caught.value, SECRET)


async def test_cancellation_propagates(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    task = asyncio.create_task(notifier(http, timeout_s=30).send(receiver.url("/hang"), MESSAGE, key="k"))
    while not receiver.requests:
        await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


def test_secret_and_headers_stay_out_of_repr() -> None:
    config = WebhookConfig(name="hook", type="webhook", secret=Secret(SECRET), headers={"Authorization": "Bearer t0k"})

    assert SECRET not in repr(config)
    assert "t0k" not in repr(config)


def load(table: dict[str, object]) -> tuple[WebhookConfig | None, Problems]:
    problems: Problems = []
    config = load_section(WebhookConfig, {"type": "webhook", **table}, "notifiers.hook", problems, extra={"name": "hook"})
    return (None if problems else config), problems


def test_config_loads_from_a_table() -> None:
    config, problems = load({"secret": SECRET, "timeout_s": 3, "headers": {"Authorization": "Bearer t"}})

    assert problems == []
    assert config == WebhookConfig(name="hook", type="webhook", secret=Secret(SECRET), timeout_s=3.0,
                                   headers={"Authorization": "Bearer t"})


@pytest.mark.parametrize(("table", "expected"), [
    pytest.param({"timeout_s": 0}, [("notifiers.hook.timeout_s", "must be greater than 0")], id="zero-timeout"),
    pytest.param({"timeout_s": -1}, [("notifiers.hook.timeout_s", "must be greater than 0")], id="negative-timeout"),
    pytest.param({"secret": ""}, [("notifiers.hook.secret",
                                   "must not be empty; remove the key to send unsigned requests")], id="empty-secret"),
    pytest.param({"headers": {"x-statusd-signature": "forged"}},
                 [("notifiers.hook.headers.x-statusd-signature", "is set by statusd and cannot be overridden")],
                 id="reserved-header"),
])
def test_config_problems(table: dict[str, object], expected: Problems) -> None:
    assert load(table)[1] == expected


@pytest.mark.parametrize("recipient", ["http://xn--/hook", "http://a:99999/hook", "http://[::1/hook",
                                       "http://exa mple.com/hook", "http://a@/hook", "ftp://example.com/hook"])
def test_a_recipient_that_is_no_http_url_is_a_problem_not_an_exception(recipient: str) -> None:
    assert WebhookConfig(name="hooks", type="webhook").check_recipient(recipient) is not None
    assert WebhookConfig(name="hooks", type="webhook").check_recipient("https://hooks.example.com/statusd?x=1") is None
