"""A fake Telegram Bot API on loopback (sendMessage, getUpdates, answerCallbackQuery) and its fixture `api`."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "123456789:AAHfake-TOKEN_for_tests"
CHAT = "-1001234567890"
BLOCKED_CHAT = "555"
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler"}


def utf16_len(text: str) -> int:
    """The length Telegram counts its limits in: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(text: str) -> str:
    """What Telegram shows for an HTML-mode text: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", text))


@dataclass
class FakeBotApi:
    """A fake Telegram Bot API: sendMessage, getUpdates (long poll), answerCallbackQuery; records every call."""

    server: TestServer
    chats: set[str] = field(default_factory=lambda: {CHAT, "@statusd_alerts", BLOCKED_CHAT})
    blocked: set[str] = field(default_factory=lambda: {BLOCKED_CHAT})
    sent: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # not yet confirmed by an offset
    failures: list[tuple[int, dict[str, Any] | str]] = field(default_factory=list)  # answered before anything else
    hang: bool = False
    # Real long polls wait up to `timeout`; the cap keeps empty rounds short in tests.
    long_poll_cap_s: float = 0.2
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    open_queries: set[str] = field(default_factory=set)
    _next_update_id: int = 1000

    def url(self, path: str = "") -> str:
        """The API's base URL (what `api_url` is set to), or `path` on it."""
        return str(self.server.make_url(path))

    def fail(self, status: int, description: str, *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` calls with an error, as Telegram does."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        self.failures.extend([(status, body)] * times)

    def fail_raw(self, status: int, text: str) -> None:
        """Answer the next call with a non-JSON error page, as a proxy in front of the API would."""
        self.failures.append((status, text))

    def press(self, data: str, *, user_id: int = 7001, username: str | None = "ann") -> int:
        """Queue an update for someone pressing a button with `data`; returns its update_id."""
        self._next_update_id += 1
        update_id = self._next_update_id
        query_id = f"q{update_id}"
        sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Ann"}
        if username is not None:
            sender["username"] = username
        self.updates.append({"update_id": update_id, "callback_query": {
            "id": query_id, "from": sender, "chat_instance": "ci1", "data": data,
            "message": {"message_id": 9, "date": 0, "chat": {"id": int(CHAT), "type": "supergroup"}},
        }})
        self.open_queries.add(query_id)
        self.arrived.set()
        return update_id

    async def handle(self, request: web.Request) -> web.Response:
        """Answer `/bot<token>/<method>`: queued failures first, then a wrong token, then the method."""
        if self.hang:
            await self.release.wait()
        if self.failures:
            status, body = self.failures.pop(0)
            if isinstance(body, str):
                return web.Response(status=status, text=body)
            return web.json_response(body, status=status)
        if request.match_info["token"] != TOKEN:
            return error(401, "Unauthorized")
        params = await request.json()
        method = request.match_info["method"]
        if method == "sendMessage":
            return self.send_message(params)
        if method == "getUpdates":
            return await self.get_updates(params)
        if method == "answerCallbackQuery":
            return self.answer_callback_query(params)
        return error(404, "Not Found")

    def send_message(self, params: dict[str, Any]) -> web.Response:
        """Record the message, or refuse it as Telegram would (unknown or blocked chat, bad HTML, too long)."""
        chat = str(params.get("chat_id"))
        if chat not in self.chats:
            return error(400, "Bad Request: chat not found")
        if chat in self.blocked:
            return error(403, "Forbidden: bot was blocked by the user")
        text = params.get("text", "")
        if params.get("parse_mode") == "HTML":
            tags = {t.lower() for t in re.findall(r"</?([A-Za-z-]+)", text)}
            if not tags <= _ALLOWED_TAGS or re.search(r"&(?![a-z]+;|#\d+;)", text):
                return error(400, "Bad Request: can't parse entities")
            text = visible_text(text)
        if not text.strip():
            return error(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            return error(400, "Bad Request: message is too long")
        for row in params.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    return error(400, "Bad Request: BUTTON_DATA_INVALID")
        self.sent.append(params)
        return web.json_response({"ok": True, "result": {"message_id": len(self.sent), "chat": {"id": chat}}})

    async def get_updates(self, params: dict[str, Any]) -> web.Response:
        """Updates not yet confirmed by `offset`, waiting (up to the cap) for one to arrive."""
        self.polls.append(params)
        offset = params.get("offset")
        if offset is not None:
            # Telegram's rule: an offset confirms every update below it; they are never returned again.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        wanted = set(params.get("allowed_updates") or ["message", "callback_query"])
        deadline = asyncio.get_running_loop().time() + min(params.get("timeout", 0), self.long_poll_cap_s)
        while True:
            ready = [u for u in self.updates if wanted & u.keys()]
            remaining = deadline - asyncio.get_running_loop().time()
            if ready or remaining <= 0:
                return web.json_response({"ok": True, "result": ready[:params.get("limit", 100)]})
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass

    def answer_callback_query(self, params: dict[str, Any]) -> web.Response:
        """Record the answer to an open button press; each query can be answered once."""
        query_id = params.get("callback_query_id")
        if query_id not in self.open_queries:
            return error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(params.get("text", "")) > 200:
            return error(400, "Bad Request: MESSAGE_TOO_LONG")
        self.open_queries.discard(query_id)
        self.answers.append(params)
        return web.json_response({"ok": True, "result": True})

    async def echo(self, request: web.Request) -> web.Response:
        """A proxy's 404 page that echoes the path it was asked for (and any token in it)."""
        return web.Response(status=404, text=f"<html>no route for {request.path} ({request.path_qs})</html>")


def error(status: int, description: str) -> web.Response:
    """A Bot API error answer, shaped as Telegram sends it."""
    return web.json_response({"ok": False, "error_code": status, "description": description}, status=status)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """A FakeBotApi on a free loopback port; a hung long poll is released before the server closes."""
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    fake = FakeBotApi(server)
    app.router.add_post("/bot{token}/{method}", fake.handle)
    app.router.add_route("*", "/proxy/{tail:.*}", fake.echo)
    await server.start_server()
    try:
        yield fake
    finally:
        fake.release.set()
        await server.close()
