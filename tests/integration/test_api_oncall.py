"""On-call and ownership through HTTP: who is on call, iCal, signed ack links, handoff, comms, postmortem, KPIs."""

from __future__ import annotations

import icalendar
import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config

ANN = "ann-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
SUPPORT = "support-token-0123456789ab"
KEY = "signing-key-0123456789abcdef"


def config(tmp_path):
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"secret_key": KEY, "public_url": "http://status.test"},
        "page": {"cache_s": 0},
        "components": {"api": {"name": "API"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}},
        "people": {"ann": {"name": "Ann", "contacts": {"mail": "ann@example.com"}},
                   "bob": {"name": "Bob", "contacts": {"mail": "bob@example.com"}}},
        "schedules": {"primary": {"timezone": "UTC", "layers": [
            {"name": "24/7", "participants": ["ann", "bob"], "shift_h": 12, "start": "2020-01-01T08:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"ann": {"name": "Ann", "secret": ANN, "scopes": ["incidents:write"], "person": "ann"},
                   "bob": {"name": "Bob", "secret": BOB, "scopes": ["incidents:write"], "person": "bob"},
                   "support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    return await aiohttp_client(build_app(config(tmp_path), run_probes=False, run_worker=False))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_incident(client) -> dict:
    r = await client.post("/api/v1/incidents", headers=auth(SUPPORT),
                          json={"title": "API errors", "body": "Investigating.", "components": ["api"]})
    assert r.status == 201
    return (await r.json())["incident"]


async def test_who_is_on_call_and_shifts(client) -> None:
    r = await client.get("/api/v1/oncall?at=2026-03-02T09:00:00%2B00:00", headers=auth(SUPPORT))
    body = await r.json()
    primary = body["schedules"]["primary"]
    assert primary["until"] == "2026-03-02T20:00:00+00:00"
    assert primary["person"] in ("ann", "bob") and primary["name"] in ("Ann", "Bob")
    r = await client.get("/api/v1/schedules/primary/shifts?from=2026-03-02T08:00:00%2B00:00"
                         "&to=2026-03-03T08:00:00%2B00:00", headers=auth(SUPPORT))
    shifts = (await r.json())["shifts"]
    assert len(shifts) == 2 and shifts[0]["person"] != shifts[1]["person"]
    for bad in ("at=yesterday", "at=2026-03-02T09:00:00"):
        r = await client.get(f"/api/v1/oncall?{bad}", headers=auth(SUPPORT))
        assert r.status == 400 and (await r.json())["error"]["field"] == "at"
    assert (await client.get("/api/v1/schedules/nope/shifts", headers=auth(SUPPORT))).status == 404
    assert (await client.get("/api/v1/oncall")).status == 401


async def test_ical_feed_is_signed(client) -> None:
    listing = await (await client.get("/api/v1/schedules", headers=auth(SUPPORT))).json()
    url = listing["schedules"][0]["ical_url"]
    assert url.startswith("http://status.test/schedules/primary.ics?sig=")
    path = url.removeprefix("http://status.test")
    r = await client.get(path)
    assert r.status == 200 and r.content_type == "text/calendar"
    calendar = icalendar.Calendar.from_ical(await r.read())
    events = [c for c in calendar.walk("VEVENT")]
    assert len(events) > 100  # 67 days of 12-hour shifts
    assert {str(e["summary"]) for e in events} == {"On call: Ann", "On call: Bob"}
    assert (await client.get("/schedules/primary.ics?sig=forged")).status == 401
    assert (await client.get("/schedules/primary.ics")).status == 401


async def test_signed_ack_link_confirms_then_acknowledges(client) -> None:
    incident = await open_incident(client)
    runtime = client.app[RUNTIME]
    person = incident["assignee"]
    link = runtime.coordinator.ack_url(incident["id"], person).removeprefix("http://status.test")
    page = await client.get(link)  # opening the link (or a mail scanner prefetching it) changes nothing
    assert page.status == 200 and "<form" in await page.text()
    async with runtime.store.read() as r:
        assert (await r.incidents.get(incident["id"])).acknowledged_at is None
    done = await client.post(link)
    assert done.status == 200 and "Acknowledged" in await done.text()
    async with runtime.store.read() as r:
        acked = await r.incidents.get(incident["id"])
    assert acked.commander == person
    again = await client.post(link)
    assert again.status == 200 and "Nothing to do" in await again.text()
    other = "bob" if person == "ann" else "ann"
    forged = link.replace(f"/{person}/", f"/{other}/")
    assert (await client.post(forged)).status == 403


async def test_handoff_comms_postmortem_and_kpis(client) -> None:
    incident = await open_incident(client)
    iid = incident["id"]
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(ANN))
    assert (await r.json())["incident"]["commander"] == "ann"
    r = await client.post(f"/api/v1/incidents/{iid}/handoff", headers=auth(ANN), json={"to": "bob", "note": "EOD"})
    assert r.status == 202
    body = (await r.json())["incident"]
    assert body["commander"] == "ann" and body["handoff"]["to"] == "bob"
    r = await client.post(f"/api/v1/incidents/{iid}/handoff", headers=auth(ANN), json={"to": "zed"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "to"
    r = await client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth(BOB))
    assert (await r.json())["incident"]["commander"] == "bob"
    r = await client.put(f"/api/v1/incidents/{iid}/comms", headers=auth(BOB), json={"person": "ann"})
    assert (await r.json())["incident"]["comms"] == "ann"
    r = await client.post(f"/api/v1/incidents/{iid}/postmortem", headers=auth(BOB), json={"body": "# Why"})
    assert r.status == 409  # not resolved yet
    await client.post(f"/api/v1/incidents/{iid}/resolve", headers=auth(BOB), json={"body": "Fixed."})
    r = await client.post(f"/api/v1/incidents/{iid}/postmortem", headers=auth(BOB),
                          json={"body": "# Why\n\nA bad deploy."})
    assert r.status == 201 and (await r.json())["incident"]["status"] == "postmortem"
    detail = (await (await client.get(f"/api/v1/incidents/{iid}", headers=auth(SUPPORT))).json())["incident"]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.count("handoff") == 2 and "role" in kinds and "postmortem" in kinds
    kpis = detail["kpis"]
    assert kpis["time_to_acknowledge_s"] is not None and kpis["time_to_resolve_s"] is not None
    assert kpis["time_to_first_public_update_s"] == 0
    summary = await (await client.get("/api/v1/kpis?days=7", headers=auth(SUPPORT))).json()
    assert summary["incidents"] == 1 and summary["by_source"] == {"manual": 1}
    assert summary["time_to_resolve_s"]["count"] == 1
    assert (await client.get("/api/v1/kpis?days=0", headers=auth(SUPPORT))).status == 400


async def test_postmortem_is_published_sanitised_on_the_page_and_in_api_v2(client) -> None:
    incident = await open_incident(client)
    iid = incident["id"]
    await client.post(f"/api/v1/incidents/{iid}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    body = ("# What happened\n\nA **bad deploy** of the API.\n\n<script>alert(1)</script>\n\n"
            "[details](javascript:alert(2)) and [runbook](https://runbooks.example.com/api)")
    r = await client.post(f"/api/v1/incidents/{iid}/postmortem", headers=auth(SUPPORT), json={"body": body})
    assert r.status == 201
    page = await (await client.get(f"/incidents/{iid}")).text()
    assert "<h1>What happened</h1>" in page and "<strong>bad deploy</strong>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, never run
    assert "<script" not in page.lower()
    assert 'href="javascript' not in page
    assert 'href="https://runbooks.example.com/api"' in page
    incidents = (await (await client.get("/api/v2/incidents.json")).json())["incidents"]
    [published] = [i for i in incidents if i["id"] == str(iid)]
    assert published["status"] == "postmortem" and published["postmortem_body"] == body
    assert published["postmortem_published_at"] is not None


async def test_odd_input_on_the_on_call_and_incident_paths_is_a_4xx_naming_the_field(client) -> None:
    """Found by an adversarial pass: each of these was a 500."""
    incident = await open_incident(client)
    # Signatures and dates that no signer or calendar can take.
    assert (await client.get("/schedules/primary.ics?sig=%C3%A9")).status == 401
    assert (await client.get(f"/ack/{incident['id']}/ann/%C3%A9")).status in (401, 403)
    for query in ("/api/v1/oncall?at=0001-01-01T00:00:00Z", "/api/v1/schedules/primary/shifts?from=9999-12-25T00:00:00Z"):
        r = await client.get(query, headers=auth(SUPPORT))
        assert r.status == 400, query
        assert (await r.json())["error"]["field"] in ("at", "from")
    # Ids past 64 bits, and path ids int() would take but nobody writes.
    r = await client.post(f"/api/v1/incidents/{incident['id']}/merge", headers=auth(SUPPORT), json={"into": 2**63})
    assert r.status == 404 and "error" in await r.json()
    for odd in ("+1", "1_0", "%EF%BC%91", "%201"):
        r = await client.get(f"/api/v1/incidents/{odd}", headers=auth(SUPPORT))
        assert r.status == 400 and (await r.json())["error"]["field"] == "id", odd
    # The field that names the person is `person`.
    r = await client.put(f"/api/v1/incidents/{incident['id']}/comms", headers=auth(SUPPORT), json={"person": "zed"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "person"
