"""The whole server: outsiders' webhook targets are refused by address, and a subscriber hears the public view only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import Config, parse_config
from tests.support.fakes import WebhookReceiver
from tests.support.polling import eventually

TOKEN = "ssrf-token-0123456789abcdef"


def ssrf_config(tmp_path: Path, person_hook: str = "https://ops.example.com/hook", **notifications: Any) -> Config:
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "page": {"cache_s": 0},
        "notifications": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0, **notifications},
        "components": {"api": {"name": "Public API"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}, "hooks": {"type": "webhook"}},
        # An operator's own target on loopback is trusted as configured: no allow-list needed for it.
        "people": {"ann": {"name": "Ann Duty", "contacts": {"hooks": person_hook}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"admin": {"name": "Admin", "secret": TOKEN, "scopes": ["admin"], "person": "ann"}},
    }, {})


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    rec = await WebhookReceiver().start()
    try:
        yield rec
    finally:
        await rec.close()


REFUSED_TARGETS = [
    "http://127.0.0.1:8080/hook", "http://127.1/hook", "http://0x7f.1/hook", "http://2130706433/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://[::1]/hook", "http://localhost:9000/hook",
    "http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.5/hook", "http://192.168.1.1/hook", "http://172.16.0.1/hook", "http://100.64.0.1/hook",
    "http://224.0.0.1/hook", "http://0.0.0.0:8000/hook", "http://[fe80::1]/hook", "http://[fd00::1]/hook",
    "https://user:pw@127.0.0.1/hook",
]


async def test_subscriber_and_report_targets_on_non_public_hosts_are_refused_naming_the_field(
        tmp_path, aiohttp_client) -> None:
    client = await aiohttp_client(build_app(ssrf_config(tmp_path), run_probes=False, run_worker=False))
    for target in REFUSED_TARGETS:
        r = await client.post("/api/v1/subscribers", headers=auth(),
                              json={"notifier": "hooks", "target": target, "components": ["api"]})
        assert r.status == 400, target
        assert (await r.json())["error"]["field"] == "target", target
        r = await client.post("/api/v1/reports", headers=auth(), json={
            "client_id": "c1", "text": "the API is down", "contact": {"notifier": "hooks", "address": target}})
        assert r.status == 400, target
        assert (await r.json())["error"]["field"] == "contact.address", target
    async with client.app[RUNTIME].store.read() as rd:
        assert await rd.subscribers.list() == []
    r = await client.post("/api/v1/subscribers", headers=auth(),
                          json={"notifier": "hooks", "target": "https://hooks.example.com/statusd"})
    assert r.status == 201, await r.text()


async def test_the_allow_list_admits_loopback_and_the_subscriber_gets_the_public_view_only(
        tmp_path, aiohttp_client, receiver: WebhookReceiver) -> None:
    config = ssrf_config(tmp_path, receiver.url("/ann"), allow_private_targets=["127.0.0.0/8"])
    client = await aiohttp_client(build_app(config, run_probes=False))
    r = await client.post("/api/v1/subscribers", headers=auth(),
                          json={"notifier": "hooks", "target": receiver.url("/subscriber"), "components": ["api"]})
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/incidents", headers=auth(), json={
        "title": "API errors", "body": "We are looking into it.", "impact": "major", "components": ["api"]})
    assert r.status == 201, await r.text()
    incident_id = (await r.json())["incident"]["id"]
    r = await client.post(f"/api/v1/incidents/{incident_id}/updates", headers=auth(),
                          json={"status": "identified", "body": "A bad deploy; rolling back."})
    assert r.status == 201, await r.text()

    def subscriber_hooks() -> list[Any]:
        return [h for h in receiver.hooks if h.path == "/subscriber"]

    await eventually(lambda: subscriber_hooks() and [h for h in receiver.hooks if h.path == "/ann"],
                     "the subscriber's update and the duty engineer's page")
    payload = subscriber_hooks()[0].json
    assert set(payload) <= {"event", "incident", "update", "page"}
    assert set(payload["incident"]) == {"id", "title", "status", "impact", "components", "component_ids",
                                        "opened_at", "url"}
    assert set(payload["update"]) <= {"id", "status", "body", "author", "at"}
    assert payload["incident"]["id"] == incident_id and "assignee" not in str(payload)
    # The operator's own hook still gets the whole context: who owns the incident, where it came from.
    page = [h for h in receiver.hooks if h.path == "/ann"][0].json
    assert page["incident"]["assignee"] == "Ann Duty" and "source" in page["incident"]
