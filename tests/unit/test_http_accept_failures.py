"""A failing accept() (EMFILE) is logged once per interval with a count, not once per attempt. Fake clock."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from statusd.web.server import AcceptFailureLog


class Seconds:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_accept_failures_are_logged_once_per_interval_and_other_errors_pass_through(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Seconds()
    passed: list[dict[str, Any]] = []
    handler = AcceptFailureLog(lambda loop, context: passed.append(context), interval_s=60, monotonic=clock)
    loop = asyncio.new_event_loop()
    try:
        caplog.set_level(logging.DEBUG, logger="statusd")
        failure = {"message": AcceptFailureLog.MESSAGE, "exception": OSError(24, "Too many open files")}
        for _ in range(120):  # asyncio retries every second: two minutes of a flood
            handler(loop, failure)
            clock.now += 1
        handler(loop, {"message": "something else"})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "statusd.web.server"]
    assert len(lines) == 2, lines
    assert "Too many open files" in lines[0] and "59 more" in lines[1]
    assert passed == [{"message": "something else"}]
