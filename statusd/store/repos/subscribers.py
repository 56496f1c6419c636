"""Subscribers of components (or of everything)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from statusd.core.model import Subscriber
from statusd.store.session import Repo, Row


class SqlSubscribers(Repo):
    """Subscribers on one session."""

    async def add(self, subscriber: Subscriber) -> Subscriber:
        """Store a subscriber; the same (notifier, target) again updates its components."""
        d = self.dialect
        row = await self.db.one(
            f"INSERT INTO subscribers (notifier, target, components, created_at) VALUES (?, ?, ?, COALESCE(?, {d.now}))"
            " ON CONFLICT (notifier, target) DO UPDATE SET components = excluded.components RETURNING *",
            (subscriber.notifier, subscriber.target, d.json(sorted(subscriber.components)),
             d.time(subscriber.created_at)))
        assert row is not None
        return self._subscriber(row)

    async def remove(self, subscriber_id: int) -> bool:
        """Delete a subscriber; returns whether it existed."""
        return await self.db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,)) > 0

    async def list(self) -> builtins.list[Subscriber]:
        """All subscribers in the order they first subscribed."""
        return [self._subscriber(r) for r in await self.db.all("SELECT * FROM subscribers ORDER BY id")]

    async def for_components(self, components: Iterable[str]) -> builtins.list[Subscriber]:
        """Subscribers to any of `components`, plus those subscribed to everything."""
        d = self.dialect
        overlaps, params = d.json_array_has_any("components", builtins.list(components))
        rows = await self.db.all(f"SELECT * FROM subscribers WHERE components = ? OR {overlaps} ORDER BY id",
                                 (d.json([]), *params))
        return [self._subscriber(r) for r in rows]

    def _subscriber(self, r: Row) -> Subscriber:
        return Subscriber(id=r["id"], notifier=r["notifier"], target=r["target"],
                          components=tuple(self.dialect.read_json(r["components"])),
                          created_at=self.dialect.read_time(r["created_at"]))
