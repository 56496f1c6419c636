"""What every notifier shares: common settings, the registry entry, the HTTP status classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp

from statusd.core.errors import NotifyError


@dataclass(frozen=True, kw_only=True)
class NotifierSettings:
    """Settings every notifier has. `name` is the notifier's table key in config."""

    name: str
    type: str

    def check_recipient(self, recipient: str) -> str | None:
        """Why `recipient` is no address for this channel, or None when it is; kinds override this."""
        return None if recipient.strip() else "must not be empty"


class NotifierKind(NamedTuple):
    """A registry entry: the config dataclass and the notifier class built from it."""

    config: type[Any]
    notifier: type[Any]


def raise_for_http_status(status: int, body: str, service: str) -> None:
    """The one classifier every HTTP integration uses: 2xx ok, 408/429/5xx retry, other 4xx permanent."""
    if 200 <= status < 300:
        return
    snippet = body[:200].replace("\n", " ")
    retryable = status in (408, 429) or status >= 500
    raise NotifyError(f"{service} answered HTTP {status}: {snippet}", retryable=retryable)


def describe_client_error(exc: aiohttp.ClientError) -> str:
    """A transport failure in words safe to log: aiohttp's own messages may repeat the URL and its secrets."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return f"request failed ({type(exc).__name__})"
