"""End to end on loopback: a real target goes down and comes back; statusd does the rest.

The target is an aiohttp app, mail goes to a real aiosmtpd server, webhooks to a real
aiohttp receiver that checks signatures, and statusd runs whole — probes on APScheduler,
the outbox worker, the HTTP server — on the real clock with short intervals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import Config, parse_config
from tests.support.fakes import SmtpSink, Target, WebhookReceiver
from tests.support.polling import eventually

HOOK_SECRET = "e2e-webhook-secret-0123"
TOKEN = "e2e-support-token-0123456"


@pytest.fixture
async def peers() -> AsyncIterator[tuple[Target, SmtpSink, WebhookReceiver]]:
    target = await Target().start()
    smtp = SmtpSink().start()
    hooks = await WebhookReceiver(secret=HOOK_SECRET).start()
    yield target, smtp, hooks
    await hooks.close()
    smtp.stop()
    await target.close()


def e2e_config(tmp_path: Path, target: Target, smtp: SmtpSink, hooks: WebhookReceiver) -> Config:
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "page": {"title": "E2E status", "cache_s": 0.2},
        # The subscriber's webhook receiver is on loopback, which outsiders' targets may reach only when allowed.
        "notifications": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0, "allow_private_targets": ["127.0.0.0/8"]},
        "components": {"api": {"name": "Public API"}, "web": {"name": "Website"}},
        "probes": {"api-health": {"type": "http", "component": "api", "url": target.url, "interval_s": 0.3,
                                  "timeout_s": 0.3, "failure_threshold": 2, "success_threshold": 2}},
        "notifiers": {"mail": {"type": "email", "port": smtp.port, "from_addr": "status@example.com"},
                      "hooks": {"type": "webhook", "secret": HOOK_SECRET}},
        "people": {"ann": {"name": "Ann Duty", "contacts": {"mail": "ann@example.com",
                                                            "hooks": hooks.url("/ann")}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T08:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"support": {"name": "Support", "secret": TOKEN, "scopes": ["admin"]}},
    }, {})


async def test_outage_to_resolution(tmp_path, aiohttp_client, peers) -> None:
    target, smtp, hooks = peers
    client = await aiohttp_client(build_app(e2e_config(tmp_path, target, smtp, hooks)))
    store = client.app[RUNTIME].store
    r = await client.post("/api/v1/subscribers", headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"notifier": "hooks", "target": hooks.url("/subscriber"), "components": ["api"]})
    assert r.status == 201

    async def checks() -> int:
        async with store.read() as rd:
            return len(await rd.probe_results.recent("api-health", limit=100_000))

    async def probe_results() -> bool:
        return await checks() >= 2
    await eventually(probe_results, "healthy probe results")
    assert (await (await client.get("/api/v2/status.json")).json())["status"]["indicator"] == "none"

    target.healthy = False

    async def incident_open() -> bool:
        async with store.read() as rd:
            return len(await rd.incidents.list_open()) == 1
    await eventually(incident_open, "the incident to open")

    def alerts_mail() -> list:
        return [m for m in smtp.messages if m[2]["Subject"].startswith("[CRITICAL]")]

    def alert_hooks() -> list:
        return [h for h in hooks.hooks if h.path == "/ann" and h.json["event"] == "alert"]

    async def alerted() -> bool:
        return len(alerts_mail()) >= 1 and len(alert_hooks()) >= 1
    await eventually(alerted, "the duty engineer's e-mail and webhook")
    checks_when_alerted = await checks()

    async def settled() -> bool:
        # A second incident or a repeated alert would come from one of these checks and, once the
        # outbox is empty, would have reached the peers: past this barrier, "only one" is a fact.
        async with store.read() as rd:
            counts = await rd.outbox.counts()
        return await checks() >= checks_when_alerted + 5 and counts["pending"] == counts["sending"] == 0
    await eventually(settled, "five more failing checks and every message delivered")
    async with store.read() as rd:
        [incident] = await rd.incidents.list_open()
    assert incident.assignee == "ann"
    assert len(alerts_mail()) == 1 and len(alert_hooks()) == 1
    _, rcpts, mail = alerts_mail()[0]
    assert rcpts == ["ann@example.com"] and "Ann Duty" in mail.get_payload()[0].get_payload(decode=True).decode()
    assert alert_hooks()[0].json["incident"]["id"] == incident.id
    assert hooks.rejected == 0  # every signature verified

    summary = await (await client.get("/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == "critical"
    assert [c["status"] for c in summary["components"] if c["id"] == "api"] == ["major_outage"]
    [public] = summary["incidents"]
    assert public["id"] == str(incident.id) and public["status"] == "investigating"
    page = await (await client.get("/")).text()
    assert "Public API" in page and incident.title in page and "Major outage" in page

    subscriber_updates = [h for h in hooks.hooks if h.path == "/subscriber"]
    assert len(subscriber_updates) == 1 and subscriber_updates[0].json["update"]["status"] == "investigating"

    target.healthy = True

    async def resolved() -> bool:
        async with store.read() as rd:
            return await rd.incidents.list_open() == []
    await eventually(resolved, "the incident to resolve")

    async def resolution_sent() -> bool:
        return any(h.path == "/ann" and h.json["event"] == "update" for h in hooks.hooks) and any(
            h.path == "/subscriber" and h.json["update"]["status"] == "resolved" for h in hooks.hooks)
    await eventually(resolution_sent, "the resolution to the engineer and the subscriber")
    await asyncio.sleep(0.4)  # past the page cache
    summary = await (await client.get("/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == "none" and summary["incidents"] == []
    history = await (await client.get("/api/v2/incidents.json")).json()
    assert history["incidents"][0]["status"] == "resolved"
    page = await (await client.get(f"/incidents/{incident.id}")).text()
    assert "resolved" in page.lower()
    async with store.read() as rd:
        assert len(await rd.incidents.list_recent(incident.opened_at)) == 1
        counts = await rd.outbox.counts()
    assert counts["dead"] == 0 and counts["pending"] == 0
    assert len(alerts_mail()) == 1 and len(alert_hooks()) == 1
