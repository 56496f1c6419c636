"""Components, their statuses and their daily uptime rollups."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from statusd.core.model import STATUS_SECONDS_FIELD, Component, ComponentStatus, DayUptime, uptime_window, utc_day_spans
from statusd.store.session import Repo, Row


class SqlComponents(Repo):
    """Components on one session."""

    async def sync(self, components: Sequence[Component], at: datetime) -> None:
        """Match config: insert new, update names/groups/order, delete absent; statuses and rollups are kept."""
        d = self.dialect
        if components:
            await self.db.many(
                "INSERT INTO components (id, name, description, grp, position, status, updated_at, status_since)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,"
                " grp = excluded.grp, position = excluded.position",
                [(c.id, c.name, c.description, c.group, c.position, c.status.value, d.time(at), d.time(at))
                 for c in components])
        absent, params = d.none_of("id", [c.id for c in components], "text")
        await self.db.execute(f"DELETE FROM components WHERE {absent}", params)

    async def list(self) -> builtins.list[Component]:
        """All components ordered by group position then position."""
        # A group sits where its first member sits; an ungrouped component is its own group.
        rows = await self.db.all("SELECT * FROM components ORDER BY CASE WHEN grp IS NULL THEN position"
                                 " ELSE MIN(position) OVER (PARTITION BY grp) END, position, id")
        return [self._component(r) for r in rows]

    async def get(self, component_id: str) -> Component | None:
        """One component, or None."""
        row = await self.db.one("SELECT * FROM components WHERE id = ?", (component_id,))
        return self._component(row) if row else None

    async def set_status(self, component_id: str, status: ComponentStatus, at: datetime) -> bool:
        """Set a status; returns whether it changed. A change accrues the closed interval into the daily rollups."""
        d = self.dialect
        # The row lock (SQLite: the writer's BEGIN IMMEDIATE) makes two changes of one component queue
        # here, so each interval is accrued once.
        row = await self.db.one(f"SELECT status, status_since FROM components WHERE id = ?{d.for_update}",
                                (component_id,))
        if row is None or row["status"] == status.value:
            return False
        at = at.astimezone(UTC)
        since = d.read_time(row["status_since"])
        # A change dated before the current interval began closes it empty rather than counting time twice.
        begins = at if since is None else max(since, at)
        await self.db.execute("UPDATE components SET status = ?, updated_at = ?, status_since = ? WHERE id = ?",
                              (status.value, d.time(at), d.time(begins), component_id))
        if since is not None:
            await self._accrue(component_id, ComponentStatus(row["status"]), since, at)
        return True

    async def _accrue(self, component_id: str, status: ComponentStatus, start: datetime, end: datetime) -> None:
        """Add the time from `start` to `end` spent in `status` to the daily rollups it covers."""
        d = self.dialect
        column = STATUS_SECONDS_FIELD[status]  # from a fixed mapping, never from input
        rows = [(component_id, d.day(day), seconds, d.time(end)) for day, seconds in utc_day_spans(start, end)]
        if rows:
            await self.db.many(
                f"INSERT INTO component_daily AS d (component, day, {column}, updated_at) VALUES (?, ?, ?, ?)"
                f" ON CONFLICT (component, day) DO UPDATE SET {column} = d.{column} + excluded.{column},"
                f" updated_at = {d.greatest}(d.updated_at, excluded.updated_at)", rows)

    async def uptime(self, component_ids: Iterable[str], days: int, now: datetime) -> dict[str, builtins.list[DayUptime]]:
        """Per component, one DayUptime per UTC day of the window ending with `now`'s day, open interval included."""
        d = self.dialect
        ids = builtins.list(dict.fromkeys(component_ids))
        if not ids:
            return {}
        now = now.astimezone(UTC)
        today = now.date()
        first = today - timedelta(days=max(0, days) - 1)
        recorded: dict[str, builtins.list[DayUptime]] = {cid: [] for cid in ids}
        wanted, params = d.any_of("component", ids, "text")
        for r in await self.db.all(f"SELECT * FROM component_daily WHERE {wanted} AND day >= ? AND day <= ?",
                                   (*params, d.day(first), d.day(today))):
            recorded[r["component"]].append(DayUptime(
                day=d.read_day(r["day"]), major_s=r["major_s"], partial_s=r["partial_s"], degraded_s=r["degraded_s"],
                maintenance_s=r["maintenance_s"], operational_s=r["operational_s"], checks=r["checks"],
                failures=r["failures"]))
        wanted, params = d.any_of("id", ids, "text")
        current = {r["id"]: r for r in await self.db.all(
            f"SELECT id, status, status_since FROM components WHERE {wanted}", params)}
        out = {}
        for cid in ids:
            row = current.get(cid)
            status = ComponentStatus(row["status"]) if row else ComponentStatus.OPERATIONAL
            out[cid] = uptime_window(days, now, recorded[cid], status, d.read_time(row["status_since"]) if row else None)
        return out

    def _component(self, r: Row) -> Component:
        return Component(id=r["id"], name=r["name"], description=r["description"], group=r["grp"],
                         position=r["position"], status=ComponentStatus(r["status"]),
                         updated_at=self.dialect.read_time(r["updated_at"]))
