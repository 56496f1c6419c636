"""What one /metrics scrape costs the event loop with many open incidents.

Fills a SQLite store in a temp dir with `--incidents` open incidents (mixed impacts), 20 components
and an outbox of a few thousand rows, then times `--scrapes` scrapes two ways on the loop's own
thread CPU clock (`time.thread_time()`: the store's I/O thread does not count, what blocks other
requests does):

- *recount*: the gauges recomputed from the store on every scrape (what statusd did before the
  gauges were kept up to date);
- *scrape*: what `/metrics` does now — the gauges kept in memory, refreshed from the store at most
  every `Metrics.reload_interval_s` after a change, the overdue count looked up in a sorted list.

    python bench/metrics_scrape.py [--incidents 1000] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from statusd.core.clock import FakeClock
from statusd.core.model import Component, Impact, IncidentStatus, NewIncident, OutboxMessage
from statusd.metrics import Metrics
from statusd.store.sqlite import SqliteStore

IMPACTS = (Impact.MINOR, Impact.MAJOR, Impact.CRITICAL, Impact.NONE)
REMINDER_S = {"minor": 3600.0, "major": 1800.0, "critical": 900.0}


async def fill(store: SqliteStore, incidents: int, at: datetime) -> None:
    """`incidents` open incidents over 20 components, and three outbox rows per incident."""
    async with store.transaction() as tx:
        await tx.components.sync([Component(id=f"c{i}", name=f"Component {i}") for i in range(20)], at)
        for n in range(incidents):
            await tx.incidents.create(NewIncident(title=f"incident {n}", status=IncidentStatus.INVESTIGATING,
                                                  impact=IMPACTS[n % len(IMPACTS)], components=(f"c{n % 20}",),
                                                  opened_at=at - timedelta(minutes=n % 120)))
        await tx.outbox.enqueue(OutboxMessage(key=f"k{n}-{r}", notifier="mail", recipient="ops@example.com",
                                              template="alert", context={}, created_at=at)
                                for n in range(incidents) for r in range(3))


async def per_scrape_ms(scrapes: int, scrape: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Median and 95th percentile of the loop thread's CPU time per scrape, in ms."""
    costs = []
    for _ in range(scrapes):
        started = time.thread_time()
        await scrape()
        costs.append((time.thread_time() - started) * 1000)
    costs.sort()
    return statistics.median(costs), costs[int(len(costs) * 0.95) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    clock = FakeClock(datetime(2026, 12, 8, 12, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "bench.db")
        await store.open()
        try:
            await fill(store, args.incidents, clock.now())
            metrics = Metrics(CollectorRegistry(), clock=clock, reminder_s=REMINDER_S)
            await metrics.load(store)

            async def recount() -> None:
                await metrics.load(store)
                metrics.exposition()

            async def scrape() -> None:
                await metrics.scrape(store)

            print(f"{args.incidents} open incidents, {args.incidents * 3} outbox rows, {args.scrapes} scrapes each")
            for name, run in (("recount (before)", recount), ("scrape (now)", scrape)):
                median, p95 = await per_scrape_ms(args.scrapes, run)
                print(f"{name:18} event-loop CPU per scrape: median {median:7.3f} ms, p95 {p95:7.3f} ms")
            # Reloads after changes are bounded in rate, whatever the scrape rate: one per interval.
            print(f"after a change: at most one reload per {metrics.reload_interval_s:g} s "
                  "(the recount's cost, once), every other scrape as above")
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
