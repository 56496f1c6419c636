"""One-click ack links: bound to the page cycle they were sent in, and saying what a press did."""

from __future__ import annotations

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config
from statusd.core.errors import Conflict
from statusd.core.model import ComponentStatus, Signal

ANN = "ann-token-0123456789abcdef"
SUPPORT = "support-token-0123456789ab"
BASE = "http://status.test"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    config = parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"secret_key": "signing-key-0123456789abcdef", "public_url": BASE},
        "page": {"cache_s": 0},
        "components": {"api": {"name": "API"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}},
        "people": {"ann": {"name": "Ann", "contacts": {"mail": "ann@example.com"}},
                   "bob": {"name": "Bob", "contacts": {"mail": "bob@example.com"}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"ann": {"name": "Ann", "secret": ANN, "scopes": ["incidents:write"], "person": "ann"},
                   "support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})
    return await aiohttp_client(build_app(config, run_probes=False, run_worker=False))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def outage(client) -> Signal:
    return Signal(source="probe", dedup_key="probe:api", components=("api",), severity=ComponentStatus.MAJOR_OUTAGE,
                  summary="api failing", at=client.app[RUNTIME].coordinator.clock.now())


async def links(client, template: str, recipient: str) -> list[str]:
    """The ack link of each `template` message to `recipient`, oldest first, as paths on the test server."""
    async with client.app[RUNTIME].store.read() as r:
        messages = sorted(await r.outbox.list(1000), key=lambda m: m.id or 0)
    return [m.context["actions"][0]["url"].removeprefix(BASE) for m in messages
            if m.template == template and m.recipient == recipient]


async def incident(client, iid: int) -> dict:
    return (await (await client.get(f"/api/v1/incidents/{iid}", headers=auth(SUPPORT))).json())["incident"]


async def test_a_link_from_before_the_incident_reopened_acknowledges_nothing(client) -> None:
    coordinator = client.app[RUNTIME].coordinator
    opened = await coordinator.handle(outage(client))
    [first_page] = await links(client, "alert", "ann@example.com")
    r = await client.post(f"/api/v1/incidents/{opened.id}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    assert r.status == 200
    reopened = await coordinator.handle(outage(client))  # the fix did not hold
    assert reopened.id == opened.id and reopened.status.is_open
    old, new = await links(client, "alert", "ann@example.com")
    assert old == first_page and new != old

    page = await client.get(old)
    assert page.status == 410 and "expired" in await page.text() and "<form" not in await page.text()
    pressed = await client.post(old)
    assert pressed.status == 410 and "re-opened" in await pressed.text()
    assert (await incident(client, opened.id))["acknowledged_at"] is None  # escalation goes on

    # A press racing the re-open: the cycle is checked again inside the acknowledging transaction.
    with pytest.raises(Conflict, match="re-opened"):
        await coordinator.acknowledge_or_accept(opened.id, by="Ann", person="ann", cycle=0)

    assert (await client.get(new)).status == 200
    done = await client.post(new)
    assert done.status == 200 and "escalation has stopped" in await done.text()
    assert (await incident(client, opened.id))["commander"] == "ann"
    forged = new.replace("/ann/", "/bob/")
    assert (await client.post(forged)).status == 403


async def test_accepting_a_handoff_says_so_and_does_not_claim_escalation_stopped(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(SUPPORT),
                          json={"title": "API errors", "body": "Investigating.", "components": ["api"]})
    iid = (await r.json())["incident"]["id"]
    r = await client.post(f"/api/v1/incidents/{iid}/handoff", headers=auth(SUPPORT), json={"to": "bob"})
    assert r.status == 202
    [link] = await links(client, "handoff", "bob@example.com")

    confirm = await client.get(link)
    assert confirm.status == 200 and "accept the handoff" in await confirm.text()
    pressed = await client.post(link)
    text = await pressed.text()
    assert pressed.status == 200 and "Handoff accepted" in text and "Ann" in text
    assert "escalation has stopped" not in text and "Nobody has acknowledged it yet" in text
    after = await incident(client, iid)
    assert after["commander"] == "bob" and after["handoff"] is None and after["acknowledged_at"] is None

    again = await client.post(link)  # now there is no handoff left: the press acknowledges
    assert "escalation has stopped" in await again.text()
    after = await incident(client, iid)
    assert after["acknowledged_at"] is not None and after["commander"] == "bob"


async def test_accepting_a_handoff_of_an_acknowledged_incident(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(SUPPORT),
                          json={"title": "API errors", "body": "Investigating.", "components": ["api"]})
    iid = (await r.json())["incident"]["id"]
    assert (await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(ANN))).status == 200
    await client.post(f"/api/v1/incidents/{iid}/handoff", headers=auth(ANN), json={"to": "bob", "note": "EOD"})
    [link] = await links(client, "handoff", "bob@example.com")
    text = await (await client.post(link)).text()
    assert "Handoff accepted" in text and "already acknowledged" in text
    assert (await incident(client, iid))["commander"] == "bob"
