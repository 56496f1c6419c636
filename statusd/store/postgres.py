"""The PostgreSQL store (asyncpg) for deployments where several replicas share one database.

Every unit of work is one pooled connection inside one transaction. Replicas drain the
outbox together: `claim` locks its rows with `FOR UPDATE SKIP LOCKED`, so a row taken by
one replica is invisible to the others until its lease expires.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from statusd.core.model import (
    CustomerReport,
)
from statusd.store import migrations
from statusd.store.dialect import POSTGRES, Dialect, numbered
from statusd.store.session import Row
from statusd.core.protocols import ReportRepo
from statusd.store.tx import SqlTx

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key serialising migrations across replicas ("statusdM" in ASCII).
MIGRATION_LOCK_KEY = 0x7374617475736D4D

_ERROR_LIMIT = 1000


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _utc(value: datetime | None) -> datetime | None:
    """An aware datetime converted to UTC; naive ones are refused, as in the SQLite store."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime reached the store")
    return value.astimezone(UTC)


def _read_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _rowcount(status: str) -> int:
    """The row count from a command tag such as 'UPDATE 3' or 'INSERT 0 1'."""
    return int(status.rsplit(" ", 1)[-1])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=_json, decoder=json.loads)


class _Repo:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn


class PostgresReports(_Repo):
    """Customer reports on one connection."""

    async def add(self, report: CustomerReport) -> tuple[CustomerReport, bool]:
        """Store a report; the same (source, external_id) again returns the stored one and False."""
        [result] = await self.add_many([report])
        return result

    async def add_many(self, reports: Sequence[CustomerReport]) -> list[tuple[CustomerReport, bool]]:
        """`add` for each report in order, in one statement; a repeat within the batch is a repeat of its first."""
        if not reports:
            return []
        # Ids are drawn per input row up front, so each new row joins back to its position (n) whatever
        # order RETURNING takes; only the first of a batch's repeats is inserted, in key order so that
        # replicas storing overlapping batches wait on each other instead of deadlocking. The second
        # branch reads repeats of rows stored before this statement (it cannot see the new ones).
        rows = await self.conn.fetch(
            "WITH batch AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('reports', 'id')) AS id, i.*"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[]) WITH ORDINALITY"
            " AS i (source, external_id, client_id, channel, text, tags, contact_notifier, contact_address,"
            " ticket_url, received_at, created_at, n)),"
            " inserted AS (INSERT INTO reports (id, source, external_id, client_id, channel, text, tags, contact_notifier,"
            " contact_address, ticket_url, received_at, created_at)"
            " SELECT id, source, external_id, client_id, channel, text, tags::jsonb, contact_notifier,"
            " contact_address, ticket_url, received_at, created_at FROM batch i"
            " WHERE NOT EXISTS (SELECT 1 FROM batch e WHERE e.source = i.source AND e.external_id = i.external_id"
            " AND e.n < i.n) ORDER BY source, external_id, n"
            " ON CONFLICT (source, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING *)"
            " SELECT i.n, inserted.* FROM inserted JOIN batch i USING (id)"
            " UNION ALL SELECT NULL, r.* FROM reports r WHERE r.external_id IS NOT NULL"
            " AND (r.source, r.external_id) IN (SELECT source, external_id FROM batch)",
            [r.source for r in reports], [r.external_id for r in reports], [r.client_id for r in reports],
            [r.channel for r in reports], [r.text for r in reports], [_json(dict(r.tags)) for r in reports],
            [r.contact[0] if r.contact else None for r in reports],
            [r.contact[1] if r.contact else None for r in reports], [r.ticket_url for r in reports],
            [_utc(r.received_at) for r in reports], [_utc(r.created_at or r.received_at) for r in reports],
        )
        new = {row["n"]: row for row in rows if row["n"] is not None}
        stored = {(row["source"], row["external_id"]): row for row in rows if row["external_id"] is not None}
        results: list[tuple[CustomerReport, bool]] = []
        for n, report in enumerate(reports, 1):
            if n in new:
                results.append((self._report(new[n]), True))
            elif (row := stored.get((report.source, report.external_id))) is not None:
                results.append((self._report(row), False))
            else:  # stored by a transaction that committed after this statement began: rare
                results.append((await self._existing(report), False))
        return results

    async def _existing(self, report: CustomerReport) -> CustomerReport:
        row = await self.conn.fetchrow("SELECT * FROM reports WHERE source = $1 AND external_id = $2",
                                       report.source, report.external_id)
        assert row is not None
        return self._report(row)

    async def link(self, report_ids: Iterable[int], incident_id: int) -> list[CustomerReport]:
        """Link reports not linked yet; returns the newly linked ones."""
        rows = await self.conn.fetch(
            "UPDATE reports SET incident_id = $1 WHERE id = ANY($2::bigint[]) AND incident_id IS NULL RETURNING *",
            incident_id, list(report_ids))
        return sorted((self._report(r) for r in rows), key=lambda r: (r.received_at, r.id or 0))

    async def link_many(self, links: Mapping[int, Sequence[int]]) -> list[CustomerReport]:
        """`link` for several incidents in one statement; returns every newly linked report."""
        pairs = [(report_id, incident_id) for incident_id, ids in links.items() for report_id in ids]
        if not pairs:
            return []
        rows = await self.conn.fetch(
            "UPDATE reports AS r SET incident_id = v.incident_id FROM unnest($1::bigint[], $2::bigint[])"
            " AS v(id, incident_id) WHERE r.id = v.id AND r.incident_id IS NULL RETURNING r.*",
            [p[0] for p in pairs], [p[1] for p in pairs])
        return sorted((self._report(r) for r in rows), key=lambda r: (r.received_at, r.id or 0))

    async def for_incident(self, incident_id: int) -> list[CustomerReport]:
        """Reports linked to the incident, oldest first."""
        rows = await self.conn.fetch("SELECT * FROM reports WHERE incident_id = $1 ORDER BY received_at, id",
                                     incident_id)
        return [self._report(r) for r in rows]

    async def recent(self, since: datetime, limit: int = 100_000) -> list[CustomerReport]:
        """Reports received since `since`, oldest first."""
        rows = await self.conn.fetch("SELECT * FROM reports WHERE received_at >= $1 ORDER BY received_at, id LIMIT $2",
                                     _utc(since), limit)
        return [self._report(r) for r in rows]

    async def move(self, from_incident: int, to_incident: int) -> int:
        """Re-link every report of one incident to another."""
        return _rowcount(await self.conn.execute("UPDATE reports SET incident_id = $1 WHERE incident_id = $2",
                                                 to_incident, from_incident))

    @staticmethod
    def _report(r: asyncpg.Record) -> CustomerReport:
        contact = (r["contact_notifier"], r["contact_address"]) if r["contact_notifier"] else None
        return CustomerReport(id=r["id"], source=r["source"], external_id=r["external_id"], client_id=r["client_id"],
                              channel=r["channel"], text=r["text"], tags=dict(r["tags"]), contact=contact,
                              ticket_url=r["ticket_url"], received_at=r["received_at"].astimezone(UTC),
                              created_at=_read_utc(r["created_at"]), incident_id=r["incident_id"])


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


class PostgresTx(SqlTx):
    """Repositories over one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(_Session(conn))
        self.reports: ReportRepo = PostgresReports(conn)


class PostgresStore:
    """The PostgreSQL implementation of `statusd.core.protocols.Store`."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self.applied_migrations: list[str] = []  # by the last open()

    def __repr__(self) -> str:
        # The DSN may carry a password.
        return f"PostgresStore(min_size={self.min_size}, max_size={self.max_size})"

    async def open(self) -> None:
        """Create the pool and apply pending migrations."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=self.min_size, max_size=self.max_size,
                                               init=_init_connection)
        try:
            self.applied_migrations = await self.migrate()
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
    async def transaction(self, *, brief: bool = False) -> AsyncIterator[PostgresTx]:
        """A unit of work on one connection: commit on normal exit, roll back on error (`brief` changes nothing)."""
        async with self._require_pool().acquire() as conn, conn.transaction():
            yield PostgresTx(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PostgresTx]:
        """Repositories over one read-only snapshot; a write in it raises."""
        async with self._require_pool().acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                             readonly=True):
            yield PostgresTx(conn)
