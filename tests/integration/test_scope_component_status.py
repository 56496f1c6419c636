"""`component_status` in an update: a person sets any status, better or worse, and the update records the change."""

from __future__ import annotations

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config

SUPPORT = "support-token-0123456789ab"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    config = parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "page": {"cache_s": 0},
        "components": {"api": {"name": "API"}, "web": {"name": "Website"}},
        "tokens": {"support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})
    return await aiohttp_client(build_app(config, run_probes=False, run_worker=False))


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {SUPPORT}"}


async def status_of(client, component_id: str) -> str:
    async with client.app[RUNTIME].store.read() as r:
        return (await r.components.get(component_id)).status.value


async def update(client, iid: int, **body) -> dict:
    r = await client.post(f"/api/v1/incidents/{iid}/updates", headers=auth(), json={"body": "Update.", **body})
    assert r.status == 201, await r.text()
    return await r.json()


async def test_an_update_sets_a_component_better_and_worse(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(), json={
        "title": "API down", "body": "Investigating.", "components": ["api"], "component_status": "major_outage"})
    iid = (await r.json())["incident"]["id"]
    assert await status_of(client, "api") == "major_outage"

    better = await update(client, iid, status="identified", component_status="degraded_performance")
    assert better["components"] == [{"id": "api", "status": "degraded_performance"}]
    assert await status_of(client, "api") == "degraded_performance"
    worse = await update(client, iid, component_status="partial_outage")
    assert worse["components"] == [{"id": "api", "status": "partial_outage"}]
    await update(client, iid, status="monitoring", component_status="operational")
    assert await status_of(client, "api") == "operational"
    assert await status_of(client, "web") == "operational"  # not the incident's: untouched

    timeline = (await (await client.get(f"/api/v1/incidents/{iid}", headers=auth())).json())["incident"]["timeline"]
    changes = [e["data"].get("components") for e in timeline if e["kind"] == "update"]
    assert changes == [None,
                       {"api": {"from": "major_outage", "to": "degraded_performance"}},
                       {"api": {"from": "degraded_performance", "to": "partial_outage"}},
                       {"api": {"from": "partial_outage", "to": "operational"}}]


async def test_a_resolving_update_keeps_the_status_set_with_it(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(), json={
        "title": "Website slow", "body": "Investigating.", "components": ["web"],
        "component_status": "partial_outage"})
    iid = (await r.json())["incident"]["id"]
    await update(client, iid, status="resolved", component_status="degraded_performance")
    assert await status_of(client, "web") == "degraded_performance"


async def test_component_status_on_an_incident_without_components_names_the_field(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(), json={"title": "Odd", "body": "Investigating."})
    iid = (await r.json())["incident"]["id"]
    r = await client.post(f"/api/v1/incidents/{iid}/updates", headers=auth(),
                          json={"body": "Update.", "component_status": "operational"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "component_status"
