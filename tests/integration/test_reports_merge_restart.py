"""A surge whose incident was merged into another is handled: a restart links it there and opens nothing."""

from __future__ import annotations

import logging

import pytest

from statusd.app import RUNTIME, build_app
from statusd.core.model import ComponentStatus, Signal
from tests.support.reports import SUPPORT, auth, config, report

SURGE_KEY = "reports:component:payments"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    return await aiohttp_client(build_app(config(tmp_path), run_probes=False, run_worker=False))


async def surge_merged_into_a_probe_incident(client) -> tuple[int, int]:
    """Five clients' reports open a surge incident, which people then merge into a probe's incident."""
    runtime = client.app[RUNTIME]
    probe_incident = await runtime.coordinator.handle(Signal(
        source="probe", dedup_key="probe:web-http", components=("web",), severity=ComponentStatus.MAJOR_OUTAGE,
        summary="web: HTTP check failing", at=runtime.clock.now()))
    assert probe_incident is not None and probe_incident.id is not None
    for i in range(5):
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
        assert r.status == 202
    surge_incident = (await r.json())["report"]["incident_id"]
    assert surge_incident not in (None, probe_incident.id)
    r = await client.post(f"/api/v1/incidents/{surge_incident}/merge", headers=auth(SUPPORT),
                          json={"into": probe_incident.id})
    assert r.status == 200, await r.text()
    return surge_incident, probe_incident.id


async def test_a_restart_after_a_merge_links_the_surge_to_the_incident_it_was_merged_into(client, caplog) -> None:
    runtime = client.app[RUNTIME]
    merged, surviving = await surge_merged_into_a_probe_incident(client)
    async with runtime.store.read() as rd:
        incidents_before = len(await rd.incidents.list_recent(runtime.clock.now().replace(year=2000), 1000))

    caplog.set_level(logging.INFO, logger="statusd")
    await runtime.intake.detector.restart()
    await runtime.intake.rebuild(24)

    assert not [r for r in caplog.records if "fired before the restart" in r.getMessage()]
    async with runtime.store.read() as rd:
        assert [i.id for i in await rd.incidents.list_open()] == [surviving]
        assert len(await rd.incidents.list_recent(runtime.clock.now().replace(year=2000), 1000)) == incidents_before
        assert len(await rd.reports.for_incident(surviving)) == 5
        assert await rd.reports.for_incident(merged) == []
        timeline = (await rd.incidents.entries([surviving]))[surviving]
    assert [e.body for e in timeline if e.body.startswith("Joined")] == []  # the surge did not join it anew


async def test_a_report_after_the_restart_joins_the_incident_the_surge_was_merged_into(client) -> None:
    runtime = client.app[RUNTIME]
    _, surviving = await surge_merged_into_a_probe_incident(client)
    await runtime.intake.detector.restart()
    await runtime.intake.rebuild(24)

    r = await client.post("/api/v1/reports", headers=auth(), json=report(9, tags={"component": "payments"}))
    assert r.status == 202
    assert (await r.json())["report"]["incident_id"] == surviving
    async with runtime.store.read() as rd:
        assert [i.id for i in await rd.incidents.list_open()] == [surviving]
        assert len(await rd.reports.for_incident(surviving)) == 6


async def test_a_restart_after_the_merged_into_incident_was_resolved_opens_nothing(client, caplog) -> None:
    runtime = client.app[RUNTIME]
    _, surviving = await surge_merged_into_a_probe_incident(client)
    r = await client.post(f"/api/v1/incidents/{surviving}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    assert r.status == 200

    caplog.set_level(logging.INFO, logger="statusd")
    await runtime.intake.detector.restart()
    await runtime.intake.rebuild(24)

    assert not [r for r in caplog.records if "fired before the restart" in r.getMessage()]
    async with runtime.store.read() as rd:
        assert await rd.incidents.list_open() == []


async def test_a_report_of_the_surge_after_the_merge_is_linked_to_the_incident_it_was_merged_into(client) -> None:
    runtime = client.app[RUNTIME]
    _, surviving = await surge_merged_into_a_probe_incident(client)

    r = await client.post("/api/v1/reports", headers=auth(), json=report(9, tags={"component": "payments"}))
    assert r.status == 202
    assert (await r.json())["report"]["incident_id"] == surviving
    async with runtime.store.read() as rd:
        assert [i.id for i in await rd.incidents.list_open()] == [surviving]
        assert len(await rd.reports.for_incident(surviving)) == 6
