"""Webhook notifier: POSTs each message as JSON to the recipient URL, optionally signed.

Every request carries these headers:

- `Content-Type: application/json` — the body is UTF-8 JSON, serialised once with no
  insignificant whitespace; the signature covers exactly these bytes.
- `User-Agent: statusd`
- `X-Statusd-Delivery: <key>` — the idempotency key of this delivery. A retry of the same
  message carries the same key, so receivers should drop a delivery whose key they have
  already processed.
- `X-Statusd-Timestamp: <t>` — when the request was signed, in whole Unix seconds
  (decimal ASCII digits).
- `X-Statusd-Signature: sha256=<hex>` — only when the notifier has a `secret`. `<hex>` is
  the lowercase hex HMAC-SHA256, keyed with the UTF-8 bytes of the secret, of the message
  `<t>` + `.` + `<body>`: the timestamp header's value as ASCII, one full stop, then the
  raw request body bytes exactly as received (do not re-serialise the JSON).

A receiver verifies a delivery by recomputing the HMAC over the timestamp header and the
raw body, comparing it with the header in constant time, and rejecting timestamps more
than a few minutes from its own clock, which stops replays of captured requests.
`verify_signature` in this module does all three.

Answers are classified like every HTTP integration (`notifiers.base.raise_for_http_status`):
2xx delivered, 408/429/5xx retried, redirects and other 4xx permanent failures. Timeouts and
connection failures are retried. Only the status line of a failed answer is recorded, never its
body; a host the guarded session refuses (`notifiers.guard`) is a permanent failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import ClassVar

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from notifiers.base import DeliveryError, NotifierSettings, describe_client_error, raise_for_http_status
from notifiers.guard import refused_address
from statusd.core.clock import Clock, SystemClock
from statusd.core.errors import NotifyError
from statusd.core.model import Rendered
from statusd.core.schema import Problems, Secret, header_problems, http_url, positive

DELIVERY_HEADER = "X-Statusd-Delivery"
TIMESTAMP_HEADER = "X-Statusd-Timestamp"
SIGNATURE_HEADER = "X-Statusd-Signature"
SIGNATURE_PREFIX = "sha256="

# Headers that carry statusd's own guarantees; config may not override them.
_RESERVED_HEADERS = frozenset(h.lower() for h in ("Content-Type", DELIVERY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
_REASON_CHARS = 100


@dataclass(frozen=True, kw_only=True)
class WebhookConfig(NotifierSettings):
    """A webhook channel; recipients are http(s) URLs. `secret` turns on request signing."""

    secret: Secret | None = None
    timeout_s: float = 10.0
    # Header values often hold tokens, so they stay out of repr.
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def check(self) -> Problems:
        problems = positive(self.timeout_s, "timeout_s")
        if self.secret is not None and not self.secret:
            problems.append(("secret", "must not be empty; remove the key to send unsigned requests"))
        for name in self.headers:
            if name.lower() in _RESERVED_HEADERS:
                problems.append((f"headers.{name}", "is set by statusd and cannot be overridden"))
        return problems + header_problems(self.headers)

    recipients_are_hosts: ClassVar[bool] = True

    def recipient_host(self, recipient: str) -> str | None:
        """The URL's host as aiohttp will connect to it (the same parser as `send`, so no parser differential)."""
        try:
            return _parse_url(recipient).raw_host
        except (NotifyError, ValueError):
            return None

    def check_recipient(self, recipient: str) -> str | None:
        """Why `recipient` cannot receive webhooks, or None when it can."""
        try:
            _parse_url(recipient)
        except NotifyError as exc:
            return str(exc)
        return None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Statusd-Signature` value for `body` sent at `timestamp` (Unix seconds as text)."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, *,
                     now: float | None = None, tolerance_s: float = 300) -> bool:
    """Whether `header` signs `body` at `timestamp` with `secret`; with `now`, also that the timestamp is within `tolerance_s`."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if now is not None and abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


class WebhookNotifier:
    """Delivers a message by POSTing its JSON payload to the recipient URL."""

    def __init__(self, config: WebhookConfig, http: aiohttp.ClientSession, *, clock: Clock | None = None) -> None:
        self.name = config.name
        self._config = config
        self._http = http
        self._clock: Clock = clock or SystemClock()

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        """POST `message` to the URL `recipient`; raises DeliveryError unless the receiver answered 2xx."""
        url = _parse_url(recipient)
        # Only the origin goes into errors: paths, queries and userinfo often carry tokens.
        where = f"webhook {url.origin()}"
        payload = message.payload if message.payload is not None else {"subject": message.subject, "text": message.text}
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        timestamp = str(int(self._clock.now().timestamp()))
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json", "User-Agent": "statusd"})
        headers.update(self._config.headers)
        headers[DELIVERY_HEADER] = key
        headers[TIMESTAMP_HEADER] = timestamp
        if self._config.secret:
            headers[SIGNATURE_HEADER] = sign(self._config.secret.reveal(), timestamp, body)
        timeout_s = self._config.timeout_s
        try:
            # A redirect would turn the POST into a GET or resend it elsewhere; treat it as an answer.
            async with self._http.post(url, data=body, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                status = response.status
                # The status line only: an answer body may be an internal service's page, which must
                # reach neither the outbox nor the log.
                reason = "".join(c for c in response.reason or "" if c.isprintable())[:_REASON_CHARS]
        except TimeoutError:
            raise DeliveryError(f"{where}: no answer within {timeout_s:g}s", retryable=True, reason="timeout") from None
        except aiohttp.InvalidURL:
            raise DeliveryError(f"{where}: invalid URL", retryable=False, reason="invalid") from None
        except aiohttp.ClientError as exc:
            if (refused := refused_address(exc)) is not None:
                raise DeliveryError(f"{where}: {refused}", retryable=False, reason="invalid") from None
            raise DeliveryError(f"{where}: {describe_client_error(exc)}", retryable=True, reason="connect") from None
        raise_for_http_status(status, reason, where)


def _parse_url(recipient: str) -> URL:
    problem = DeliveryError("webhook recipient must be an absolute http:// or https:// URL", retryable=False,
                            reason="invalid")
    if not http_url(recipient):
        raise problem
    return URL(recipient)


