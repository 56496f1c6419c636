"""Acknowledging through the API leaves the incident an owner: the token's person, or the `person` it names."""

from __future__ import annotations

import pytest

from statusd.app import build_app
from statusd.config import parse_config

SUPPORT = "support-token-0123456789ab"  # no person of its own
ANN = "ann-token-0123456789abcdef"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    config = parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "components": {"api": {"name": "API"}},
        "people": {"ann": {"name": "Ann"}, "bob": {"name": "Bob"}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]},
                   "ann": {"name": "Ann", "secret": ANN, "scopes": ["incidents:write"], "person": "ann"}},
    }, {})
    return await aiohttp_client(build_app(config, run_probes=False, run_worker=False))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_incident(client) -> int:
    r = await client.post("/api/v1/incidents", headers=auth(SUPPORT),
                          json={"title": "API errors", "body": "Investigating.", "components": ["api"]})
    return (await r.json())["incident"]["id"]


async def incident(client, iid: int) -> dict:
    return (await (await client.get(f"/api/v1/incidents/{iid}", headers=auth(SUPPORT))).json())["incident"]


@pytest.mark.parametrize("body", [
    pytest.param(None, id="no-body"),
    pytest.param({}, id="no-person"),
    pytest.param({"person": ""}, id="blank-person"),
    pytest.param({"person": "zed"}, id="unknown-person"),
    pytest.param({"person": 7}, id="not-a-string"),
])
async def test_a_token_without_a_person_must_name_one(client, body) -> None:
    iid = await open_incident(client)
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(SUPPORT), json=body)
    assert r.status == 400 and (await r.json())["error"]["field"] == "person"
    after = await incident(client, iid)
    assert after["acknowledged_at"] is None and after["commander"] is None  # escalation goes on


async def test_the_named_person_takes_ownership(client) -> None:
    iid = await open_incident(client)
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(SUPPORT), json={"person": "bob"})
    assert r.status == 200
    acked = (await r.json())["incident"]
    assert acked["commander"] == "bob" and acked["acknowledged_by"] == "Support"


async def test_a_token_with_a_person_acts_as_them_only(client) -> None:
    iid = await open_incident(client)
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(ANN), json={"person": "bob"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "person"
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(ANN))
    assert r.status == 200 and (await r.json())["incident"]["commander"] == "ann"
