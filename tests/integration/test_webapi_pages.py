"""The pages the write API shows people (one-click acknowledgement) escape what they show."""

from __future__ import annotations

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config

SUPPORT = "support-token-0123456789ab"
NAME = "<script>alert(1)</script> & Co"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    config = parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"secret_key": "signing-key-0123456789abcdef", "public_url": "http://status.test"},
        "components": {"api": {"name": "API"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}},
        "people": {"ann": {"name": NAME, "contacts": {"mail": "ann@example.com"}}},
        "schedules": {"primary": {"timezone": "UTC", "layers": [
            {"name": "24/7", "participants": ["ann"], "shift_h": 12, "start": "2020-01-01T08:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})
    return await aiohttp_client(build_app(config, run_probes=False, run_worker=False))


async def test_ack_pages_escape_the_persons_name_and_the_conflict(client) -> None:
    r = await client.post("/api/v1/incidents", headers={"Authorization": f"Bearer {SUPPORT}"},
                          json={"title": "API errors", "body": "Investigating.", "components": ["api"]})
    incident = (await r.json())["incident"]
    link = client.app[RUNTIME].coordinator.ack_url(incident["id"], "ann").removeprefix("http://status.test")

    page = await (await client.get(link)).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co, acknowledge incident" in page
    assert "<script>alert(1)" not in page
    assert f'<button type="submit">Acknowledge #{incident["id"]}</button>' in page

    done = await (await client.post(link)).text()
    assert f"Acknowledged. You own incident #{incident['id']}; escalation has stopped." in done
    again = await (await client.post(link)).text()
    assert "<p>Nothing to do: " in again and "<script>alert(1)" not in again
