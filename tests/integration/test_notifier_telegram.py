"""The Telegram notifier and its button callbacks against a fake Bot API on loopback."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import notifiers
from notifiers.base import DeliveryError
from notifiers.telegram import (
    FAILED_ANSWER,
    SECRET_HEADER,
    CallbackQuery,
    TelegramApiError,
    TelegramCallbacks,
    TelegramConfig,
    TelegramNotifier,
    parse_action,
    parse_button,
)
from statusd.api.telegram import TelegramWebhook
from statusd.web.application import web_application
from statusd.core.clock import FakeClock
from statusd.core.errors import NotifyError
from statusd.core.model import Rendered
from statusd.core.schema import Problems, Secret, load_section
from tests.support.telegram import BLOCKED_CHAT, CHAT, TOKEN, FakeBotApi, utf16_len, visible_text
from tests.support.telegram import api  # noqa: F401 (the fixture)
from tests.support.leaks import assert_no_secret_in_error
from tests.support.network import free_port

WEBHOOK_SECRET = "hook-Secret_42"
ACK_URL = "https://status.example.com/ack/ACKTOKEN9"

MESSAGE = Rendered(subject="API down", text="The API is down.", payload={
    "event": "incident.opened",
    "incident": {"id": 42, "title": "API down", "status": "investigating", "impact": "critical",
                 "components": ["api"], "url": "https://status.example.com/incidents/42"},
})


class RecordingClock(FakeClock):
    """A fake clock that remembers how long each sleeper asked to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


def config(api_url: str, **settings: Any) -> TelegramConfig:
    settings.setdefault("bot_token", Secret(TOKEN))
    return TelegramConfig(name="tg", type="telegram", api_url=api_url, **settings)


def notifier(api: FakeBotApi, http: aiohttp.ClientSession, **settings: Any) -> TelegramNotifier:
    return TelegramNotifier(config(api.url(), **settings), http, clock=FakeClock())




async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def with_actions(*actions: dict[str, Any], incident_id: int = 42) -> Rendered:
    payload = {**MESSAGE.payload, "incident": {**MESSAGE.payload["incident"], "id": incident_id},  # type: ignore[index]
               "actions": list(actions)}
    return Rendered(subject=MESSAGE.subject, text=MESSAGE.text, payload=payload)


# --- sendMessage ---------------------------------------------------------------------------

async def test_sends_bold_subject_and_escaped_text_as_html(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    message = Rendered(subject="API <down> & out\n", text="p99 > 2s & rising <script>alert(1)</script>\n")
    await notifier(api, http).send(CHAT, message, key="incident-1/opened/tg/x")

    [sent] = api.sent
    assert sent == {
        "chat_id": CHAT,
        "text": "<b>API &lt;down&gt; &amp; out</b>\n\np99 &gt; 2s &amp; rising &lt;script&gt;alert(1)&lt;/script&gt;",
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }


async def test_parse_mode_none_sends_plain_text_without_parse_mode(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    await notifier(api, http, parse_mode="none").send("@statusd_alerts", Rendered(subject="A & B", text="<x>"), key="k")

    [sent] = api.sent
    assert sent["text"] == "A & B\n\n<x>"
    assert "parse_mode" not in sent


@pytest.mark.parametrize(("parse_mode", "body"), [
    pytest.param("HTML", "x" * 5000, id="html-ascii"),
    pytest.param("HTML", "&<>" * 2000, id="html-escapes-do-not-count"),
    pytest.param("none", "y" * 5000, id="plain"),
    pytest.param("none", "😀" * 3000, id="astral-counted-in-utf16"),
])
async def test_long_text_is_cut_to_telegrams_limit(api: FakeBotApi, http: aiohttp.ClientSession,
                                                   parse_mode: str, body: str) -> None:
    await notifier(api, http, parse_mode=parse_mode).send(CHAT, Rendered(subject="Long", text=body), key="k")

    [sent] = api.sent
    shown = visible_text(sent["text"]) if parse_mode == "HTML" else sent["text"]
    assert shown.startswith("Long\n\n" + body[:100])
    assert shown.endswith("…")
    assert 4090 <= utf16_len(shown) <= 4096


async def test_an_overlong_subject_alone_is_cut_too(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    await notifier(api, http).send(CHAT, Rendered(subject="s" * 5000, text="body"), key="k")

    [sent] = api.sent
    assert sent["text"].startswith("<b>sss")
    assert utf16_len(visible_text(sent["text"])) == 4096


async def test_actions_become_callback_buttons_never_url_buttons(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    message = with_actions({"id": "ack", "label": "Acknowledge", "url": ACK_URL}, incident_id=42)
    await notifier(api, http).send(CHAT, message, key="k")

    [sent] = api.sent
    assert sent["reply_markup"] == {"inline_keyboard": [[{"text": "Acknowledge", "callback_data": "ack:42"}]]}
    assert "ACKTOKEN9" not in json.dumps(sent)
    assert parse_action("ack:42") == ("ack", 42)


async def test_a_button_of_a_later_page_cycle_carries_its_cycle(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    first = with_actions({"id": "ack", "label": "Acknowledge", "url": ACK_URL, "cycle": 0}, incident_id=42)
    again = with_actions({"id": "ack", "label": "Acknowledge", "url": ACK_URL, "cycle": 2}, incident_id=42)
    await notifier(api, http).send(CHAT, first, key="k1")
    await notifier(api, http).send(CHAT, again, key="k2")

    assert [sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] for sent in api.sent] == ["ack:42", "ack:42@2"]
    assert parse_button("ack:42") == ("ack", 42, 0)
    assert parse_button("ack:42@2") == ("ack", 42, 2)
    assert parse_action("ack:42@2") == ("ack", 42)


@pytest.mark.parametrize("data", [
    pytest.param("ack:42@0", id="cycle-0-is-the-plain-form"),
    pytest.param("ack:42@", id="no-cycle"),
    pytest.param("ack:42@-1", id="negative"),
    pytest.param("ack:42@x", id="not-a-number"),
])
def test_parse_button_refuses(data: str) -> None:
    assert parse_button(data) is None


async def test_actions_that_cannot_round_trip_are_left_out(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    message = with_actions(
        {"id": "ack", "label": "Acknowledge"},
        {"id": "a" * 70, "label": "Too long"},  # callback_data would pass 64 bytes
        {"id": "re:solve", "label": "Colon"},  # would not parse back
        {"label": "No id"},
        {"id": "esc"},  # no label: the id is shown
        incident_id=7,
    )
    await notifier(api, http).send(CHAT, message, key="k")

    [sent] = api.sent
    assert sent["reply_markup"] == {"inline_keyboard": [[{"text": "Acknowledge", "callback_data": "ack:7"},
                                                         {"text": "esc", "callback_data": "esc:7"}]]}


@pytest.mark.parametrize("payload", [
    pytest.param(None, id="no-payload"),
    pytest.param(MESSAGE.payload, id="no-actions"),
    pytest.param({"event": "x", "actions": [{"id": "ack", "label": "Ack"}]}, id="no-incident"),
    pytest.param({"event": "x", "incident": {"id": "42"}, "actions": [{"id": "ack"}]}, id="id-not-int"),
    pytest.param({**MESSAGE.payload, "actions": []}, id="empty-actions"),  # type: ignore[dict-item]
])
async def test_no_keyboard_without_usable_actions(api: FakeBotApi, http: aiohttp.ClientSession,
                                                  payload: dict[str, Any] | None) -> None:
    await notifier(api, http).send(CHAT, Rendered(subject="S", text="T", payload=payload), key="k")

    [sent] = api.sent
    assert "reply_markup" not in sent


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("arrange", "recipient", "retryable", "says"), [
    pytest.param(lambda api: None, "999", False, "HTTP 400: Bad Request: chat not found", id="400-chat-not-found"),
    pytest.param(lambda api: None, BLOCKED_CHAT, False, "HTTP 403: Forbidden: bot was blocked", id="403-bot-blocked"),
    pytest.param(lambda api: api.fail(429, "Too Many Requests: retry after 7", retry_after=7), CHAT, True,
                 "retry after 7s", id="429-rate-limited"),
    pytest.param(lambda api: api.fail(502, "Bad Gateway"), CHAT, True, "HTTP 502", id="502-bad-gateway"),
    pytest.param(lambda api: api.fail(500, "Internal Server Error"), CHAT, True, "HTTP 500", id="500-server-error"),
    pytest.param(lambda api: api.fail_raw(504, "<html>Gateway Time-out</html>"), CHAT, True, "HTTP 504",
                 id="504-html-page"),
    pytest.param(lambda api: api.fail(200, "Bad Request: odd", ), CHAT, True, "HTTP 500", id="ok-false-behind-200"),
])
async def test_api_answers_are_classified(api: FakeBotApi, http: aiohttp.ClientSession,
                                          arrange: Callable[[FakeBotApi], None], recipient: str,
                                          retryable: bool, says: str) -> None:
    arrange(api)
    with pytest.raises(NotifyError) as caught:
        await notifier(api, http).send(recipient, MESSAGE, key="k")

    assert caught.value.retryable is retryable
    assert says in str(caught.value)
    assert str(caught.value).startswith("telegram sendMessage")
    assert_no_secret_in_error(caught.value, TOKEN)
    assert api.sent == []


@pytest.mark.parametrize(("arrange", "recipient", "reason"), [
    pytest.param(lambda api: None, "999", "http_4xx", id="400-chat-not-found"),
    pytest.param(lambda api: api.fail(429, "Too Many Requests: retry after 7", retry_after=7), CHAT, "rate_limited",
                 id="429-rate-limited"),
    pytest.param(lambda api: api.fail(502, "Bad Gateway"), CHAT, "http_5xx", id="502-bad-gateway"),
    pytest.param(lambda api: setattr(api, "hang", True), CHAT, "timeout", id="no-answer"),
    pytest.param(lambda api: None, "not a chat", "invalid", id="bad-recipient"),
])
async def test_failures_say_why_for_the_delivery_metric(api: FakeBotApi, http: aiohttp.ClientSession,
                                                        arrange: Callable[[FakeBotApi], None], recipient: str,
                                                        reason: str) -> None:
    arrange(api)
    with pytest.raises(DeliveryError) as caught:
        await notifier(api, http, timeout_s=0.2).send(recipient, MESSAGE, key="k")

    assert caught.value.reason == reason


async def test_an_unreachable_api_is_a_connect_failure(http: aiohttp.ClientSession) -> None:
    with pytest.raises(DeliveryError) as caught:
        await TelegramNotifier(config(f"http://127.0.0.1:{free_port()}"), http).send(CHAT, MESSAGE, key="k")

    assert caught.value.reason == "connect"


async def test_a_wrong_token_is_permanent_and_never_shown(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    wrong = "987654321:AAHwrong-TOKEN"
    with pytest.raises(NotifyError) as caught:
        await notifier(api, http, bot_token=Secret(wrong)).send(CHAT, MESSAGE, key="k")

    assert caught.value.retryable is False
    assert "HTTP 401: Unauthorized" in str(caught.value)
    assert_no_secret_in_error(caught.value, wrong, "987654321")


async def test_rate_limit_carries_telegrams_retry_after(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    api.fail(429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(TelegramApiError) as caught:
        await notifier(api, http).send(CHAT, MESSAGE, key="k")

    assert caught.value.retry_after_s == 7.0


async def test_a_proxy_echoing_the_path_does_not_leak_the_token(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    with pytest.raises(NotifyError) as caught:
        await TelegramNotifier(config(api.url("/proxy")), http).send(CHAT, MESSAGE, key="k")

    assert caught.value.retryable is False
    assert "HTTP 404" in str(caught.value)
    assert_no_secret_in_error(caught.value, TOKEN, "AAHfake")


async def test_connection_refused_is_retryable_and_tokenless(http: aiohttp.ClientSession) -> None:
    with pytest.raises(NotifyError) as caught:
        await TelegramNotifier(config(f"http://127.0.0.1:{free_port()}"), http).send(CHAT, MESSAGE, key="k")

    assert caught.value.retryable is True
    assert "cannot connect" in str(caught.value)
    assert_no_secret_in_error(caught.value, TOKEN, "AAHfake")


async def test_a_slow_api_times_out_retryably_and_tokenless(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    api.hang = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NotifyError) as caught:
        await notifier(api, http, timeout_s=0.2).send(CHAT, MESSAGE, key="k")

    assert caught.value.retryable is True
    assert "no answer within 0.2s" in str(caught.value)
    assert loop.time() - started < 2
    assert_no_secret_in_error(caught.value, TOKEN, "AAHfake")


async def test_a_bad_recipient_fails_permanently_without_a_request(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    with pytest.raises(NotifyError) as caught:
        await notifier(api, http).send("not a chat", MESSAGE, key="k")

    assert caught.value.retryable is False
    assert api.sent == [] and api.polls == []


async def test_cancellation_propagates(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    api.hang = True
    task = asyncio.create_task(notifier(api, http, timeout_s=30).send(CHAT, MESSAGE, key="k"))
    await asyncio.sleep(0.1)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


# --- callbacks: long polling --------------------------------------------------------------

class Presses:
    """An on_callback that records each press and answers it."""

    def __init__(self, answer: str = "Acknowledged, thanks", fail_on: str | None = None) -> None:
        self.seen: list[CallbackQuery] = []
        self.answer = answer
        self.fail_on = fail_on

    async def __call__(self, query: CallbackQuery) -> str:
        self.seen.append(query)
        if query.data == self.fail_on:
            raise RuntimeError("store unavailable")
        return self.answer


def callbacks(api: FakeBotApi, http: aiohttp.ClientSession, on_callback: Presses, *,
              clock: FakeClock | None = None, **settings: Any) -> TelegramCallbacks:
    settings.setdefault("poll_timeout_s", 1)
    return TelegramCallbacks(config(api.url(), **settings), http, on_callback, clock=clock or FakeClock())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_polling_delivers_a_press_once_answers_it_and_confirms_it(api: FakeBotApi,
                                                                        http: aiohttp.ClientSession) -> None:
    presses = Presses()
    receiver = callbacks(api, http, presses)
    update_id = api.press("ack:42", user_id=7001, username="ann")
    task = asyncio.create_task(receiver.poll_forever())
    await wait_until(lambda: len(api.answers) == 1)
    rounds = len(api.polls)
    await wait_until(lambda: len(api.polls) >= rounds + 2)  # two more rounds: nothing may come again
    await stop(task)

    assert presses.seen == [CallbackQuery(id=f"q{update_id}", chat_id=CHAT, from_user_id="7001",
                                          from_username="ann", data="ack:42")]
    assert api.answers == [{"callback_query_id": f"q{update_id}", "text": "Acknowledged, thanks"}]
    assert receiver.offset == update_id + 1
    assert api.updates == []  # confirmed to Telegram
    assert "offset" not in api.polls[0]
    assert all(p["offset"] == update_id + 1 for p in api.polls[1:])
    assert all(p["allowed_updates"] == ["callback_query"] and p["timeout"] == 1 for p in api.polls)


async def test_poll_once_handles_a_batch_and_a_second_round_is_empty(api: FakeBotApi,
                                                                     http: aiohttp.ClientSession) -> None:
    presses = Presses()
    receiver = callbacks(api, http, presses)
    first, second = api.press("ack:1"), api.press("ack:2", username=None)

    assert await receiver.poll_once() == 2
    assert await receiver.poll_once() == 0
    assert [q.data for q in presses.seen] == ["ack:1", "ack:2"]
    assert presses.seen[1].from_username is None
    assert receiver.offset == second + 1 > first


async def test_a_failing_handler_still_answers_and_is_not_redelivered(api: FakeBotApi,
                                                                      http: aiohttp.ClientSession) -> None:
    presses = Presses(fail_on="ack:1")
    receiver = callbacks(api, http, presses)
    api.press("ack:1")
    api.press("ack:2")

    await receiver.poll_once()
    await receiver.poll_once()

    assert [q.data for q in presses.seen] == ["ack:1", "ack:2"]
    assert [a["text"] for a in api.answers] == [FAILED_ANSWER, "Acknowledged, thanks"]


async def test_polling_survives_bad_gateways_and_backs_off(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    clock = RecordingClock()
    presses = Presses()
    api.fail(502, "Bad Gateway", times=2)
    task = asyncio.create_task(callbacks(api, http, presses, clock=clock).poll_forever())

    await wait_until(lambda: len(clock.sleeps) == 1)
    await clock.advance(clock.sleeps[-1])
    await wait_until(lambda: len(clock.sleeps) == 2)
    await clock.advance(clock.sleeps[-1])
    api.press("ack:5")
    await wait_until(lambda: len(api.answers) == 1)
    await stop(task)

    assert clock.sleeps == [1.0, 2.0]
    assert [q.data for q in presses.seen] == ["ack:5"]


async def test_polling_waits_as_long_as_a_rate_limit_asks(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    clock = RecordingClock()
    api.fail(429, "Too Many Requests: retry after 7", retry_after=7)
    task = asyncio.create_task(callbacks(api, http, Presses(), clock=clock).poll_forever())

    await wait_until(lambda: len(clock.sleeps) == 1)
    await stop(task)

    assert clock.sleeps == [7.0]


async def test_polling_survives_an_unreachable_api(http: aiohttp.ClientSession,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    clock = RecordingClock()
    receiver = TelegramCallbacks(config(f"http://127.0.0.1:{free_port()}", poll_timeout_s=1), http, Presses(),
                                 clock=clock)
    task = asyncio.create_task(receiver.poll_forever())

    await wait_until(lambda: len(clock.sleeps) == 1)
    await clock.advance(1)
    await wait_until(lambda: len(clock.sleeps) == 2)
    assert not task.done()
    await stop(task)

    assert "cannot connect" in caplog.text
    assert TOKEN not in caplog.text and "AAHfake" not in caplog.text


async def test_polling_off_returns_at_once(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
    await asyncio.wait_for(callbacks(api, http, Presses(), poll_timeout_s=0).poll_forever(), 1)

    assert api.polls == []


# --- callbacks: webhook -------------------------------------------------------------------

HOOK = "/telegram/tg/webhook"  # the notifier is called "tg" in config()


def update(data: str = "ack:42", update_id: int = 501) -> dict[str, Any]:
    return {"update_id": update_id, "callback_query": {
        "id": "wq1", "from": {"id": 7001, "is_bot": False, "first_name": "Ann", "username": "ann"},
        "chat_instance": "ci", "data": data,
        "message": {"message_id": 3, "date": 0, "chat": {"id": int(CHAT), "type": "supergroup"}},
    }}


async def webhook_client(http: aiohttp.ClientSession, presses: Presses,
                         webhook_secret: str | None) -> TestClient[web.Request, web.Application]:
    secret = Secret(webhook_secret) if webhook_secret is not None else None
    receiver = TelegramCallbacks(config("https://api.telegram.org", webhook_secret=secret, poll_timeout_s=0),
                                 http, presses)
    app = web_application(200_000)  # as statusd's app: bodies decoded by read_body, at most 200 KB here
    TelegramWebhook({"tg": receiver}.get).add_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest.fixture
async def presses() -> Presses:
    return Presses()


@pytest.fixture
async def hook(http: aiohttp.ClientSession, presses: Presses) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await webhook_client(http, presses, WEBHOOK_SECRET)
    try:
        yield client
    finally:
        await client.close()


async def test_webhook_takes_a_press_with_the_right_secret_and_answers_inline(
        hook: TestClient[web.Request, web.Application], presses: Presses) -> None:
    response = await hook.post(HOOK, json=update(), headers={SECRET_HEADER: WEBHOOK_SECRET})

    assert response.status == 200
    assert await response.json() == {"method": "answerCallbackQuery", "callback_query_id": "wq1",
                                     "text": "Acknowledged, thanks"}
    assert presses.seen == [CallbackQuery(id="wq1", chat_id=CHAT, from_user_id="7001", from_username="ann",
                                          data="ack:42")]


@pytest.mark.parametrize("headers", [
    pytest.param({SECRET_HEADER: "wrong-secret"}, id="wrong"),
    pytest.param({SECRET_HEADER: WEBHOOK_SECRET + "x"}, id="longer"),
    pytest.param({}, id="missing"),
])
async def test_webhook_rejects_a_wrong_or_missing_secret(hook: TestClient[web.Request, web.Application],
                                                         presses: Presses, headers: dict[str, str]) -> None:
    response = await hook.post(HOOK, json=update(), headers=headers)

    assert response.status == 401
    assert (await response.json())["error"]["field"] == SECRET_HEADER
    assert presses.seen == []


@pytest.mark.parametrize(("body", "field_name"), [
    pytest.param(b"{not json", "body", id="not-json"),
    pytest.param(b"\xff\xfe", "body", id="not-utf8"),
    pytest.param(b"[1, 2]", "update_id", id="not-an-object"),
    pytest.param(b'{"callback_query": {}}', "update_id", id="no-update-id"),
    pytest.param(b"[" * 100_000, "body", id="nested-too-deep"),
])
async def test_webhook_answers_a_malformed_body_with_400(hook: TestClient[web.Request, web.Application],
                                                         presses: Presses, body: bytes, field_name: str) -> None:
    response = await hook.post(HOOK, data=body, headers={SECRET_HEADER: WEBHOOK_SECRET,
                                                                "Content-Type": "application/json"})

    assert response.status == 400
    assert (await response.json())["error"]["field"] == field_name
    assert presses.seen == []


@pytest.mark.parametrize(("headers", "body", "status", "field_name"), [
    pytest.param({"Content-Encoding": "gzip"}, gzip.compress(json.dumps(update()).encode()), 200, None, id="gzip"),
    pytest.param({}, json.dumps({**update(), "pad": "x" * 300_000}).encode(), 413, "body", id="too-large"),
    pytest.param({"Content-Encoding": "compress"}, json.dumps(update()).encode(), 415, "Content-Encoding",
                 id="unknown-coding"),
])
async def test_webhook_reads_its_body_as_the_api_does(hook: TestClient[web.Request, web.Application],
                                                      headers: dict[str, str], body: bytes, status: int,
                                                      field_name: str | None) -> None:
    response = await hook.post(HOOK, data=body, headers={SECRET_HEADER: WEBHOOK_SECRET,
                                                                "Content-Type": "application/json", **headers})

    assert response.status == status, await response.text()
    if field_name is not None:
        assert (await response.json())["error"]["field"] == field_name


async def test_webhook_takes_a_press_whose_names_hold_a_nul(hook: TestClient[web.Request, web.Application],
                                                             presses: Presses) -> None:
    """Telegram cannot send it otherwise: refusing it would drop the press for good."""
    body = update()
    body["callback_query"]["from"]["first_name"] = "A\u0000nn"
    response = await hook.post(HOOK, json=body, headers={SECRET_HEADER: WEBHOOK_SECRET})

    assert response.status == 200, await response.text()
    assert [press.data for press in presses.seen] == ["ack:42"]


async def test_webhook_acknowledges_other_updates_without_calling_back(
        hook: TestClient[web.Request, web.Application], presses: Presses) -> None:
    response = await hook.post(HOOK, json={"update_id": 9, "message": {"text": "hi"}},
                               headers={SECRET_HEADER: WEBHOOK_SECRET})

    assert response.status == 200
    assert presses.seen == []


async def test_webhook_without_a_configured_secret_is_off(http: aiohttp.ClientSession) -> None:
    """Anyone who can reach an unprotected webhook could forge a press of an engineer's Acknowledge button."""
    presses = Presses(answer="ok")
    client = await webhook_client(http, presses, None)
    try:
        response = await client.post(HOOK, json=update("ack:9"))
        body = await response.json()
    finally:
        await client.close()

    assert response.status == 404 and body["error"]["field"] == "webhook_secret"
    assert presses.seen == []


async def test_webhook_answers_a_failing_handler_with_a_generic_text(http: aiohttp.ClientSession) -> None:
    presses = Presses(fail_on="ack:42")
    client = await webhook_client(http, presses, WEBHOOK_SECRET)
    try:
        response = await client.post(HOOK, json=update(), headers={SECRET_HEADER: WEBHOOK_SECRET})
        answer = await response.json()
    finally:
        await client.close()

    assert response.status == 200
    assert answer["text"] == FAILED_ANSWER


# --- pure helpers and config --------------------------------------------------------------

@pytest.mark.parametrize(("data", "expected"), [
    pytest.param("ack:123", ("ack", 123), id="ack"),
    pytest.param("resolve_now:7", ("resolve_now", 7), id="underscore"),
    pytest.param("ack:", None, id="no-id"),
    pytest.param(":12", None, id="no-action"),
    pytest.param("ack:-1", None, id="negative"),
    pytest.param("ack:1:2", None, id="two-colons"),
    pytest.param("ack:١٢", None, id="non-ascii-digits"),
    pytest.param("ack 12", None, id="no-colon"),
    pytest.param("", None, id="empty"),
])
def test_parse_action(data: str, expected: tuple[str, int] | None) -> None:
    assert parse_action(data) == expected


@pytest.mark.parametrize(("recipient", "ok"), [
    pytest.param("123456789", True, id="user-id"),
    pytest.param("-123456", True, id="group-id"),
    pytest.param("-1001234567890", True, id="supergroup-id"),
    pytest.param("@statusd_alerts", True, id="channel"),
    pytest.param("@abcd", True, id="short-collectible-channel"),
    pytest.param("@abc", False, id="channel-too-short"),
    pytest.param("@1channel", False, id="channel-starting-with-digit"),
    pytest.param("@with space", False, id="channel-with-space"),
    pytest.param("statusd_alerts", False, id="channel-without-at"),
    pytest.param("0", False, id="zero"),
    pytest.param("--5", False, id="double-minus"),
    pytest.param(" 123", False, id="leading-space"),
    pytest.param("12.5", False, id="not-an-integer"),
    pytest.param("", False, id="empty"),
])
def test_check_recipient(recipient: str, ok: bool) -> None:
    problem = config("https://api.telegram.org").check_recipient(recipient)

    assert (problem is None) is ok


def test_secrets_stay_out_of_repr() -> None:
    text = repr(config("https://api.telegram.org", webhook_secret=Secret(WEBHOOK_SECRET)))

    assert TOKEN not in text and WEBHOOK_SECRET not in text


def test_telegram_is_a_builtin_kind() -> None:
    kind = notifiers.builtin_kinds()["telegram"]

    assert (kind.config, kind.notifier) == (TelegramConfig, TelegramNotifier)


def load(table: dict[str, object]) -> tuple[TelegramConfig | None, Problems]:
    problems: Problems = []
    loaded = load_section(TelegramConfig, {"type": "telegram", **table}, "notifiers.tg", problems, extra={"name": "tg"})
    return (None if problems else loaded), problems


def test_config_loads_from_a_table() -> None:
    loaded, problems = load({"bot_token": TOKEN, "api_url": "http://127.0.0.1:8081/", "timeout_s": 3,
                             "parse_mode": "none", "poll_timeout_s": 0, "webhook_secret": WEBHOOK_SECRET})

    assert problems == []
    assert loaded == TelegramConfig(name="tg", type="telegram", bot_token=Secret(TOKEN),
                                    api_url="http://127.0.0.1:8081/", timeout_s=3.0, parse_mode="none",
                                    poll_timeout_s=0, webhook_secret=Secret(WEBHOOK_SECRET))


def test_config_defaults() -> None:
    loaded, _ = load({"bot_token": TOKEN})

    assert loaded is not None
    assert (loaded.api_url, loaded.timeout_s, loaded.parse_mode, loaded.poll_timeout_s, loaded.webhook_secret) == (
        "https://api.telegram.org", 10.0, "HTML", 25, None)


@pytest.mark.parametrize(("table", "expected"), [
    pytest.param({}, [("notifiers.tg.bot_token", "required")], id="no-token"),
    pytest.param({"bot_token": ""}, [("notifiers.tg.bot_token", "required; ask @BotFather for a token, "
                                                                "e.g. bot_token = \"${TELEGRAM_BOT_TOKEN}\"")],
                 id="empty-token"),
    pytest.param({"bot_token": "12345/AAH secret"}, [("notifiers.tg.bot_token", "expected a token from @BotFather "
                                                                                "such as '123456:ABC-DEF1234ghIkl'")],
                 id="malformed-token"),
    pytest.param({"bot_token": TOKEN, "timeout_s": 0}, [("notifiers.tg.timeout_s", "must be greater than 0")],
                 id="zero-timeout"),
    pytest.param({"bot_token": TOKEN, "api_url": "ftp://api.telegram.org"},
                 [("notifiers.tg.api_url", "expected an absolute http:// or https:// URL such as "
                                           "'https://api.telegram.org'")], id="ftp-api-url"),
    pytest.param({"bot_token": TOKEN, "api_url": "api.telegram.org"},
                 [("notifiers.tg.api_url", "expected an absolute http:// or https:// URL such as "
                                           "'https://api.telegram.org'")], id="no-scheme"),
    pytest.param({"bot_token": TOKEN, "api_url": "https://api.telegram.org/?x=1"},
                 [("notifiers.tg.api_url", "must not have a query or fragment; the method path is appended to it")],
                 id="query-in-api-url"),
    pytest.param({"bot_token": TOKEN, "parse_mode": "MarkdownV2"},
                 [("notifiers.tg.parse_mode", "expected one of 'HTML', 'none', got 'MarkdownV2'")], id="parse-mode"),
    pytest.param({"bot_token": TOKEN, "poll_timeout_s": -1},
                 [("notifiers.tg.poll_timeout_s", "must be 0 (no polling) or more")], id="negative-poll"),
    pytest.param({"bot_token": TOKEN, "poll_timeout_s": 0, "webhook_secret": "has space"},
                 [("notifiers.tg.webhook_secret", "expected 1-256 characters from A-Z, a-z, 0-9, _ and - "
                                                  "(Telegram's rule for secret_token)")], id="webhook-secret-chars"),
    pytest.param({"bot_token": TOKEN, "webhook_secret": WEBHOOK_SECRET},
                 [("notifiers.tg.poll_timeout_s", "must be 0 when webhook_secret is set: Telegram refuses "
                                                  "getUpdates while a webhook is active")], id="webhook-and-polling"),
    pytest.param({"bot_token": TOKEN, "chat": "123"},
                 [("notifiers.tg.chat", "unknown key (known keys: api_url, bot_token, parse_mode, poll_timeout_s, "
                                        "timeout_s, type, webhook_secret)")], id="unknown-key"),
])
def test_config_problems(table: dict[str, object], expected: Problems) -> None:
    problems = load(table)[1]

    assert problems == expected
    for _, message in problems:
        assert "AAH secret" not in message and "AAHfake" not in message
