"""The check that no secret reaches an error, a log line or a repr."""

from __future__ import annotations


def assert_no_secret(text: str, *secrets: str) -> None:
    """Fail if any secret appears in `text` (errors, logs, reprs must never carry one)."""
    for secret in secrets:
        assert secret not in text, f"secret leaked into: {text[:200]!r}"


def assert_no_secret_in_error(exc: BaseException, *secrets: str) -> None:
    """Fail if any secret appears in an error's message or repr: they end up in logs and in the outbox."""
    assert_no_secret(str(exc), *secrets)
    assert_no_secret(repr(exc), *secrets)
