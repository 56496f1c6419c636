"""The PostgreSQL store (asyncpg) for deployments where several replicas share one database.

Every unit of work is one pooled connection inside one transaction, with the repositories
written once in `statusd.store.repos` over the PostgreSQL dialect. Replicas drain the outbox
together: `claim` locks its rows with `FOR UPDATE SKIP LOCKED`, so a row taken by one replica
is invisible to the others until its lease expires.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from statusd.core.protocols import Tx
from statusd.store import migrations
from statusd.store.dialect import POSTGRES, Dialect, json_text, numbered
from statusd.store.session import Row
from statusd.store.tx import SqlTx

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key serialising migrations across replicas ("statusdM" in ASCII).
MIGRATION_LOCK_KEY = 0x7374617475736D4D


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb parameters and columns as Python values, encoded the way SQLite's text columns are.
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=json_text, decoder=json.loads)


class _Session:
    """Statements on one pooled connection, their `?` placeholders numbered as PostgreSQL wants them."""

    __slots__ = ("conn",)

    dialect: Dialect = POSTGRES

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row the statement returns."""
        rows: list[Row] = await self.conn.fetch(numbered(sql), *params)
        return rows

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row the statement returns, or None."""
        row: Row | None = await self.conn.fetchrow(numbered(sql), *params)
        return row

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns how many rows it changed (from the command tag, e.g. 'UPDATE 3')."""
        status: str = await self.conn.execute(numbered(sql), *params)
        return int(status.rsplit(" ", 1)[-1])

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters, pipelined in one round trip."""
        await self.conn.executemany(numbered(sql), rows)


class PostgresStore:
    """The PostgreSQL implementation of `statusd.core.protocols.Store`."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self.applied_migrations: list[str] = []  # by the last open()
        self.installation_id = ""  # this database's random id (migration 0006), read by open()

    def __repr__(self) -> str:
        # The DSN may carry a password.
        return f"PostgresStore(min_size={self.min_size}, max_size={self.max_size})"

    async def open(self) -> None:
        """Create the pool and apply pending migrations."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=self.min_size, max_size=self.max_size,
                                               init=_init_connection)
        try:
            self.applied_migrations = await self.migrate()
            # A table since 0006; an upgrade test may stop the migrations before it.
            if await self._pool.fetchval("SELECT to_regclass('installation') IS NOT NULL"):
                self.installation_id = await self._pool.fetchval("SELECT id FROM installation")
        except BaseException:
            await self.close()
            raise

    async def migrate(self) -> list[str]:
        """Apply pending numbered migrations, each in its own transaction; returns the applied names."""
        applied = []
        async with self._require_pool().acquire() as conn:
            for version, name, sql in migrations("postgres"):
                async with conn.transaction():
                    # Replicas starting together queue here; whoever comes second sees the row
                    # the first committed and skips the migration.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                    await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                                       " name text NOT NULL, applied_at timestamptz NOT NULL)")
                    if await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version):
                        continue
                    await conn.execute(sql)  # simple-query protocol: runs every statement of the file
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, now())", version, name)
                log.info("applied migration %s", name)
                applied.append(name)
        return applied

    async def close(self) -> None:
        """Close the pool, waiting for connections in use to be released."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require_pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "open() first"
        return self._pool

    @asynccontextmanager
    async def transaction(self, *, brief: bool = False) -> AsyncIterator[Tx]:
        """A unit of work on one connection: commit on normal exit, roll back on error (`brief` changes nothing)."""
        async with self._require_pool().acquire() as conn, conn.transaction():
            yield SqlTx(_Session(conn))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Repositories over one read-only snapshot; a write in it raises."""
        async with self._require_pool().acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                             readonly=True):
            yield SqlTx(_Session(conn))
