"""What every notifier shares: settings, the registry entry, the error it raises and the HTTP status classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import aiohttp

from statusd.core.errors import NotifyError

#: Why a send failed, in one word an operator can act on; the outbox counts failures by it
#: (`statusd_notification_failures_total{reason}`), so the set stays small and never holds an address.
#: `invalid`: this channel cannot take the recipient or message — fixed by data, not by waiting.
#: `rejected`: the peer answered with a refusal that is no HTTP status (an SMTP reply, a missing STARTTLS).
SendFailure = Literal["invalid", "timeout", "connect", "http_3xx", "http_4xx", "http_5xx", "rate_limited", "rejected"]


class DeliveryError(NotifyError):
    """A failed send that says whether a retry can help (`retryable`) and why it failed (`reason`)."""

    def __init__(self, message: str, *, retryable: bool, reason: SendFailure) -> None:
        super().__init__(message, retryable=retryable)
        self.reason: SendFailure = reason


@dataclass(frozen=True, kw_only=True)
class NotifierSettings:
    """Settings every notifier has. `name` is the notifier's table key in config."""

    name: str
    type: str
    #: Whether a recipient names the host a send connects to (a webhook URL), rather than an address behind a
    #: host from config (a mailbox, a chat id). Such recipients, when outsiders give them, are checked against
    #: `[notifications] allow_private_targets` when given and sent through the guarded session (`notifiers.guard`).
    recipients_are_hosts: ClassVar[bool] = False

    def recipient_host(self, recipient: str) -> str | None:
        """The host a send to `recipient` connects to, when `recipients_are_hosts`; None otherwise."""
        return None

    def check_recipient(self, recipient: str) -> str | None:
        """Why `recipient` is no address for this channel, or None when it is; kinds override this."""
        return None if recipient.strip() else "must not be empty"


class NotifierKind(NamedTuple):
    """A registry entry: the config dataclass and the notifier class built from it."""

    config: type[Any]
    notifier: type[Any]


def http_status_failure(status: int) -> tuple[SendFailure, bool] | None:
    """How an HTTP answer failed, as (reason, retryable); None for 2xx. 408/429/5xx retry; redirects, other 4xx not."""
    if 200 <= status < 300:
        return None
    if status == 408:
        return "timeout", True
    if status == 429:
        return "rate_limited", True
    if status >= 500:
        return "http_5xx", True
    if 300 <= status < 400:
        # Following it would turn a POST into a GET or resend it elsewhere: the URL is what needs fixing.
        return "http_3xx", False
    return "http_4xx", False  # 1xx as a final answer is no success either, and no retry mends it


def raise_for_http_status(status: int, body: str, service: str) -> None:
    """The one classifier every HTTP integration uses: 2xx ok, 408/429/5xx retry, redirects and other 4xx permanent."""
    failure = http_status_failure(status)
    if failure is None:
        return
    snippet = body[:200].replace("\n", " ")
    reason, retryable = failure
    raise DeliveryError(f"{service} answered HTTP {status}: {snippet}", retryable=retryable, reason=reason)


def describe_client_error(exc: aiohttp.ClientError) -> str:
    """A transport failure in words safe to log: aiohttp's own messages may repeat the URL and its secrets."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return f"request failed ({type(exc).__name__})"
