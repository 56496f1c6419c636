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
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from statusd.core.model import (
    CustomerReport,
    OutboxMessage,
    OutboxStatus,
    ProbeResult,
    Subscriber,
)
from statusd.store import URGENT_FIRST, daily_checks, migrations
from statusd.store.dialect import POSTGRES, Dialect, numbered
from statusd.store.session import Row
from statusd.core.protocols import OutboxRepo, ProbeResultRepo, ReportRepo, SubscriberRepo
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


class PostgresProbeResults(_Repo):
    """Raw probe results on one connection."""

    async def add(self, result: ProbeResult) -> None:
        """Store one result and count it in its component's daily rollup."""
        await self.add_many([result])

    async def add_many(self, results: Sequence[ProbeResult]) -> None:
        """Store many results and count them in their components' daily rollups."""
        if not results:
            return
        await self.conn.executemany(
            "INSERT INTO probe_results (probe, component, at, ok, degraded, latency_s, error, detail)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(r.probe, r.component, _utc(r.at), r.ok, r.degraded, r.latency_s, r.error, r.detail) for r in results],
        )
        counts = daily_checks(results)
        if counts:
            await self.conn.executemany(
                "INSERT INTO component_daily AS d (component, day, checks, failures, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (component, day) DO UPDATE SET"
                " checks = d.checks + excluded.checks, failures = d.failures + excluded.failures,"
                " updated_at = GREATEST(d.updated_at, excluded.updated_at)",
                [(component, day, checks, failures, _utc(last))
                 for (component, day), (checks, failures, last) in counts.items()],
            )

    async def oldest(self) -> datetime | None:
        """When the oldest stored result was taken, or None."""
        return _read_utc(await self.conn.fetchval("SELECT MIN(at) FROM probe_results"))

    async def recent(self, probe: str, limit: int = 20) -> list[ProbeResult]:
        """The newest results of one probe, newest first."""
        rows = await self.conn.fetch(
            "SELECT * FROM probe_results WHERE probe = $1 ORDER BY at DESC, id DESC LIMIT $2", probe, limit)
        return [ProbeResult(probe=r["probe"], component=r["component"], at=r["at"].astimezone(UTC), ok=r["ok"],
                            degraded=r["degraded"], latency_s=r["latency_s"], error=r["error"],
                            detail=r["detail"]) for r in rows]

    async def prune(self, before: datetime) -> int:
        """Delete raw results older than `before`; returns how many."""
        return _rowcount(await self.conn.execute("DELETE FROM probe_results WHERE at < $1", _utc(before)))


class PostgresSubscribers(_Repo):
    """Subscribers on one connection."""

    async def add(self, subscriber: Subscriber) -> Subscriber:
        """Store a subscriber; the same (notifier, target) again updates its components."""
        row = await self.conn.fetchrow(
            "INSERT INTO subscribers (notifier, target, components, created_at)"
            " VALUES ($1, $2, $3, COALESCE($4, now()))"
            " ON CONFLICT (notifier, target) DO UPDATE SET components = excluded.components RETURNING *",
            subscriber.notifier, subscriber.target, sorted(subscriber.components), _utc(subscriber.created_at),
        )
        assert row is not None
        return self._subscriber(row)

    async def remove(self, subscriber_id: int) -> bool:
        """Delete a subscriber; returns whether it existed."""
        return _rowcount(await self.conn.execute("DELETE FROM subscribers WHERE id = $1", subscriber_id)) > 0

    async def list(self) -> list[Subscriber]:
        """All subscribers in the order they first subscribed."""
        return [self._subscriber(r) for r in await self.conn.fetch("SELECT * FROM subscribers ORDER BY id")]

    async def for_components(self, components: Iterable[str]) -> list[Subscriber]:
        """Subscribers to any of `components`, plus those subscribed to everything."""
        rows = await self.conn.fetch(
            "SELECT * FROM subscribers WHERE components = '[]'::jsonb OR components ?| $1::text[] ORDER BY id",
            list(components),
        )
        return [self._subscriber(r) for r in rows]

    @staticmethod
    def _subscriber(r: asyncpg.Record) -> Subscriber:
        return Subscriber(id=r["id"], notifier=r["notifier"], target=r["target"],
                          components=tuple(r["components"]), created_at=_read_utc(r["created_at"]))


class PostgresOutbox(_Repo):
    """The notification outbox on one connection."""

    async def enqueue(self, messages: Iterable[OutboxMessage]) -> int:
        """Store messages whose key is new; returns how many were stored."""
        batch = list(messages)
        if not batch:
            return 0
        # One statement for the whole fan-out; ORDER BY n keeps ids in the caller's order.
        rows = await self.conn.fetch(
            "INSERT INTO outbox (key, notifier, recipient, template, context, status, attempts,"
            " next_attempt_at, created_at)"
            " SELECT key, notifier, recipient, template, context::jsonb, 'pending', 0, next_attempt_at, created_at"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
            " $7::timestamptz[]) WITH ORDINALITY"
            " AS m (key, notifier, recipient, template, context, next_attempt_at, created_at, n)"
            " ORDER BY n ON CONFLICT (key) DO NOTHING RETURNING id",
            [m.key for m in batch], [m.notifier for m in batch], [m.recipient for m in batch],
            [m.template for m in batch], [_json(m.context) for m in batch],
            [_utc(m.next_attempt_at or m.created_at) for m in batch], [_utc(m.created_at) for m in batch],
        )
        return len(rows)

    @staticmethod
    def _lane(first: int, notifiers: Sequence[str] | None, other_than: Sequence[str]) -> tuple[str, list[Any]]:
        """The SQL condition (parameters from ${first} on) for messages of `notifiers` (None: any), except `other_than`."""
        sql, params = "", []
        if notifiers is not None:
            params.append(list(notifiers))
            sql += f" AND notifier = ANY(${first})"
        if other_than:
            params.append(list(other_than))
            sql += f" AND NOT (notifier = ANY(${first + len(params) - 1}))"
        return sql, params

    async def claim(self, now: datetime, limit: int, lease_s: float, *, notifiers: Sequence[str] | None = None,
                    other_than: Sequence[str] = ()) -> list[OutboxMessage]:
        """Take due messages (pending and due, or sending with an expired lease) for `lease_s` seconds."""
        now_utc = _utc(now)
        assert now_utc is not None
        lane, lane_params = self._lane(4, notifiers, other_than)
        # SKIP LOCKED: rows another replica is claiming right now are left to it, not waited for.
        rows = await self.conn.fetch(
            "WITH due AS (SELECT id FROM outbox"
            f" WHERE ((status = 'pending' AND next_attempt_at <= $1) OR (status = 'sending' AND lease_until <= $1)){lane}"
            f" ORDER BY {URGENT_FIRST}, next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " UPDATE outbox o SET status = 'sending', attempts = o.attempts + 1, lease_until = $3"
            " FROM due WHERE o.id = due.id RETURNING o.*",
            now_utc, limit, now_utc + timedelta(seconds=lease_s), *lane_params,
        )
        return sorted((self._message(r) for r in rows), key=lambda m: m.id or 0)

    async def release(self, message_id: int, attempts: int, at: datetime) -> None:
        """Hand a claimed message back, due at `at`, its attempt not counted (a shutdown is not a failure).

        `attempts`: as claimed; a message claimed again since (its lease ran out) is not touched.
        """
        await self.conn.execute("UPDATE outbox SET status = 'pending', attempts = GREATEST(attempts - 1, 0),"
                                " next_attempt_at = $1, lease_until = NULL, last_error = 'interrupted by shutdown'"
                                " WHERE id = $2 AND status = 'sending' AND attempts = $3", _utc(at), message_id, attempts)

    async def mark_sent(self, message_id: int, at: datetime) -> None:
        """Record a delivery."""
        await self.conn.execute("UPDATE outbox SET status = 'sent', sent_at = $1, lease_until = NULL, last_error = ''"
                                " WHERE id = $2", _utc(at), message_id)

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None:
        """Put a message back to pending, due at `next_attempt_at`."""
        await self.conn.execute("UPDATE outbox SET status = 'pending', next_attempt_at = $1, lease_until = NULL,"
                                " last_error = $2 WHERE id = $3",
                                _utc(next_attempt_at), error[:_ERROR_LIMIT], message_id)

    async def mark_dead(self, message_id: int, at: datetime, error: str) -> None:
        """Give up on a message for good."""
        await self.conn.execute("UPDATE outbox SET status = 'dead', lease_until = NULL, last_error = $1,"
                                " sent_at = NULL WHERE id = $2", error[:_ERROR_LIMIT], message_id)

    async def next_due(self, *, notifiers: Sequence[str] | None = None,
                       other_than: Sequence[str] = ()) -> datetime | None:
        """When the earliest pending message is due (or a lease expires), or None when nothing waits."""
        lane, lane_params = self._lane(1, notifiers, other_than)
        due = await self.conn.fetchval(
            "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE lease_until END)"
            f" FROM outbox WHERE status IN ('pending', 'sending'){lane}", *lane_params)
        return _read_utc(due)

    async def counts(self) -> dict[str, int]:
        """Number of messages per status, every status present."""
        rows = await self.conn.fetch("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        out = {s.value: 0 for s in OutboxStatus}
        out.update({r["status"]: r["n"] for r in rows})
        return out

    async def list(self, limit: int = 100) -> list[OutboxMessage]:
        """Newest messages first (for the console and tests)."""
        rows = await self.conn.fetch("SELECT * FROM outbox ORDER BY id DESC LIMIT $1", limit)
        return [self._message(r) for r in rows]

    @staticmethod
    def _message(r: asyncpg.Record) -> OutboxMessage:
        return OutboxMessage(
            id=r["id"], key=r["key"], notifier=r["notifier"], recipient=r["recipient"], template=r["template"],
            context=r["context"], status=OutboxStatus(r["status"]), attempts=r["attempts"],
            next_attempt_at=_read_utc(r["next_attempt_at"]), last_error=r["last_error"],
            created_at=r["created_at"].astimezone(UTC), sent_at=_read_utc(r["sent_at"]),
        )


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
        self.probe_results: ProbeResultRepo = PostgresProbeResults(conn)
        self.subscribers: SubscriberRepo = PostgresSubscribers(conn)
        self.outbox: OutboxRepo = PostgresOutbox(conn)
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
