"""Timers: escalations, reminders and transitions as rows, so a restart resumes them exactly once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from statusd.core.model import Timer
from statusd.store.session import Repo, Row


class SqlTimers(Repo):
    """Timers on one session; `take` changes the row only while it is pending, so a timer fires once."""

    async def schedule(self, timer: Timer) -> Timer:
        """Store a pending timer; returns it with its id."""
        d = self.dialect
        row = await self.db.one(
            "INSERT INTO timers (kind, incident_id, due_at, payload, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
            (timer.kind, timer.incident_id, d.time(timer.due_at), d.json(timer.payload),
             d.time(timer.created_at or timer.due_at)))
        assert row is not None
        return self._timer(row)

    async def cancel(self, incident_id: int, kinds: Iterable[str], at: datetime) -> int:
        """Cancel the incident's pending timers of these kinds; returns how many."""
        of_kind, params = self.dialect.any_of("kind", list(kinds), "text")
        return await self.db.execute(
            f"UPDATE timers SET cancelled_at = ? WHERE incident_id = ? AND {of_kind}"
            " AND fired_at IS NULL AND cancelled_at IS NULL", (self.dialect.time(at), incident_id, *params))

    async def take(self, timer_id: int, at: datetime) -> Timer | None:
        """Mark a pending timer fired and return it; None when it already fired or was cancelled."""
        row = await self.db.one("UPDATE timers SET fired_at = ? WHERE id = ? AND fired_at IS NULL"
                                " AND cancelled_at IS NULL RETURNING *", (self.dialect.time(at), timer_id))
        return self._timer(row) if row else None

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        """Pending timers due at `now`, earliest first."""
        rows = await self.db.all("SELECT * FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= ?"
                                 " ORDER BY due_at, id LIMIT ?", (self.dialect.time(now), limit))
        return [self._timer(r) for r in rows]

    async def next_due(self) -> datetime | None:
        """When the earliest pending timer is due."""
        row = await self.db.one("SELECT MIN(due_at) AS due FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL")
        return None if row is None else self.dialect.read_time(row["due"])

    async def pending(self, incident_id: int) -> list[Timer]:
        """The incident's pending timers, earliest first."""
        rows = await self.db.all("SELECT * FROM timers WHERE incident_id = ? AND fired_at IS NULL"
                                 " AND cancelled_at IS NULL ORDER BY due_at, id", (incident_id,))
        return [self._timer(r) for r in rows]

    def _timer(self, r: Row) -> Timer:
        d = self.dialect
        return Timer(id=r["id"], kind=r["kind"], incident_id=r["incident_id"], due_at=d.read_instant(r["due_at"]),
                     payload=d.read_json(r["payload"]), created_at=d.read_time(r["created_at"]),
                     fired_at=d.read_time(r["fired_at"]), cancelled_at=d.read_time(r["cancelled_at"]))
