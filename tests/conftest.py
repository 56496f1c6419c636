"""Shared fixtures: a fake clock, a temp SQLite store, the local PostgreSQL and an HTTP client session.

`free_port` and `assert_no_secret` live in tests/support/; they are imported here too so modules that
take them from conftest keep working.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from statusd.core.clock import FakeClock
from statusd.store.sqlite import SqliteStore
from tests.support.leaks import assert_no_secret
from tests.support.network import free_port
from tests.support.postgres import PG_ADMIN_DSN, PG_HOST, PG_PORT

__all__ = ["assert_no_secret", "free_port"]


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at Monday 2026-03-02 09:00 UTC; it moves only when a test moves it."""
    return FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
async def sqlite_store(tmp_path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store in the test's own directory, closed afterwards."""
    store = SqliteStore(tmp_path / "statusd.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin DSN of the local PostgreSQL; skips when none answers."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError as exc:
        pytest.skip(f"no PostgreSQL answers on {PG_HOST}:{PG_PORT} ({exc})")
    pytest.importorskip("asyncpg", reason="asyncpg is not installed")
    return PG_ADMIN_DSN


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp client session for the test (probes, notifiers and the outbox talk to loopback peers)."""
    async with aiohttp.ClientSession() as session:
        yield session
