"""Telegram notifier: sends each message with the Bot API, and takes button presses back in.

`TelegramNotifier.send` calls `sendMessage` for one chat: the subject in bold, then the
plain-text body, HTML-escaped, cut to Telegram's 4096-character limit. When the rendered
payload carries `actions` (e.g. Acknowledge), the message gets an inline keyboard whose
buttons carry `callback_data = "<action id>:<incident id>"`, with `@<cycle>` appended when the
action belongs to a later page cycle of the incident (one that re-opened), so an old button is refused.

`TelegramCallbacks` receives the presses of those buttons, either by long polling
(`poll_forever`, calling `getUpdates`) or from Telegram's webhook delivery (`answer_update`,
behind the HTTP handler in statusd.api.telegram, which checks the secret header). Telegram allows only one of the two per bot at a time: a bot with a
webhook set gets HTTP 409 from `getUpdates`, so webhook users set `poll_timeout_s = 0`.
Within one process each press reaches `on_callback` once; after a restart Telegram may
deliver presses again that the old process handled but had not yet confirmed.

Answers are classified like every HTTP integration: 2xx ok, 408/429/5xx retried, other 4xx
(chat not found, bot blocked, bad token) permanent. Timeouts and connection failures are
retried. The bot token is part of every request path, so no error or log line is built
from a URL: they name the API method only.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from notifiers.base import DeliveryError, NotifierSettings, SendFailure, describe_client_error, raise_for_http_status
from statusd.core.clock import Clock, SystemClock
from statusd.core.errors import NotifyError, ValidationError
from statusd.core.model import Rendered
from statusd.core.schema import Problems, Secret, http_url, positive

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TEXT_CHARS = 4096  # sendMessage's limit, counted after entity parsing (so tags and escapes are free)
MAX_CALLBACK_DATA_BYTES = 64
MAX_ANSWER_CHARS = 200  # answerCallbackQuery's limit on the text shown to the user
FAILED_ANSWER = "Sorry, that did not work. Please try again."

_CHAT_ID = re.compile(r"-?[1-9][0-9]{0,15}", re.ASCII)
# Public usernames are 5–32 characters; 4-character ones exist as collectible usernames.
_CHANNEL = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}", re.ASCII)
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+", re.ASCII)
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}", re.ASCII)
_ACTION = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):([0-9]{1,18})(?:@([1-9][0-9]{0,8}))?", re.ASCII)
_ERROR_BODY_BYTES = 4096
_BACKOFF_INITIAL_S = 1.0
_BACKOFF_MAX_S = 60.0


@dataclass(frozen=True, kw_only=True)
class TelegramConfig(NotifierSettings):
    """A Telegram bot; recipients are chat ids (`123`, `-100123`) or public channels (`@name`)."""

    bot_token: Secret
    api_url: str = "https://api.telegram.org"
    timeout_s: float = 10.0
    parse_mode: Literal["HTML", "none"] = "HTML"
    poll_timeout_s: int = 25
    webhook_secret: Secret | None = None

    def check(self) -> Problems:
        problems = positive(self.timeout_s, "timeout_s")
        if not self.bot_token:
            problems.append(("bot_token", "required; ask @BotFather for a token, e.g. bot_token = \"${TELEGRAM_BOT_TOKEN}\""))
        elif not _TOKEN.fullmatch(self.bot_token.reveal()):
            problems.append(("bot_token", "expected a token from @BotFather such as '123456:ABC-DEF1234ghIkl'"))
        if not http_url(self.api_url):
            problems.append(("api_url", "expected an absolute http:// or https:// URL such as 'https://api.telegram.org'"))
        elif (url := URL(self.api_url)).query_string or url.fragment:
            problems.append(("api_url", "must not have a query or fragment; the method path is appended to it"))
        if self.poll_timeout_s < 0:
            problems.append(("poll_timeout_s", "must be 0 (no polling) or more"))
        if self.webhook_secret is not None:
            if not _WEBHOOK_SECRET.fullmatch(self.webhook_secret.reveal()):
                problems.append(("webhook_secret", "expected 1-256 characters from A-Z, a-z, 0-9, _ and - "
                                                   "(Telegram's rule for secret_token)"))
            elif self.poll_timeout_s > 0:
                problems.append(("poll_timeout_s", "must be 0 when webhook_secret is set: Telegram refuses "
                                                   "getUpdates while a webhook is active"))
        return problems

    def check_recipient(self, recipient: str) -> str | None:
        """Why `recipient` is no Telegram chat, or None when it is one."""
        if _CHAT_ID.fullmatch(recipient) or _CHANNEL.fullmatch(recipient):
            return None
        return "expected a Telegram chat id such as '123456789' or '-1001234567890', or a channel such as '@statusd_alerts'"


@dataclass(frozen=True)
class CallbackQuery:
    """One press of an inline button, as Telegram reported it; `chat_id` is "" when the message is unknown."""

    id: str
    chat_id: str
    from_user_id: str
    from_username: str | None
    data: str


OnCallback = Callable[[CallbackQuery], Awaitable[str]]


def parse_action(data: str) -> tuple[str, int] | None:
    """The (action id, incident id) in a button's callback data such as "ack:123", or None when it is no action."""
    button = parse_button(data)
    return (button[0], button[1]) if button else None


def parse_button(data: str) -> tuple[str, int, int] | None:
    """(action id, incident id, page cycle) of callback data such as "ack:123" (cycle 0) or "ack:123@2"."""
    match = _ACTION.fullmatch(data)
    return (match.group(1), int(match.group(2)), int(match.group(3) or 0)) if match else None


class TelegramNotifier:
    """Delivers a message as one Telegram message to one chat."""

    def __init__(self, config: TelegramConfig, http: aiohttp.ClientSession, *, clock: Clock | None = None) -> None:
        self.name = config.name
        self._config = config
        self._api = _BotApi(config, http)
        self._clock: Clock = clock or SystemClock()

    def build(self, recipient: str, message: Rendered) -> dict[str, Any]:
        """The `sendMessage` parameters that `send` would post for `message` to `recipient`."""
        if (problem := self._config.check_recipient(recipient)) is not None:
            raise DeliveryError(f"telegram recipient: {problem}", retryable=False, reason="invalid")
        html_mode = self._config.parse_mode == "HTML"
        params: dict[str, Any] = {
            "chat_id": recipient,
            "text": _message_text(message, html_mode=html_mode),
            "disable_web_page_preview": True,
        }
        if html_mode:
            params["parse_mode"] = "HTML"
        if (keyboard := _keyboard(message.payload)) is not None:
            params["reply_markup"] = keyboard
        return params

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        """Send `message` to the chat `recipient`; raises NotifyError unless Telegram accepted it."""
        # Telegram has no idempotency key for sendMessage, so `key` cannot travel with the message.
        await self._api.call("sendMessage", self.build(recipient, message), timeout_s=self._config.timeout_s)


class TelegramCallbacks:
    """Takes inline-button presses from Telegram, hands each to `on_callback` and shows its answer to the user."""

    def __init__(self, config: TelegramConfig, http: aiohttp.ClientSession, on_callback: OnCallback, *,
                 clock: Clock | None = None) -> None:
        self._config = config
        self._api = _BotApi(config, http)
        self._on_callback = on_callback
        self._clock: Clock = clock or SystemClock()
        self._offset: int | None = None

    @property
    def offset(self) -> int | None:
        """The next update id `getUpdates` will ask for; every update below it is confirmed to Telegram."""
        return self._offset

    async def poll_forever(self) -> None:
        """Long-poll `getUpdates` until cancelled; returns at once when `poll_timeout_s` is 0. Never raises otherwise."""
        if self._config.poll_timeout_s == 0:
            return
        delay_s = _BACKOFF_INITIAL_S
        while True:
            try:
                await self.poll_once()
            except Exception as exc:  # noqa: BLE001 — nothing may end the loop but cancellation
                hint_s = exc.retry_after_s if isinstance(exc, TelegramApiError) else None
                wait_s = max(delay_s, hint_s or 0.0)
                log.warning("telegram polling failed, retrying in %gs: %s", wait_s, _safe(exc))
                await self._clock.sleep(wait_s)
                delay_s = min(delay_s * 2, _BACKOFF_MAX_S)
            else:
                delay_s = _BACKOFF_INITIAL_S

    async def poll_once(self) -> int:
        """One `getUpdates` round: handle every update it returns and advance the offset; returns how many came."""
        params: dict[str, Any] = {"timeout": self._config.poll_timeout_s, "allowed_updates": ["callback_query"]}
        if self._offset is not None:
            params["offset"] = self._offset
        # The server holds the request for up to poll_timeout_s, so the client waits that long plus the usual bound.
        updates = await self._api.call("getUpdates", params,
                                       timeout_s=self._config.poll_timeout_s + self._config.timeout_s)
        if not isinstance(updates, list):
            raise NotifyError("telegram getUpdates answered without a list of updates", retryable=True)
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(update_id, int):
                continue
            # Advance first: an update whose handling fails is still consumed, not redelivered forever.
            self._offset = max(self._offset or 0, update_id + 1)
            query = _callback_query(update)
            if query is None:
                continue
            answer = await self._answer_text(query)
            try:
                await self._api.call("answerCallbackQuery", {"callback_query_id": query.id, "text": answer},
                                     timeout_s=self._config.timeout_s)
            except NotifyError as exc:
                # The press was handled; only the toast is lost, and Telegram refuses late answers anyway.
                log.warning("telegram answerCallbackQuery failed: %s", exc)
        return len(updates)

    @property
    def webhook_secret(self) -> Secret | None:
        """The secret Telegram's webhook deliveries carry in SECRET_HEADER; None when the webhook is off."""
        return self._config.webhook_secret

    async def answer_update(self, update: Any) -> dict[str, Any] | None:
        """Handle one Update that Telegram's webhook delivered; the webhook's answer, or None for no button press.

        The answer runs answerCallbackQuery with the callback's text: Telegram runs a method
        given in the webhook's answer, which saves an outbound call. Raises ValidationError
        on "update_id" when `update` is no Telegram Update.
        """
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise ValidationError("update_id", "expected a Telegram Update object with an integer update_id")
        query = _callback_query(update)
        if query is None:
            return None
        answer = await self._answer_text(query)
        return {"method": "answerCallbackQuery", "callback_query_id": query.id, "text": answer}

    async def _answer_text(self, query: CallbackQuery) -> str:
        try:
            answer = await self._on_callback(query)
        except Exception:  # noqa: BLE001 — one bad press must not stop the others
            log.exception("telegram callback %r from user %s failed", query.data, query.from_user_id)
            answer = FAILED_ANSWER
        return answer[:MAX_ANSWER_CHARS]


class TelegramApiError(DeliveryError):
    """The Bot API refused a call; `retry_after_s` is Telegram's own wait hint when it rate-limits."""

    def __init__(self, message: str, *, retryable: bool, reason: SendFailure,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, retryable=retryable, reason=reason)
        self.retry_after_s = retry_after_s


class _BotApi:
    """Calls Bot API methods; errors name the method, never the URL, because the URL holds the token."""

    def __init__(self, config: TelegramConfig, http: aiohttp.ClientSession) -> None:
        self._config = config
        self._http = http

    async def call(self, method: str, params: Mapping[str, Any], *, timeout_s: float) -> Any:
        where = f"telegram {method}"
        token = self._config.bot_token.reveal()
        try:
            url = URL(self._config.api_url) / f"bot{token}" / method
        except ValueError:
            raise DeliveryError(f"{where}: api_url or bot_token cannot form a URL", retryable=False,
                                reason="invalid") from None
        try:
            async with self._http.post(url, json=dict(params), allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                status = response.status
                body = await (response.read() if 200 <= status < 300 else _read_at_most(response, _ERROR_BODY_BYTES))
        except TimeoutError:
            raise DeliveryError(f"{where}: no answer within {timeout_s:g}s", retryable=True, reason="timeout") from None
        except aiohttp.InvalidURL:
            raise DeliveryError(f"{where}: api_url or bot_token cannot form a URL", retryable=False,
                                reason="invalid") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{where}: {describe_client_error(exc)}", retryable=True, reason="connect") from None
        answer = _json_object(body)
        if 200 <= status < 300 and answer.get("ok") is not False:
            return answer.get("result")
        if 200 <= status < 300:  # ok: false behind a 200 should not happen; trust Telegram's error_code then
            code = answer.get("error_code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
        description = answer.get("description")
        detail = description if isinstance(description, str) else body.decode("utf-8", "replace")
        # A proxy in front of the API may echo the request path, and with it the token.
        for form in {token, quote(token, safe="")} - {""}:
            detail = detail.replace(form, "***")
        retry_after_s = _retry_after(answer)
        if retry_after_s is not None:
            detail += f" (retry after {retry_after_s:g}s)"
        try:
            raise_for_http_status(status, detail, where)
        except DeliveryError as exc:
            raise TelegramApiError(str(exc), retryable=exc.retryable, reason=exc.reason,
                                   retry_after_s=retry_after_s) from None
        raise AssertionError("unreachable: every 2xx returned above")


def _message_text(message: Rendered, *, html_mode: bool) -> str:
    # Templates often end a subject with a newline; the bold line reads better as one line.
    subject = " ".join(message.subject.split())
    body = message.text.strip()
    head, body = _fit(subject, body)
    if not html_mode:
        return "\n\n".join(part for part in (head, body) if part)
    bold = f"<b>{html.escape(head, quote=False)}</b>" if head else ""
    return "\n\n".join(part for part in (bold, html.escape(body, quote=False)) if part)


def _fit(subject: str, body: str) -> tuple[str, str]:
    """Cut subject and body so that the visible text stays within MAX_TEXT_CHARS, ending the cut with "…"."""
    # Cutting before escaping keeps entities like &amp; whole; Telegram counts in UTF-16 code units.
    separator = 2 if subject and body else 0
    if _utf16_len(subject) + separator + _utf16_len(body) <= MAX_TEXT_CHARS:
        return subject, body
    if _utf16_len(subject) + separator >= MAX_TEXT_CHARS - 1:
        return _cut(subject, MAX_TEXT_CHARS - 1) + "…", ""
    return subject, _cut(body, MAX_TEXT_CHARS - 1 - _utf16_len(subject) - separator) + "…"


def _cut(text: str, units: int) -> str:
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return text[:index]
    return text


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _keyboard(payload: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not payload or not isinstance(payload.get("actions"), list):
        return None
    incident = payload.get("incident")
    incident_id = incident.get("id") if isinstance(incident, Mapping) else None
    if not isinstance(incident_id, int) or isinstance(incident_id, bool):
        return None
    buttons = []
    for action in payload["actions"]:
        if not isinstance(action, Mapping) or not isinstance(action.get("id"), str):
            continue
        cycle = action.get("cycle")
        data = f"{action['id']}:{incident_id}"
        if isinstance(cycle, int) and not isinstance(cycle, bool) and cycle > 0:
            data += f"@{cycle}"
        if parse_action(data) != (action["id"], incident_id) or len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            log.warning("telegram: action %r cannot be a button (callback data must be 'id:number', at most 64 bytes)",
                        action["id"][:80])
            continue
        # The action's `url` is deliberately not a URL button: a link acknowledges as whoever opens it,
        # while a callback tells us which Telegram user pressed, and the link's token stays out of chats.
        label = action.get("label")
        buttons.append({"text": label if isinstance(label, str) and label else action["id"], "callback_data": data})
    return {"inline_keyboard": [buttons]} if buttons else None


def _callback_query(update: Mapping[str, Any]) -> CallbackQuery | None:
    query = update.get("callback_query")
    if not isinstance(query, dict) or not isinstance(query.get("data"), str) or "id" not in query:
        return None
    sender = _object(query.get("from"))
    chat = _object(_object(query.get("message")).get("chat"))
    username = sender.get("username")
    return CallbackQuery(
        id=str(query["id"]),
        chat_id=str(chat.get("id", "")),
        from_user_id=str(sender.get("id", "")),
        from_username=username if isinstance(username, str) else None,
        data=query["data"],
    )


def _object(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (a part of the Update Telegram left out)."""
    return value if isinstance(value, dict) else {}


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    # An error page is only a hint; a broken proxy must not make us buffer megabytes.
    body = b""
    while len(body) < limit and (chunk := await response.content.read(limit - len(body))):
        body += chunk
    return body


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _retry_after(answer: Mapping[str, Any]) -> float | None:
    parameters = answer.get("parameters")
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None



def _safe(exc: BaseException) -> str:
    # Errors from _BotApi are already token-free; anything else is reduced to its type.
    return str(exc) if isinstance(exc, NotifyError) else type(exc).__name__
