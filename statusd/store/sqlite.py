"""The embedded SQLite store (aiosqlite, WAL): one file, zero set-up.

Writes go through one connection, one transaction at a time (`BEGIN IMMEDIATE` under a
lock), so a unit of work never interleaves with another. Reads use a second connection
and, thanks to WAL, never wait for writers.

Every call to aiosqlite is a hop to the connection's thread and back through the event
loop, and under load each hop waits for a turn of a busy loop. So each statement is one
hop (never execute + fetch + close), and a transaction's `BEGIN IMMEDIATE` travels with
its first statement: a transaction of n statements costs n + 1 hops. A brief transaction
(`transaction(brief=True)`: the report intake's group commits, a few small statements)
runs on the event loop's thread instead, with no hop at all: its statements take less
time than one hop. So that no commit there ever runs a checkpoint, the writer does not
checkpoint the WAL itself; a third connection does, on its own thread, after commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from statusd.core.protocols import Tx
from statusd.store import migrations
from statusd.store.dialect import SQLITE, Dialect, ts
from statusd.store.repos.outbox import SqlOutbox
from statusd.store.repos.reports import SqlReports
from statusd.store.session import Row
from statusd.store.tx import SqlTx

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Connection(aiosqlite.Connection):
    """aiosqlite's connection, plus `run`: a function of the sqlite3 connection, on its thread, in one hop."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        # `_execute` queues a call for the connection's thread; every public aiosqlite call is built on it.
        return await self._execute(fn, self._conn, *args)

    def run_here(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn` on the calling thread: only while nothing else uses the connection (the writer's lock)."""
        return fn(self._conn, *args)

    async def stopped(self, timeout_s: float = 5.0) -> None:
        """Wait, with the loop running, for the thread of a connection that failed to open to end.

        aiosqlite stops it without waiting: had the loop closed first, the thread's last answer
        would print a traceback ("Event loop is closed") after statusd's own error message.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._thread.is_alive() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)


class _Session:
    """Statements on one connection; in a write transaction the first one carries the `BEGIN IMMEDIATE`.

    `here`: run them on the event loop's thread (a brief transaction), not the connection's.
    Each statement is one hop to the connection's thread and back (none when `here`).
    """

    __slots__ = ("db", "begin", "here")

    dialect: Dialect = SQLITE

    def __init__(self, db: _Connection, *, begin: bool = False, here: bool = False) -> None:
        self.db = db
        self.begin = begin  # True until a statement has opened the transaction
        self.here = here

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row the statement returns."""
        return cast("list[Row]", await self.run(_fetchall, sql, params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row the statement returns, or None."""
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        return await self.run(_rowcount, sql, params)

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters, in one hop."""
        await self.run(_executemany, sql, rows)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` in one hop; the first in a write transaction begins it."""
        if not self.begin:
            return await self.call(fn, *args)
        try:
            if self.here:
                try:
                    return self.db.run_here(_begun_at_once, fn, *args)
                except _Busy:  # another process writes: wait for it on the connection's thread, not the loop
                    self.here = False
            return await self.call(_begun, fn, *args)
        finally:  # a failed BEGIN leaves it to the next statement; a failed statement after it does not
            self.begin = not self.db.in_transaction

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` on the session's thread, never beginning a transaction."""
        return self.db.run_here(fn, *args) if self.here else await self.db.run(fn, *args)


BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's write lock


class _Busy(Exception):
    """Another connection holds the write lock."""


def _begun(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN IMMEDIATE")
    return fn(conn, *args)


def _begun_at_once(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """`_begun` without waiting for the write lock (on the event loop, a wait would stop everything)."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            raise _Busy() from exc
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return fn(conn, *args)


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _rowcount(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return conn.execute(sql, params).rowcount


def _executemany(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    conn.executemany(sql, rows)


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # not when the BEGIN itself failed, or no statement ran
        conn.execute("ROLLBACK")


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


#: The SQLite store's repositories by their former names, for callers that replace one of their methods.
SqliteOutbox = SqlOutbox
SqliteReports = SqlReports


class SqliteStore:
    """The SQLite implementation of `statusd.core.protocols.Store`."""

    checkpoint_interval_s = 0.25  # at most one WAL checkpoint this often, after commits

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None
        self._checkpointer: _Connection | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpointed_at = 0.0  # time.monotonic()
        self._closing = False
        self._write_lock = asyncio.Lock()
        self.applied_migrations: list[str] = []  # by the last open()
        self.installation_id = ""  # this database's random id (migration 0006), read by open()

    async def open(self) -> None:
        """Connect and migrate; on failure (not a database, a directory, no permission) nothing stays open.

        Each connection has a thread of its own that keeps the process alive: one left behind by
        a failed start kept `statusd serve` running after it had reported the error.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The writer is also used on the event loop's thread (brief transactions), under the lock.
            self._writer = await self._connect(check_same_thread=False)
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._writer.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job: see _checkpoint_soon
            self.applied_migrations = await self.migrate()
            # A table since 0006; an upgrade test may stop the migrations before it.
            async with self._writer.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                            " AND name = 'installation'") as cur:
                installed = bool(await cur.fetchall())
            if installed:
                async with self._writer.execute("SELECT id FROM installation") as cur:
                    self.installation_id = "".join(str(r[0]) for r in await cur.fetchall())
            self._reader = await self._connect()
            self._checkpointer = await self._connect()
        except BaseException:
            for db in (self._checkpointer, self._reader, self._writer):
                if db is not None:
                    with contextlib.suppress(Exception):
                        await db.close()
            self._checkpointer = self._reader = self._writer = None
            raise

    async def _connect(self, *, check_same_thread: bool = True) -> _Connection:
        path = str(self.path)
        db = _Connection(lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread), 64)
        try:
            await db
        except BaseException:
            await db.stopped()
            raise
        try:
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            with contextlib.suppress(Exception):
                await db.close()
            raise
        return db

    async def migrate(self) -> list[str]:
        """Apply pending numbered migrations, each in its own transaction; returns the applied names."""
        db = self._writer
        assert db is not None, "open() first"
        await db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        async with db.execute("SELECT version FROM schema_migrations") as cur:
            done = {r[0] for r in await cur.fetchall()}
        applied = []
        for version, name, sql in migrations("sqlite"):
            if version in done:
                continue
            # executescript would commit on its own; run statements inside one explicit transaction.
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                 (version, name, ts(datetime.now(UTC))))
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            log.info("applied migration %s", name)
            applied.append(name)
        return applied

    async def close(self) -> None:
        async with self._write_lock:  # after the transaction under way; no checkpoint starts from now on
            self._closing = True
        if self._checkpointing is not None:
            await self._checkpointing
        for db in (self._checkpointer, self._reader, self._writer):
            if db is not None:
                await db.close()  # the last one to close checkpoints what is left
        self._checkpointer = self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self, *, brief: bool = False) -> AsyncIterator[Tx]:
        assert self._writer is not None, "open() first"
        async with self._write_lock:
            session = _Session(self._writer, begin=True, here=brief)
            try:
                yield SqlTx(session)
                if not session.begin:  # a statement opened the transaction (none ran: nothing to commit)
                    await session.call(_commit)
            except BaseException:
                # Also when cancelled while a statement or the COMMIT was queued on the thread: it
                # runs on regardless, and the rollback, queued behind it, keeps the lock until then.
                await _finish(session.call(_rollback))
                raise
            if not session.begin:
                self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Copy committed pages from the WAL into the database, on the checkpointer's thread.

        At most once per `checkpoint_interval_s`, and never on the event loop: a checkpoint of
        a thousand pages takes about 10 ms with its fsyncs. It holds the write lock, as the
        writer's own automatic checkpoint did: under a steady stream of commits a checkpoint
        running beside them never catches up with the end of the WAL, so the WAL could never
        start over and would grow without bound.
        """
        now = time.monotonic()
        if (self._closing or (self._checkpointing is not None and not self._checkpointing.done())
                or now - self._checkpointed_at < self.checkpoint_interval_s):
            return
        self._checkpointed_at = now
        self._checkpointing = asyncio.create_task(self._checkpoint(), name="sqlite-checkpoint")

    async def _checkpoint(self) -> None:
        try:
            assert self._checkpointer is not None
            async with self._write_lock:
                if not self._closing:
                    await self._checkpointer.run(_checkpoint)
        except Exception:  # noqa: BLE001 - the next commit tries again; the WAL only grows meanwhile
            log.exception("checkpointing the SQLite WAL failed")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        assert self._reader is not None, "open() first"
        yield SqlTx(_Session(self._reader))


async def _finish(call: Awaitable[T]) -> T:
    """Await `call` to its end even if the awaiting task is cancelled meanwhile (then re-raise that)."""
    task = asyncio.ensure_future(call)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError()
    return result


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (our migrations keep ';' out of literals and triggers)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
