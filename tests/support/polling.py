"""Waiting on the real clock for something another task or process does, and failing by name when it never does."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T] | T], what: str, *, timeout_s: float = 20.0,
                     interval_s: float = 0.05, diagnostics: Callable[[], str] | None = None) -> T:
    """The first truthy value of `check()` (sync or async), polled every `interval_s`.

    After `timeout_s` the test fails naming `what`, followed by `diagnostics()` when given (say, the
    tail of a peer's log), so a timeout in CI says what was missing and why without a rerun.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            message = f"timed out after {timeout_s:g}s waiting for {what}"
            if diagnostics is not None:
                message += "\n" + diagnostics()
            pytest.fail(message)
        await asyncio.sleep(interval_s)


def log_tail(path: Path, name: str, chars: int = 4000) -> Callable[[], str]:
    """A diagnostics callback for `eventually`: the last `chars` of a peer's log file, headed by its name."""

    def tail() -> str:
        text = path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"
        return f"{name} log:\n{text}"

    return tail
