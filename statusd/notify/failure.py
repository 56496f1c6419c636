"""The classify stage: any exception a delivery raised becomes a `Failure` with a reason from a bounded set.

Reasons label a metric (`statusd_notification_failures_total{notifier,reason}`), so they come
from `Reason` only: a plugin that names a reason outside it is counted as `unknown`, and no
address, URL or error text ever becomes a label value.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from statusd.core.errors import NotifyError, StatusdError


class Reason(StrEnum):
    """Why a delivery failed. The notifier-side ones match `notifiers.base.SendFailure`."""

    RENDER = "render"  # a template is missing or broken, or raised an error while it ran
    UNCONFIGURED = "unconfigured"  # the message names a notifier that config no longer has
    INVALID = "invalid"  # the channel cannot take this recipient or message
    TIMEOUT = "timeout"
    CONNECT = "connect"
    HTTP_3XX = "http_3xx"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"  # a refusal that is no HTTP status: an SMTP reply, a missing STARTTLS
    INTERNAL = "internal"  # the notifier itself crashed (a bug)
    UNKNOWN = "unknown"  # a notifier that gave no reason


_REASONS = frozenset(reason.value for reason in Reason)


class RenderError(StatusdError):
    """A message's template is missing or broken: retrying will not help."""


class UnknownNotifier(StatusdError):
    """The message names a notifier that config no longer has."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no notifier named {name!r} is configured")


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: why (`reason`), whether a retry can help, and what to record (free of secrets)."""

    reason: Reason
    retryable: bool
    error: str

    def recorded(self) -> str:
        """The outbox row's `last_error`: the reason first, so the console and the API show it too."""
        return f"{self.reason.value}: {self.error}"


def classify(exc: Exception) -> Failure:
    """The failure `exc` stands for. Only notifiers' own errors are trusted to say whether a retry helps."""
    if isinstance(exc, NotifyError):
        reason = getattr(exc, "reason", None)  # notifiers.base.DeliveryError has one; older plugins may not
        if not (isinstance(reason, str) and reason in _REASONS):
            reason = Reason.UNKNOWN
        return Failure(Reason(reason), exc.retryable, str(exc))
    if isinstance(exc, RenderError):
        return Failure(Reason.RENDER, False, str(exc))
    if isinstance(exc, UnknownNotifier):
        return Failure(Reason.UNCONFIGURED, False, str(exc))
    if isinstance(exc, StatusdError):  # one of ours, raised on purpose: the same message would fail again
        return Failure(Reason.UNKNOWN, False, str(exc))
    template = _failed_template(exc)
    if template is not None:  # `{{ 1 // 0 }}`: the same template fails the same way on every attempt
        return Failure(Reason.RENDER, False, f"template {template} failed: {type(exc).__name__}")
    # A notifier bug: retried (up to the last attempt), as the bug may depend on the moment.
    # Its text may hold anything, a secret included.
    return Failure(Reason.INTERNAL, True, f"internal error: {type(exc).__name__}")


def _failed_template(exc: BaseException) -> str | None:
    """Where a plain Python error (not a jinja2.TemplateError) was raised in a template: `name line n`; else None.

    jinja2 rewrites a template's traceback so that its last frames are the template's own lines,
    marked by `__jinja_exception__` in their globals; a frame of jinja2 itself counts too.
    """
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if "__jinja_exception__" in frame.f_globals:
            found = f"{PurePath(frame.f_code.co_filename).name} line {line}"
        elif found is None and str(frame.f_globals.get("__name__", "")).startswith("jinja2."):
            found = "(unknown)"
    return found
