"""The composed app's integration routes: heartbeat check-ins and alert intake, on the real clock."""

from __future__ import annotations

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config
from tests.support.polling import eventually

HEARTBEAT_TOKEN = "backup-job-heartbeat-token-1"
ALERTS_TOKEN = "alerts-token-0123456789"


def config(tmp_path):
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "page": {"cache_s": 0},
        "components": {"backups": {"name": "Backups"}, "api": {"name": "API"}},
        "probes": {"nightly": {"type": "heartbeat", "component": "backups", "token": HEARTBEAT_TOKEN,
                               "interval_s": 0.4, "timeout_s": 0.2, "grace_s": 0.4,
                               "failure_threshold": 1, "success_threshold": 1}},
        "alerts": {"token": ALERTS_TOKEN},
    }, {})


async def test_heartbeat_check_ins_keep_a_component_up_and_silence_opens_an_incident(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path)))
    store = client.app[RUNTIME].store
    unknown = await client.get("/api/v1/heartbeat/not-a-known-token-123")
    assert unknown.status == 404 and (await unknown.json())["error"]["field"] == "token"
    ok = await client.post(f"/api/v1/heartbeat/{HEARTBEAT_TOKEN}")
    assert ok.status == 200 and (await ok.json())["probe"] == "nightly"

    async def opened() -> bool:
        async with store.read() as r:
            return len(await r.incidents.list_open()) == 1
    await eventually(opened, "an incident after the job stopped checking in", timeout_s=10)
    async with store.read() as r:
        assert (await r.components.get("backups")).status.value == "major_outage"

    async def recovered() -> bool:
        await client.get(f"/api/v1/heartbeat/{HEARTBEAT_TOKEN}")
        async with store.read() as r:
            return await r.incidents.list_open() == []
    await eventually(recovered, "recovery once the job checks in again", timeout_s=10)


async def test_alertmanager_route_is_wired_and_authenticated(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path), run_probes=False))
    payload = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "statusd", "groupLabels": {},
               "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
               "alerts": [{"status": "firing", "labels": {"alertname": "ApiDown", "component": "api",
                                                          "severity": "critical"},
                           "annotations": {"summary": "API is down"}, "startsAt": "2026-03-02T09:00:00Z",
                           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": "abc123"}]}
    denied = await client.post("/api/v1/alerts/alertmanager", json=payload)
    assert denied.status == 401
    accepted = await client.post("/api/v1/alerts/alertmanager", json=payload,
                                 headers={"Authorization": f"Bearer {ALERTS_TOKEN}"})
    assert accepted.status == 200, await accepted.text()
    summary = await (await client.get("/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == "critical"
    assert [c["status"] for c in summary["components"] if c["id"] == "api"] == ["major_outage"]
