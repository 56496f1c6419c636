"""One error hierarchy for statusd; every user-facing error says what was wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable


class StatusdError(Exception):
    """Base of every error statusd raises on purpose."""


class ConfigError(StatusdError):
    """The configuration is invalid; carries every problem with its key path."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in self.problems))


class ValidationError(StatusdError):
    """Input from a client is invalid; `field` names the offending field."""

    status = 400  # the HTTP status it is answered with

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(StatusdError):
    """The named object does not exist."""

    def __init__(self, what: str, ident: object) -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"{what} {ident!r} not found")


class Conflict(StatusdError):
    """The request is valid but contradicts the current state (e.g. resolving a resolved incident)."""


class NotifyError(StatusdError):
    """A notifier could not deliver; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)
