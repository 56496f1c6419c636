"""Raw probe results, counted into the components' daily rollups as they are stored."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from statusd.core.model import ProbeResult
from statusd.store.session import Repo


def daily_checks(results: Iterable[ProbeResult]) -> dict[tuple[str, date], tuple[int, int, datetime]]:
    """(component, UTC day) → (checks, failures, latest result time) over results that have a component."""
    counts: dict[tuple[str, date], tuple[int, int, datetime]] = {}
    for r in results:
        if r.component is None:
            continue
        key = (r.component, r.at.astimezone(UTC).date())
        checks, failures, last = counts.get(key, (0, 0, r.at))
        counts[key] = (checks + 1, failures + (not r.ok), max(last, r.at))
    return counts


class SqlProbeResults(Repo):
    """Raw probe results on one session."""

    async def add(self, result: ProbeResult) -> None:
        """Store one result and count it in its component's daily rollup."""
        await self.add_many([result])

    async def add_many(self, results: Sequence[ProbeResult]) -> None:
        """Store many results and count them in their components' daily rollups, one statement each."""
        if not results:
            return
        d = self.dialect
        await self.db.many(
            "INSERT INTO probe_results (probe, component, at, ok, degraded, latency_s, error, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.probe, r.component, d.time(r.at), d.flag(r.ok), d.flag(r.degraded), r.latency_s, r.error,
              d.json(r.detail)) for r in results])
        counts = daily_checks(results)
        if counts:
            await self.db.many(
                "INSERT INTO component_daily AS d (component, day, checks, failures, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (component, day) DO UPDATE SET checks = d.checks + excluded.checks,"
                f" failures = d.failures + excluded.failures, updated_at = {d.greatest}(d.updated_at, excluded.updated_at)",
                [(component, d.day(day), checks, failures, d.time(last))
                 for (component, day), (checks, failures, last) in counts.items()])

    async def oldest(self) -> datetime | None:
        """When the oldest stored result was taken, or None."""
        row = await self.db.one("SELECT MIN(at) AS at FROM probe_results")
        return None if row is None else self.dialect.read_time(row["at"])

    async def recent(self, probe: str, limit: int = 20) -> list[ProbeResult]:
        """The newest results of one probe, newest first."""
        d = self.dialect
        rows = await self.db.all("SELECT * FROM probe_results WHERE probe = ? ORDER BY at DESC, id DESC LIMIT ?",
                                 (probe, limit))
        return [ProbeResult(probe=r["probe"], component=r["component"], at=d.read_instant(r["at"]), ok=bool(r["ok"]),
                            degraded=bool(r["degraded"]), latency_s=r["latency_s"], error=r["error"],
                            detail=d.read_json(r["detail"])) for r in rows]

    async def prune(self, before: datetime) -> int:
        """Delete raw results older than `before`; returns how many."""
        return await self.db.execute("DELETE FROM probe_results WHERE at < ?", (self.dialect.time(before),))
