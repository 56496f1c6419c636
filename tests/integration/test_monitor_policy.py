"""A component combines its probes: any, all or quorum, into degraded, partial or major outage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from probes.base import ProbeSettings
from statusd.incidents.coordinator import Coordinator, PageInfo
from statusd.core.model import Component, ProbeResult
from statusd.monitor.scheduler import Monitor


@dataclass
class Scripted:
    """A probe plugin whose next outcome the test sets (the plugin itself is not under test here)."""

    name: str
    component: str | None
    ok: bool = True

    async def check(self, now: datetime) -> ProbeResult:
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=self.ok, latency_s=0.01,
                           error="" if self.ok else "HTTP 503")


async def monitor_for(store, clock, policy: str, n: int = 3) -> tuple[Monitor, dict[str, Scripted]]:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], clock.now())
    coordinator = Coordinator(store, clock, people={}, page=PageInfo("S", "http://s"))
    probes = {f"p{i}": Scripted(f"p{i}", "api") for i in range(n)}
    settings = {name: ProbeSettings(name=name, type="scripted", component="api", interval_s=10, timeout_s=5,
                                    failure_threshold=1, success_threshold=1) for name in probes}
    monitor = Monitor(store, coordinator, clock, probes, settings, flush_s=0, component_policy={"api": policy})
    return monitor, probes


async def component_state(store) -> tuple[str, int]:
    async with store.read() as r:
        return (await r.components.get("api")).status.value, len(await r.incidents.list_open())


@pytest.mark.parametrize(("policy", "failing", "expected"), [
    pytest.param("all", 1, ("degraded_performance", 1), id="all-one-of-three-is-degraded"),
    pytest.param("all", 3, ("major_outage", 1), id="all-three-is-major"),
    pytest.param("quorum", 1, ("partial_outage", 1), id="quorum-minority-is-partial"),
    pytest.param("quorum", 2, ("major_outage", 1), id="quorum-majority-is-major"),
    pytest.param("any", 1, ("major_outage", 1), id="any-one-is-its-severity"),
])
async def test_combined_status(sqlite_store, clock, policy, failing, expected) -> None:
    monitor, probes = await monitor_for(sqlite_store, clock, policy)
    for name in list(probes)[:failing]:
        probes[name].ok = False
        await monitor.run_once(name)
    assert await component_state(sqlite_store) == expected


async def test_combined_component_recovers_when_its_probes_do(sqlite_store, clock) -> None:
    monitor, probes = await monitor_for(sqlite_store, clock, "quorum")
    for name in ("p0", "p1"):
        probes[name].ok = False
        await monitor.run_once(name)
    assert await component_state(sqlite_store) == ("major_outage", 1)
    probes["p0"].ok = True
    await monitor.run_once("p0")  # one of three still failing: still an incident
    assert (await component_state(sqlite_store))[1] == 1
    probes["p1"].ok = True
    await monitor.run_once("p1")
    assert await component_state(sqlite_store) == ("operational", 0)
    async with sqlite_store.read() as r:
        [incident] = await r.incidents.list_recent(clock.now().replace(year=2020))
    assert incident.dedup_key == "component:api" and incident.status.value == "resolved"


async def test_restart_keeps_the_combined_state(sqlite_store, clock) -> None:
    monitor, probes = await monitor_for(sqlite_store, clock, "all")
    for name in probes:
        probes[name].ok = False
        await monitor.run_once(name)
    restarted, probes2 = await monitor_for(sqlite_store, clock, "all")
    await restarted.restore()
    for name in probes2:
        probes2[name].ok = False
        await restarted.run_once(name)  # still down after the restart: no second incident
    async with sqlite_store.read() as r:
        assert len(await r.incidents.list_recent(clock.now().replace(year=2020))) == 1
    for name in probes2:
        probes2[name].ok = True
        await restarted.run_once(name)
    assert await component_state(sqlite_store) == ("operational", 0)
