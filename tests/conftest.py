"""Shared fixtures: a fake clock, a temp SQLite store, an HTTP client session, free ports and secret-leak checks."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from statusd.core.clock import FakeClock
from statusd.store.sqlite import SqliteStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
async def sqlite_store(tmp_path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "statusd.db")
    await store.open()
    yield store
    await store.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_secret(text: str, *secrets: str) -> None:
    """Fail if any secret appears in `text` (errors, logs, reprs must never carry one)."""
    for secret in secrets:
        assert secret not in text, f"secret leaked into: {text[:200]!r}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp client session for the test (probes, notifiers and the outbox talk to loopback peers)."""
    async with aiohttp.ClientSession() as session:
        yield session
