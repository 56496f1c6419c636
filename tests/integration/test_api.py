"""The write API: tokens and scopes, strict input with JSON errors naming the field, nothing half-written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config

SUPPORT = "support-token-0123456789"
READER = "reader-token-0123456789ab"
ADMIN = "admin-token-0123456789abc"


def config(tmp_path: Path, **page: Any):
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"max_body_bytes": 4096},
        "page": {"cache_s": 0},
        "components": {"api": {"name": "API"}, "web": {"name": "Website", "group": "Public"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}, "hooks": {"type": "webhook"}},
        "people": {"ann": {"name": "Ann", "contacts": {"mail": "ann@example.com"}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {
            "support": {"name": "Dana from Support", "secret": SUPPORT,
                        "scopes": ["incidents:write", "components:write", "subscribers:write"]},
            "reader": {"name": "Read only", "secret": READER, "scopes": ["incidents:read"]},
            "admin": {"name": "Admin", "secret": ADMIN, "scopes": ["admin"]},
        },
    }, {})


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    app = build_app(config(tmp_path), run_probes=False, run_worker=False)
    return await aiohttp_client(app)


def auth(token: str = SUPPORT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(response) -> dict[str, Any]:
    assert response.content_type == "application/json"
    return (await response.json())["error"]


async def count_rows(client) -> tuple[int, int]:
    store = client.app[RUNTIME].store
    async with store.read() as r:
        return len(await r.incidents.list_open()), len(await r.outbox.list())


async def test_incident_lifecycle_through_the_api(client) -> None:
    created = await client.post("/api/v1/incidents", headers=auth(), json={
        "title": "Checkout errors", "body": "Some card payments fail.", "components": ["web"],
        "component_status": "partial_outage"})
    assert created.status == 201, await created.text()
    incident = (await created.json())["incident"]
    assert incident["impact"] == "major" and incident["assignee"] == "ann"
    iid = incident["id"]

    r = await client.post(f"/api/v1/incidents/{iid}/updates", headers=auth(),
                          json={"body": "Cause identified.", "status": "identified"})
    assert r.status == 201
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(), json={"person": "ann"})
    acked = (await r.json())["incident"]
    assert acked["acknowledged_by"] == "Dana from Support" and acked["commander"] == "ann"
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(), json={"person": "ann"})
    assert r.status == 409
    summary = await (await client.get("/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == "major"
    [public] = summary["incidents"]
    assert [u["body"] for u in public["incident_updates"]] == ["Cause identified.", "Some card payments fail."]
    r = await client.post(f"/api/v1/incidents/{iid}/resolve", headers=auth(), json={"body": "Fixed."})
    assert (await r.json())["incident"]["status"] == "resolved"
    r = await client.post(f"/api/v1/incidents/{iid}/resolve", headers=auth(), json={})
    assert r.status == 409
    detail = await (await client.get(f"/api/v1/incidents/{iid}", headers=auth(READER))).json()
    kinds = [e["kind"] for e in detail["incident"]["timeline"]]
    assert kinds == ["assigned", "update", "update", "acknowledged", "update"]
    assert {e["author"] for e in detail["incident"]["timeline"] if e["kind"] == "update"} == {"Dana from Support"}
    summary = await (await client.get("/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == "none" and summary["incidents"] == []


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param({}, 401, id="no-token"),
    pytest.param({"Authorization": "Bearer wrong-token-0123456789"}, 401, id="wrong-token"),
    pytest.param({"Authorization": f"Basic {SUPPORT}"}, 401, id="wrong-scheme"),
    pytest.param(auth(READER), 403, id="token-without-scope"),
])
async def test_auth(client, headers, status) -> None:
    r = await client.post("/api/v1/incidents", headers=headers, json={"title": "t", "body": "b"})
    assert r.status == status
    err = await error_of(r)
    assert err["message"]
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert SUPPORT not in await r.text()
    assert await count_rows(client) == (0, 0)


async def test_admin_scope_implies_every_scope(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(ADMIN), json={"title": "t", "body": "b"})
    assert r.status == 201
    r = await client.get("/api/v1/outbox", headers=auth(ADMIN))
    assert r.status == 200 and (await r.json())["counts"]["pending"] == 1  # Ann's alert
    assert (await client.get("/api/v1/outbox", headers=auth())).status == 403


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"body": "b"}, "title", id="missing-title"),
    pytest.param({"title": "  ", "body": "b"}, "title", id="blank-title"),
    pytest.param({"title": "x" * 201, "body": "b"}, "title", id="long-title"),
    pytest.param({"title": 5, "body": "b"}, "title", id="title-not-string"),
    pytest.param({"title": "t"}, "body", id="missing-body"),
    pytest.param({"title": "t", "body": "b", "severity": "high"}, "severity", id="unknown-field"),
    pytest.param({"title": "t", "body": "b", "impact": "apocalyptic"}, "impact", id="bad-impact"),
    pytest.param({"title": "t", "body": "b", "status": "resolved"}, "status", id="opened-resolved"),
    pytest.param({"title": "t", "body": "b", "components": "api"}, "components", id="components-not-list"),
    pytest.param({"title": "t", "body": "b", "components": ["api", "db"]}, "components[1]", id="unknown-component"),
    pytest.param({"title": "t", "body": "b", "notify": "yes"}, "notify", id="notify-not-bool"),
    pytest.param({"title": "t", "body": "b", "component_status": "on_fire"}, "component_status", id="bad-status"),
])
async def test_bad_input_names_the_field_and_writes_nothing(client, body, field) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(), json=body)
    assert r.status == 400, await r.text()
    assert (await error_of(r))["field"] == field
    assert await count_rows(client) == (0, 0)


@pytest.mark.parametrize(("raw", "content_type"), [
    pytest.param(b"{not json", "application/json", id="broken-json"),
    pytest.param(b"[1, 2]", "application/json", id="not-an-object"),
    pytest.param(b'{"title": "\xff\xfe"}', "application/json", id="invalid-utf8"),
])
async def test_malformed_bodies(client, raw, content_type) -> None:
    r = await client.post("/api/v1/incidents", headers={**auth(), "Content-Type": content_type}, data=raw)
    assert r.status == 400
    assert (await error_of(r))["field"] == "body"


async def test_oversized_body_is_413_json(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(), json={"title": "t", "body": "x" * 10_000})
    assert r.status == 413
    error = await error_of(r)
    assert error["field"] == "body" and "max_body_bytes" in error["message"]
    assert await count_rows(client) == (0, 0)


async def test_unknown_incident_and_bad_ids(client) -> None:
    r = await client.post("/api/v1/incidents/999/updates", headers=auth(), json={"body": "x"})
    assert r.status == 404 and "999" in (await error_of(r))["message"]
    r = await client.post("/api/v1/incidents/abc/updates", headers=auth(), json={"body": "x"})
    assert r.status == 400 and (await error_of(r))["field"] == "id"


async def test_component_status(client) -> None:
    r = await client.put("/api/v1/components/api", headers=auth(), json={"status": "degraded_performance"})
    assert r.status == 200 and (await r.json())["changed"] is True
    components = (await (await client.get("/api/v2/components.json")).json())["components"]
    assert {c["id"]: c["status"] for c in components if not c.get("group")}["api"] == "degraded_performance"
    r = await client.put("/api/v1/components/api", headers=auth(), json={"status": "broken"})
    assert r.status == 400 and (await error_of(r))["field"] == "status"
    r = await client.put("/api/v1/components/nope", headers=auth(), json={"status": "operational"})
    assert r.status == 404


async def test_subscribers(client) -> None:
    r = await client.post("/api/v1/subscribers", headers=auth(),
                          json={"notifier": "mail", "target": "x@example.com", "components": ["api"]})
    assert r.status == 201
    sid = (await r.json())["subscriber"]["id"]
    for body, field in [({"notifier": "pager", "target": "1"}, "notifier"),
                        ({"notifier": "mail", "target": "not-an-address"}, "target"),
                        ({"notifier": "hooks", "target": "ftp://x"}, "target"),
                        ({"notifier": "mail", "target": "a@b.c", "components": ["db"]}, "components[0]"),
                        ({"notifier": "mail"}, "target")]:
        bad = await client.post("/api/v1/subscribers", headers=auth(), json=body)
        assert bad.status == 400 and (await error_of(bad))["field"] == field, body
    listed = await (await client.get("/api/v1/subscribers", headers=auth())).json()
    assert [s["target"] for s in listed["subscribers"]] == ["x@example.com"]
    assert (await client.delete(f"/api/v1/subscribers/{sid}", headers=auth())).status == 200
    assert (await client.delete(f"/api/v1/subscribers/{sid}", headers=auth())).status == 404


async def test_healthz_and_metrics(client) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    await client.post("/api/v1/incidents", headers=auth(), json={"title": "t", "body": "b", "impact": "major"})
    text = await (await client.get("/metrics")).text()
    assert 'statusd_incidents_open{impact="major"} 1.0' in text
    assert 'statusd_incidents_opened_total{impact="major",source="manual"} 1.0' in text
    assert "statusd_incident_time_to_first_public_update_seconds_count" in text
    assert 'statusd_outbox_messages{status="pending"} 1.0' in text


async def test_a_subscriber_address_smtp_would_refuse_at_every_delivery_is_refused_once(client) -> None:
    r = await client.post("/api/v1/subscribers", headers=auth(), json={"notifier": "mail", "target": "a@example.com\u0000"})
    assert r.status == 400 and (await error_of(r))["field"] == "target"



async def test_401_names_the_header_and_subscriber_components_are_kept_once(client) -> None:
    r = await client.post("/api/v1/subscribers", json={"notifier": "mail", "target": "a@example.com"})
    assert r.status == 401 and (await error_of(r))["field"] == "Authorization"
    r = await client.post("/api/v1/subscribers", headers=auth(),
                          json={"notifier": "mail", "target": "a@example.com", "components": ["api", "web", "api"]})
    assert r.status == 201, await r.text()
    assert (await r.json())["subscriber"]["components"] == ["api", "web"]


async def test_an_update_cannot_jump_to_postmortem(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(), json={"title": "API errors", "body": "Looking."})
    incident_id = (await r.json())["incident"]["id"]
    r = await client.post(f"/api/v1/incidents/{incident_id}/updates", headers=auth(),
                          json={"body": "Done.", "status": "postmortem"})
    assert r.status == 400 and (await error_of(r))["field"] == "status"
    r = await client.get(f"/api/v1/incidents/{incident_id}", headers=auth())
    assert (await r.json())["incident"]["status"] == "investigating"  # neither resolved nor half-updated
