"""The notification outbox: one row per (message, recipient, channel), claimed under a lease."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from statusd.core.model import URGENT_TEMPLATES, OutboxMessage, OutboxStatus
from statusd.store.dialect import json_text
from statusd.store.session import Repo, Row

#: Outbox order: messages to the engineers handling an incident are claimed before any other due
#: message. After a surge, thousands of customer acknowledgements queued ahead of a page used to hold
#: it back for minutes while its escalation clock ran.
URGENT_FIRST = f"CASE WHEN template IN ({', '.join(repr(t) for t in URGENT_TEMPLATES)}) THEN 0 ELSE 1 END"

ERROR_LIMIT = 1000  # characters of a delivery error kept
_ROWS_PER_INSERT = 4000  # seven parameters a message, under SQLite's 32,766


class SqlOutbox(Repo):
    """The notification outbox on one session."""

    async def enqueue(self, messages: Iterable[OutboxMessage]) -> int:
        """Store messages whose key is new; returns how many were stored."""
        d = self.dialect
        batch = builtins.list(messages)
        if not batch:
            return 0
        # One statement for the whole fan-out (per few thousand messages without array parameters);
        # rows are inserted in the caller's order, so ids follow it.
        if d.arrays:
            rows = await self.db.all(
                "INSERT INTO outbox (key, notifier, recipient, template, context, status, attempts,"
                " next_attempt_at, created_at)"
                " SELECT key, notifier, recipient, template, context::jsonb, 'pending', 0, next_attempt_at, created_at"
                " FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[],"
                " ?::timestamptz[]) WITH ORDINALITY"
                " AS m (key, notifier, recipient, template, context, next_attempt_at, created_at, n)"
                " ORDER BY n ON CONFLICT (key) DO NOTHING RETURNING id",
                ([m.key for m in batch], [m.notifier for m in batch], [m.recipient for m in batch],
                 [m.template for m in batch], [json_text(m.context) for m in batch],
                 [d.time(m.next_attempt_at or m.created_at) for m in batch], [d.time(m.created_at) for m in batch]))
            return len(rows)
        stored = 0
        for start in range(0, len(batch), _ROWS_PER_INSERT):
            chunk = batch[start:start + _ROWS_PER_INSERT]
            values = ", ".join(["(?, ?, ?, ?, ?, 'pending', 0, ?, ?)"] * len(chunk))
            stored += len(await self.db.all(
                "INSERT INTO outbox (key, notifier, recipient, template, context, status, attempts,"
                f" next_attempt_at, created_at) VALUES {values} ON CONFLICT (key) DO NOTHING RETURNING id",
                [v for m in chunk for v in (m.key, m.notifier, m.recipient, m.template, d.json(m.context),
                                            d.time(m.next_attempt_at or m.created_at), d.time(m.created_at))]))
        return stored

    def _lane(self, notifiers: Sequence[str] | None, other_than: Sequence[str]) -> tuple[str, builtins.list[Any]]:
        """The SQL condition (and its parameters) for messages of `notifiers` (None: any), except `other_than`."""
        sql, params = "", builtins.list[Any]()
        if notifiers is not None:
            of, more = self.dialect.any_of("notifier", notifiers, "text")
            sql, params = f"{sql} AND {of}", params + more
        if other_than:
            not_of, more = self.dialect.none_of("notifier", other_than, "text")
            sql, params = f"{sql} AND {not_of}", params + more
        return sql, params

    async def claim(self, now: datetime, limit: int, lease_s: float, *, notifiers: Sequence[str] | None = None,
                    other_than: Sequence[str] = ()) -> builtins.list[OutboxMessage]:
        """Take due messages (pending and due, or sending with an expired lease) for `lease_s` seconds."""
        d = self.dialect
        lane, lane_params = self._lane(notifiers, other_than)
        # SKIP LOCKED (PostgreSQL): rows another replica is claiming right now are left to it, not waited for.
        rows = await self.db.all(
            "WITH due AS MATERIALIZED (SELECT id FROM outbox"
            f" WHERE ((status = 'pending' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until <= ?)){lane}"
            f" ORDER BY {URGENT_FIRST}, next_attempt_at, id LIMIT ?{d.skip_locked})"
            " UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = ?"
            " WHERE id IN (SELECT id FROM due) RETURNING *",
            (d.time(now), d.time(now), *lane_params, limit, d.time(now + timedelta(seconds=lease_s))))
        return sorted((self._message(r) for r in rows), key=lambda m: m.id or 0)

    async def release(self, message_id: int, attempts: int, at: datetime) -> None:
        """Hand a claimed message back, due at `at`, its attempt not counted (a shutdown is not a failure).

        `attempts`: as claimed; a message claimed again since (its lease ran out) is not touched.
        """
        await self.db.execute(
            f"UPDATE outbox SET status = 'pending', attempts = {self.dialect.greatest}(attempts - 1, 0),"
            " next_attempt_at = ?, lease_until = NULL, last_error = 'interrupted by shutdown'"
            " WHERE id = ? AND status = 'sending' AND attempts = ?", (self.dialect.time(at), message_id, attempts))

    async def mark_sent(self, message_id: int, at: datetime) -> None:
        """Record a delivery."""
        await self.db.execute("UPDATE outbox SET status = 'sent', sent_at = ?, lease_until = NULL, last_error = ''"
                              " WHERE id = ?", (self.dialect.time(at), message_id))

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None:
        """Put a message back to pending, due at `next_attempt_at`."""
        await self.db.execute("UPDATE outbox SET status = 'pending', next_attempt_at = ?, lease_until = NULL,"
                              " last_error = ? WHERE id = ?",
                              (self.dialect.time(next_attempt_at), error[:ERROR_LIMIT], message_id))

    async def mark_dead(self, message_id: int, at: datetime, error: str) -> None:
        """Give up on a message for good."""
        await self.db.execute("UPDATE outbox SET status = 'dead', lease_until = NULL, last_error = ?, sent_at = NULL"
                              " WHERE id = ?", (error[:ERROR_LIMIT], message_id))

    async def next_due(self, *, notifiers: Sequence[str] | None = None,
                       other_than: Sequence[str] = ()) -> datetime | None:
        """When the earliest pending message is due (or a lease expires), or None when nothing waits."""
        lane, lane_params = self._lane(notifiers, other_than)
        row = await self.db.one(
            "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE lease_until END) AS due"
            f" FROM outbox WHERE status IN ('pending', 'sending'){lane}", lane_params)
        return None if row is None else self.dialect.read_time(row["due"])

    async def counts(self) -> dict[str, int]:
        """Number of messages per status, every status present."""
        rows = await self.db.all("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        out = {s.value: 0 for s in OutboxStatus}
        out.update({r["status"]: r["n"] for r in rows})
        return out

    async def list(self, limit: int = 100) -> builtins.list[OutboxMessage]:
        """Newest messages first (for the console and tests)."""
        return [self._message(r) for r in await self.db.all("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,))]

    def _message(self, r: Row) -> OutboxMessage:
        d = self.dialect
        return OutboxMessage(
            id=r["id"], key=r["key"], notifier=r["notifier"], recipient=r["recipient"], template=r["template"],
            context=d.read_json(r["context"]), status=OutboxStatus(r["status"]), attempts=r["attempts"],
            next_attempt_at=d.read_time(r["next_attempt_at"]), last_error=r["last_error"],
            created_at=d.read_instant(r["created_at"]), sent_at=d.read_time(r["sent_at"]))
