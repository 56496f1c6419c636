"""The gauges that mirror the store follow changes without recounting the store on every scrape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from statusd.core.clock import FakeClock
from statusd.core.model import Component, ComponentStatus, Impact, Signal
from statusd.incidents.coordinator import Coordinator, PageInfo, Policy
from statusd.metrics import Metrics
from statusd.store.sqlite import SqliteStore

REMINDER_S = {"minor": 3600.0, "major": 1800.0, "critical": 900.0}
MIRRORED = ("statusd_incidents_open", "statusd_incidents_update_overdue", "statusd_component_status",
            "statusd_outbox_messages")


class CountingStore:
    """The real store, counting the read transactions opened on it."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.reads = 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        self.reads += 1
        async with self.store.read() as r:
            yield r

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def mirrored(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.registry.collect() if family.name in MIRRORED for s in family.samples}


async def from_scratch(store: SqliteStore, clock: FakeClock) -> Metrics:
    fresh = Metrics(CollectorRegistry(), clock=clock, reminder_s=REMINDER_S)
    await fresh.load(store)  # what a restart does
    await fresh.scrape(store)
    return fresh


@pytest.fixture
async def wired(sqlite_store: SqliteStore, clock: FakeClock) -> tuple[Coordinator, Metrics]:
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "Public API", position=0),
                                  Component("web", "Website", position=1)], clock.now())
    metrics = Metrics(CollectorRegistry(), clock=clock, reminder_s=REMINDER_S)
    await metrics.load(sqlite_store)
    coordinator = Coordinator(sqlite_store, clock, people={}, schedules={}, escalation_policies={},
                              policy=Policy(), page=PageInfo("Example status", "http://status.example.com"),
                              on_change=metrics.stale, observer=metrics)
    return coordinator, metrics


async def test_gauges_match_a_recount_after_a_sequence_of_changes(wired, sqlite_store, clock) -> None:
    coordinator, metrics = wired
    probe = await coordinator.handle(Signal(source="probe", dedup_key="probe:api", components=("api",),
                                            severity=ComponentStatus.MAJOR_OUTAGE, summary="api is failing",
                                            at=clock.now(), firing=True, evidence={}))
    assert probe is not None
    await metrics.scrape(sqlite_store)
    await clock.advance(60)
    manual = await coordinator.open_incident(title="Slow pages", body="Looking into it.", author="Ann",
                                             components=("web",), component_status=ComponentStatus.DEGRADED_PERFORMANCE)
    await coordinator.open_incident(title="Emails late", body="Looking into it.", author="Ann")
    await clock.advance(600)
    await coordinator.post_update(manual.id, body="Worse than thought.", author="Ann", impact=Impact.MAJOR,
                                  component_status=ComponentStatus.PARTIAL_OUTAGE)
    await coordinator.resolve(probe.id, body="Fixed.", author="Ann")
    await coordinator.set_component_status("api", ComponentStatus.UNDER_MAINTENANCE)
    await clock.advance(metrics.reload_interval_s)
    await metrics.scrape(sqlite_store)
    assert mirrored(metrics) == mirrored(await from_scratch(sqlite_store, clock))
    assert mirrored(metrics)[("statusd_incidents_open", (("impact", "major"),))] == 1

    # Time alone makes updates overdue: no change, no reload, still the recount's answer.
    await clock.advance(1801)
    await metrics.scrape(sqlite_store)
    expected = mirrored(await from_scratch(sqlite_store, clock))
    assert expected[("statusd_incidents_update_overdue", ())] == 1  # the major one, 30 min without an update
    assert mirrored(metrics) == expected


async def test_scrapes_without_changes_do_not_read_the_store(wired, sqlite_store, clock) -> None:
    coordinator, metrics = wired
    counting = CountingStore(sqlite_store)
    for _ in range(50):
        await metrics.scrape(counting)
        await clock.advance(1)
    assert counting.reads == 0  # loaded at start; nothing changed since
    await coordinator.open_incident(title="Slow pages", body="Looking into it.", author="Ann", components=("web",))
    for _ in range(50):
        await metrics.scrape(counting)
        await clock.advance(0.5)
    assert counting.reads == 1  # one change, one reload, however many scrapes follow
    assert mirrored(metrics) == mirrored(await from_scratch(sqlite_store, clock))


async def test_reloads_after_changes_are_bounded_in_rate(wired, sqlite_store, clock) -> None:
    coordinator, metrics = wired
    counting = CountingStore(sqlite_store)
    await metrics.scrape(counting)
    for n in range(40):  # a change before every scrape, 20 s in all
        await coordinator.open_incident(title=f"incident {n}", body="Looking into it.", author="Ann")
        await metrics.scrape(counting)
        await clock.advance(0.5)
    assert counting.reads == 4  # at 0, 5, 10 and 15 s: one per reload_interval_s, not one per scrape
