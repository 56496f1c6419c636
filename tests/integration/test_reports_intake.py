"""Customer reports through the composed app: intake, surge → incident, linked clients informed once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import gzip
import json
import zlib

import brotli
import pytest

from statusd.app import RUNTIME, build_app
from statusd.web.body import zstd
from tests.support.reports import SUPPORT, auth, config, report

T0_FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    return await aiohttp_client(build_app(config(tmp_path), run_probes=False, run_worker=False))


async def outbox(client, template: str) -> list[str]:
    async with client.app[RUNTIME].store.read() as r:
        return sorted(m.recipient for m in await r.outbox.list(1000) if m.template == template)


async def test_a_surge_opens_an_incident_and_every_reporter_is_linked_and_informed(client) -> None:
    results = []
    for i in range(8):  # eight distinct clients with the same complaint within minutes
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
        assert r.status == 202, await r.text()
        results.append((await r.json())["report"])
    incident_ids = {res["incident_id"] for res in results if res["incident_id"]}
    assert len(incident_ids) == 1
    [incident_id] = incident_ids
    linked = await (await client.get(f"/api/v1/incidents/{incident_id}/reports", headers=auth(SUPPORT))).json()
    assert len(linked["clients"]) == 8 and len(linked["reports"]) == 8
    # Each client got one acknowledgement with the latest state, whether linked at the surge or after it.
    assert await outbox(client, "report_ack") == sorted(f"client{i}@example.com" for i in range(8))
    summary = await (await client.get("/api/v2/summary.json")).json()
    assert [c["status"] for c in summary["components"] if c["id"] == "payments"] != ["operational"]

    # Every public update reaches every linked client exactly once, and so does the resolution.
    r = await client.post(f"/api/v1/incidents/{incident_id}/updates", headers=auth(SUPPORT),
                          json={"body": "The card processor is failing over.", "status": "identified"})
    assert r.status == 201
    await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    updates = await outbox(client, "update")
    for i in range(8):
        assert updates.count(f"client{i}@example.com") >= 2  # the update and the resolution (and the first one)
    async with client.app[RUNTIME].store.read() as r:
        messages = await r.outbox.list(1000)
    keys = [m.key for m in messages]
    assert len(keys) == len(set(keys))


async def test_a_surge_without_a_component_gets_a_public_title_that_reads_as_one(client) -> None:
    for i in range(5):
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i))
    incident_id = (await r.json())["report"]["incident_id"]
    assert incident_id is not None
    [incident] = (await (await client.get("/api/v2/incidents/unresolved.json")).json())["incidents"]
    assert incident["name"] == "Degraded performance" and incident["components"] == []
    assert "Degraded performance</a>" in await (await client.get("/")).text()


async def test_a_late_report_joins_the_open_incident_and_gets_a_catch_up(client) -> None:
    for i in range(6):
        await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
    late = await client.post("/api/v1/reports", headers=auth(), json=report(99, tags={"component": "payments"}))
    result = (await late.json())["report"]
    assert result["incident_id"] is not None
    assert "client99@example.com" in await outbox(client, "report_ack")


async def test_the_timeline_notes_links_that_come_with_a_signal_not_every_later_batch(client) -> None:
    for i in range(6):
        await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
    # Late reports arrive in batches, as a group commit under load would hand them over: the first
    # batch takes the surge to 10 clients (a partial outage: a signal), the second adds 4 more.
    for start in (10, 20):
        r = await client.post("/api/v1/reports/batch", headers=auth(),
                              json={"reports": [report(i, tags={"component": "payments"}) for i in range(start, start + 4)]})
        assert r.status == 202 and all(res["incident_id"] for res in (await r.json())["reports"])
    [incident_id] = {res["incident_id"] for res in (await r.json())["reports"]}
    async with client.app[RUNTIME].store.read() as rd:
        entries = (await rd.incidents.entries([incident_id]))[incident_id]
        linked = await rd.reports.for_incident(incident_id)
    notes = [e for e in entries if e.body.startswith("Linked ")]
    assert len(linked) == 14
    assert [e.data["clients"] for e in notes] == [5, 4], [e.body for e in notes]  # opened; grew; (nothing)
    assert await outbox(client, "report_ack") == sorted(f"client{i}@example.com" for i in [*range(6), *range(10, 14),
                                                                                          *range(20, 24)])


async def test_a_surge_that_reopens_a_resolved_incident_gets_its_own_note(client) -> None:
    for i in range(5):
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
    incident_id = (await r.json())["report"]["incident_id"]
    r = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    assert r.status == 200, await r.text()
    r = await client.post("/api/v1/reports/batch", headers=auth(), json={
        "reports": [report(i, tags={"component": "payments"}) for i in range(10, 17)]})
    assert {res["incident_id"] for res in (await r.json())["reports"]} == {incident_id}  # re-opened
    async with client.app[RUNTIME].store.read() as rd:
        entries = (await rd.incidents.entries([incident_id]))[incident_id]
    assert [e.data["clients"] for e in entries if e.body.startswith("Linked ")] == [5, 7]


async def test_two_surges_joining_one_incident_in_one_batch_link_all_their_reports(client) -> None:
    both = [report(i, tags={"component": "payments", "category": "login"}) for i in range(5)]
    both += [report(i, tags={"component": "payments"}) for i in range(10, 15)]
    r = await client.post("/api/v1/reports/batch", headers=auth(), json={"reports": both})
    results = (await r.json())["reports"]
    # The second surge joined the first one's incident (reports before a surge answer without one).
    [incident_id] = {res["incident_id"] for res in results} - {None}
    async with client.app[RUNTIME].store.read() as rd:
        linked = await rd.reports.for_incident(incident_id)
    assert sorted(r.id for r in linked) == sorted(res["id"] for res in results)


async def test_idempotent_on_source_and_external_id(client) -> None:
    first = await client.post("/api/v1/reports", headers=auth(), json=report(1, external_id="T-1"))
    again = await client.post("/api/v1/reports", headers=auth(), json=report(1, external_id="T-1"))
    assert first.status == 202 and again.status == 200
    assert (await first.json())["report"]["id"] == (await again.json())["report"]["id"]
    assert (await again.json())["report"]["duplicate"] is True


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"text": "x"}, "client_id", id="missing-client"),
    pytest.param({"client_id": "c"}, "text", id="missing-text"),
    pytest.param({"client_id": "c", "text": "   "}, "text", id="empty-text"),
    pytest.param({"client_id": "c", "text": "x" * 5001}, "text", id="huge-text"),
    pytest.param({"client_id": "c", "text": "x", "mood": "angry"}, "mood", id="unknown-field"),
    pytest.param({"client_id": "c", "text": "x", "received_at": "2099-01-01T00:00:00Z"}, "received_at",
                 id="far-future"),
    pytest.param({"client_id": "c", "text": "x", "received_at": "2026-03-02T09:00:00"}, "received_at",
                 id="no-offset"),
    pytest.param({"client_id": "c", "text": "x", "tags": {"component": "nope"}}, "tags.component",
                 id="unknown-component"),
    pytest.param({"client_id": "c", "text": "x", "tags": {"colour": "red"}}, "tags.colour", id="unknown-tag"),
    pytest.param({"client_id": "c", "text": "x", "contact": {"notifier": "sms", "address": "1"}},
                 "contact.notifier", id="unknown-notifier"),
    pytest.param({"client_id": "c", "text": "x", "contact": {"notifier": "mail", "address": "nope"}},
                 "contact.address", id="bad-address"),
    pytest.param({"client_id": "c", "text": "x", "ticket_url": "javascript:alert(1)"}, "ticket_url",
                 id="bad-ticket-url"),
    pytest.param({"client_id": "c", "text": "x", "ticket_url": "http://a:99999/t/1"}, "ticket_url",
                 id="ticket-url-bad-port"),
    pytest.param({"client_id": "c", "text": "x", "ticket_url": "http://xn--/t/1"}, "ticket_url",
                 id="ticket-url-bad-idna"),
    pytest.param({"client_id": "c", "text": "x", "ticket_url": "http://exa mple.com/"}, "ticket_url",
                 id="ticket-url-space"),
    pytest.param({"client_id": "c", "text": "\u0000\u0007"}, "text", id="control-characters-only"),
    pytest.param({"client_id": "c", "text": "x", "external_id": "  "}, "external_id", id="empty-external-id"),
])
async def test_bad_reports_name_the_field_and_store_nothing(client, body, field) -> None:
    r = await client.post("/api/v1/reports", headers=auth(), json=body)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["field"] == field
    async with client.app[RUNTIME].store.read() as rd:
        assert await rd.reports.recent(client.app[RUNTIME].clock.now() - timedelta(days=1)) == []


@pytest.mark.parametrize(("raw", "field"), [
    pytest.param(b'{"client_id": "c", "text": "card \\ud800 declined"}', "text", id="unpaired-surrogate"),
    pytest.param(b'{"client_id": "c", "text": "x", "tags": {"region": "\\udc00"}}', "tags.region",
                 id="unpaired-surrogate-in-a-tag"),
    pytest.param(b'{"client_id": "c", "text": "pay\\u0000ment declined"}', "text", id="nul"),  # PostgreSQL: an error
    pytest.param(b'{"client_id": "c", "text": "x", "tags": {"region": "eu\\u0000"}}', "tags.region", id="nul-in-a-tag"),
    pytest.param(b'{"client_id": "c", "text": "x", "tags": {"a\\u0000": "eu"}}', "tags", id="nul-in-a-key"),
    pytest.param(b'{"client_id": "c", "text": "x", "external_id": NaN}', "body", id="nan"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "body", id="nested-too-deep"),
    pytest.param(b'{"client_id": "c", "text": "x", "external_id": ' + b"9" * 5000 + b"}", "body", id="huge-integer"),
])
async def test_bodies_json_accepts_but_nothing_can_store_are_refused_naming_the_field(client, raw, field) -> None:
    r = await client.post("/api/v1/reports", headers={**auth(), "Content-Type": "application/json"}, data=raw)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["field"] == field
    batch = b'{"reports": [{"client_id": "ok", "text": "fine"}, ' + raw + b"]}"
    if raw.startswith(b"{"):  # the same report as the second item of a batch
        r = await client.post("/api/v1/reports/batch", headers={**auth(), "Content-Type": "application/json"},
                              data=batch)
        assert r.status == 400
        assert (await r.json())["error"]["field"] == ("body" if field == "body" else f"reports[1].{field}")
    async with client.app[RUNTIME].store.read() as rd:
        assert await rd.reports.recent(T0_FAR_PAST) == []


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


CODED = [  # (Content-Encoding, how the body is packed)
    pytest.param("gzip", gzip.compress, id="gzip"),
    pytest.param("GZip", lambda b: gzip.compress(b[:20]) + gzip.compress(b[20:]), id="gzip-two-members"),
    pytest.param("deflate", zlib.compress, id="deflate"),
    pytest.param("deflate", _raw_deflate, id="deflate-raw"),  # what many clients send as "deflate"
    pytest.param("br", brotli.compress, id="br"),
    pytest.param("zstd", zstd.compress, id="zstd"),
    pytest.param(" identity ", lambda b: b, id="identity"),
    pytest.param("x-gzip", gzip.compress, id="x-gzip"),
]


@pytest.mark.parametrize("coding, pack", CODED)
async def test_a_body_in_a_content_coding_is_decoded(client, coding, pack) -> None:
    body = json.dumps(report(1, text="оплата картой не проходит")).encode()
    r = await client.post("/api/v1/reports", headers={**auth(), "Content-Type": "application/json",
                                                      "Content-Encoding": coding}, data=pack(body))
    assert r.status == 202, await r.text()
    async with client.app[RUNTIME].store.read() as rd:
        [stored] = await rd.reports.recent(T0_FAR_PAST)
    assert stored.text == "оплата картой не проходит (1)"


BAD_CODED = [  # (Content-Encoding, body, status, field, words of the message)
    pytest.param("gzip", b'{"client_id": "c"}', 400, "body", "is not valid gzip data", id="not-gzip"),
    pytest.param("gzip", gzip.compress(json.dumps(report(1)).encode())[:-12], 400, "body", "ends early",
                 id="gzip-cut-short"),
    pytest.param("deflate", b"x", 400, "body", "ends early", id="deflate-one-byte"),  # aiohttp's parser: text 400
    pytest.param("br", b"\x00" * 8, 400, "body", "is not valid br data", id="not-br"),
    pytest.param("zstd", b"plain", 400, "body", "is not valid zstd data", id="not-zstd"),
    pytest.param("gzip", gzip.compress(b" " * 3_000_000), 413, "body", "once decoded ([server] max_body_bytes)",
                 id="gzip-bomb"),
    pytest.param("br", brotli.compress(b" " * 3_000_000), 413, "body", "once decoded", id="br-bomb"),
    pytest.param("zstd", zstd.compress(b" " * 3_000_000), 413, "body", "once decoded", id="zstd-bomb"),
    # Each stream run together copies the rest of the body: a megabyte of empty ones held the loop for seconds.
    pytest.param("gzip", gzip.compress(b"", mtime=0) * 17 + gzip.compress(b"{}"), 400, "body",
                 "more than 16 gzip streams", id="gzip-empty-members"),
    pytest.param("zstd", b"\x50\x2a\x4d\x18\0\0\0\0" * 100_000 + zstd.compress(b"{}"), 400, "body",
                 "more than 16 zstd streams", id="zstd-skippable-frames"),
    pytest.param("compress", b"{}", 415, "Content-Encoding", "'compress' is not supported", id="compress"),
    pytest.param("gzip, br", b"{}", 415, "Content-Encoding", "not supported", id="two-codings"),
]


@pytest.mark.parametrize("coding, body, status, field, words", BAD_CODED)
async def test_a_body_not_in_its_content_coding_is_refused_naming_it(client, coding, body, status, field,
                                                                       words) -> None:
    codings = [("Content-Encoding", part) for part in coding.split(", ")]  # two codings: two headers
    r = await client.post("/api/v1/reports", headers=[*auth().items(), ("Content-Type", "application/json"),
                                                      *codings], data=body)
    assert r.status == status, await r.text()
    error = (await r.json())["error"]
    assert error["field"] == field and words in error["message"]
    assert r.headers.get("Connection", "").lower() != "close"  # the connection stays usable
    ok = await client.post("/api/v1/reports", headers=auth(), json=report(2))
    assert ok.status == 202
    async with client.app[RUNTIME].store.read() as rd:
        assert [r.client_id for r in await rd.reports.recent(T0_FAR_PAST)] == ["client-2"]


async def test_the_form_reads_a_compressed_body_and_refuses_a_compressed_multipart_one(client) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
    ok = await client.post("/report", headers=form, data=gzip.compress(b"text=Checkout+fails"))
    assert ok.status == 200, await ok.text()
    cut = await client.post("/report", headers=form, data=gzip.compress(b"text=Checkout+fails")[:-8])
    assert cut.status == 400 and "body: is not valid gzip data" in await cut.text()
    multipart = {"Content-Type": "multipart/form-data; boundary=x", "Content-Encoding": "gzip"}
    packed = await client.post("/report", headers=multipart,
                               data=gzip.compress(b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--x--'))
    assert packed.status == 415 and "Content-Encoding" in await packed.text()
    async with client.app[RUNTIME].store.read() as rd:
        assert [r.text for r in await rd.reports.recent(T0_FAR_PAST)] == ["Checkout fails"]


async def test_a_multipart_form_aiohttp_cannot_read_is_a_400_not_a_500(tmp_path, aiohttp_client) -> None:
    client = await aiohttp_client(build_app(config(tmp_path, form_rate_per_min=20), run_probes=False, run_worker=False))
    for part in (b'Content-Disposition: form-data\r\n\r\nhi',  # a part without a name
                 b'Content-Disposition: form-data; name="text"\r\nContent-Transfer-Encoding: base64\r\n\r\nh',
                 b'Content-Disposition: form-data; name="text"\r\nContent-Transfer-Encoding: foo\r\n\r\nhi'):
        odd = await client.post("/report", headers={"Content-Type": "multipart/form-data; boundary=x"},
                                data=b"--x\r\n" + part + b"\r\n--x--\r\n")
        assert odd.status == 400 and "body: is not a multipart form" in await odd.text(), part


async def test_odd_credentials_and_ids_are_401_and_404_not_500(client) -> None:
    r = await client.post("/api/v1/reports", headers={"Authorization": "Bearer caf\u00e9"}, json=report(1))
    assert r.status == 401
    r = await client.get(f"/api/v1/incidents/{2**63}/reports", headers=auth(SUPPORT))
    assert r.status == 404 and "error" in await r.json()
    r = await client.get(f"/api/v1/incidents/{2**63}", headers=auth(SUPPORT))
    assert r.status == 404


async def test_one_request_whose_reports_cannot_be_stored_fails_alone(client, monkeypatch) -> None:
    """Requests share a commit; a report the store refuses must not take the others down with it."""
    import asyncio

    from statusd.store.sqlite import SqliteReports

    real = SqliteReports.add_many

    async def picky(self, reports):
        if any("poison" in r.text for r in reports):
            raise ValueError("the store refuses this text")
        return await real(self, reports)
    monkeypatch.setattr(SqliteReports, "add_many", picky)
    bodies = [report(i) for i in range(20)]
    bodies[7] = report(7, text="poison")
    responses = await asyncio.gather(*(client.post("/api/v1/reports", headers=auth(), json=b) for b in bodies))
    assert [r.status for r in responses] == [202] * 7 + [500] + [202] * 12
    async with client.app[RUNTIME].store.read() as rd:
        stored = await rd.reports.recent(T0_FAR_PAST)
    assert sorted(r.client_id for r in stored) == sorted(f"client-{i}" for i in range(20) if i != 7)


async def test_backfilled_reports_are_stored_but_never_open_or_join_a_live_surge(client) -> None:
    """Tickets imported from twenty days ago are history: they must not page anyone today."""
    old = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    r = await client.post("/api/v1/reports/batch", headers=auth(), json={
        "reports": [report(i, tags={"component": "payments"}, received_at=old) for i in range(8)]})
    assert r.status == 202
    assert [res["incident_id"] for res in (await r.json())["reports"]] == [None] * 8
    # Four current reports beside two more old ones: four clients now, not six.
    for i in range(10, 14):
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
        assert (await r.json())["report"]["incident_id"] is None
    r = await client.post("/api/v1/reports/batch", headers=auth(), json={
        "reports": [report(i, tags={"component": "payments"}, received_at=old) for i in (20, 21)]})
    assert [res["incident_id"] for res in (await r.json())["reports"]] == [None, None]
    async with client.app[RUNTIME].store.read() as rd:
        assert await rd.incidents.list_open() == []
        assert len(await rd.reports.recent(T0_FAR_PAST)) == 14
    # The fifth current client is a surge of five, and only current reports are linked to it.
    r = await client.post("/api/v1/reports", headers=auth(), json=report(14, tags={"component": "payments"}))
    incident_id = (await r.json())["report"]["incident_id"]
    assert incident_id is not None
    async with client.app[RUNTIME].store.read() as rd:
        linked = await rd.reports.for_incident(incident_id)
    assert sorted(x.client_id for x in linked) == [f"client-{i}" for i in range(10, 15)]


async def test_a_batch_with_one_bad_item_is_refused_whole(client) -> None:
    items = [report(1), report(2), {"client_id": "c3", "text": ""}]
    r = await client.post("/api/v1/reports/batch", headers=auth(), json={"reports": items})
    assert r.status == 400 and (await r.json())["error"]["field"] == "reports[2].text"
    async with client.app[RUNTIME].store.read() as rd:
        assert await rd.reports.recent(client.app[RUNTIME].clock.now() - timedelta(days=1)) == []
    ok = await client.post("/api/v1/reports/batch", headers=auth(), json={"reports": items[:2]})
    assert ok.status == 202 and len((await ok.json())["reports"]) == 2


async def test_invalid_utf8_and_auth(client) -> None:
    r = await client.post("/api/v1/reports", headers={**auth(), "Content-Type": "application/json"},
                          data=b'{"client_id": "c", "text": "\xff"}')
    assert r.status == 400 and (await r.json())["error"]["field"] == "body"
    assert (await client.post("/api/v1/reports", json=report(1))).status == 401
    assert (await client.post("/api/v1/reports", headers=auth(SUPPORT), json=report(1))).status == 403


async def test_public_form_rate_limit_honeypot_and_contact(client) -> None:
    page = await client.get("/report")
    assert page.status == 200 and 'name="website"' in await page.text()
    bot = await client.post("/report", data={"text": "buy pills", "website": "http://spam"})
    assert bot.status == 200
    ok = await client.post("/report", data={"text": "Checkout fails", "email": "visitor@example.com",
                                            "component": "payments"})
    assert ok.status == 200 and "e-mail you" in await ok.text()
    bad = await client.post("/report", data={"text": "x", "email": "not-an-email"})
    assert bad.status == 400 and "email" in await bad.text()
    limited = await client.post("/report", data={"text": "again"})
    assert limited.status == 429
    async with client.app[RUNTIME].store.read() as rd:
        stored = await rd.reports.recent(client.app[RUNTIME].clock.now() - timedelta(days=1))
    assert [(r.channel, r.contact) for r in stored] == [("form", ("mail", "visitor@example.com"))]


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as Prometheus parses it: (sample name, sorted labels) → value."""
    from prometheus_client.parser import text_string_to_metric_families
    text = await (await client.get("/metrics")).text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_prometheus_counts_reports_surges_links_and_refused_form_posts(client) -> None:
    before = await scrape(client)
    assert before[("statusd_report_detector_warming", ())] == 0
    # Every reason is there at 0 before its first count, so increase() sees the first one.
    assert before[("statusd_reports_undetected_total", (("reason", "detector_failed"),))] == 0
    assert before[("statusd_report_form_refused_total", (("reason", "rate_limited"),))] == 0
    assert ("statusd_reports_linked_total", ()) in before and before[("statusd_reports_linked_total", ())] == 0
    # Six clients: the fifth tips the surge (five reports linked with it), the sixth joins it.
    for i in range(6):
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i, external_id=f"t{i}",
                                                                             tags={"component": "payments"}))
        assert r.status == 202
    again = await client.post("/api/v1/reports", headers=auth(), json=report(0, external_id="t0",
                                                                             tags={"component": "payments"}))
    assert again.status == 200
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    r = await client.post("/api/v1/reports/batch", headers=auth(),
                          json={"reports": [report(i, received_at=old) for i in (30, 31)]})
    assert r.status == 202
    await client.post("/report", data={"text": "buy pills", "website": "http://spam"})
    await client.post("/report", data={"text": "x", "email": "not-an-email"})
    await client.post("/report", data={"text": "Checkout fails"})
    assert (await client.post("/report", data={"text": "again"})).status == 429

    m = await scrape(client)
    received = "statusd_reports_received_total"
    assert m[(received, (("outcome", "stored"), ("source", "api:helpdesk")))] == 8
    assert m[(received, (("outcome", "duplicate"), ("source", "api:helpdesk")))] == 1
    assert m[(received, (("outcome", "stored"), ("source", "form")))] == 1
    assert m[("statusd_reports_undetected_total", (("reason", "backfill"),))] == 2
    assert m[("statusd_report_surges_total", ())] == 1
    assert m[("statusd_reports_linked_total", ())] == 6
    assert m[('statusd_incidents_opened_total', (("impact", "minor"), ("source", "reports")))] == 1
    refused = "statusd_report_form_refused_total"
    assert {reason: m[(refused, (("reason", reason),))] for reason in ("honeypot", "invalid", "rate_limited")} == {
        "honeypot": 1, "invalid": 1, "rate_limited": 1}
    assert m[("statusd_report_detector_restarts_total", ())] == 0


async def test_the_form_refuses_files_and_keeps_the_longest_e_mail_addresses(client) -> None:
    import aiohttp

    upload = aiohttp.FormData()
    upload.add_field("text", b"file contents", filename="notes.txt")
    bad = await client.post("/report", data=upload)
    assert bad.status == 400 and "text: must be text, not a file" in await bad.text()
    address = "a" * 64 + "@" + ".".join(["b" * 60, "b" * 60, "b" * 59]) + ".example"  # 254: the longest there is
    assert len(address) == 254
    ok = await client.post("/report", data={"text": "Checkout fails", "email": address})
    assert ok.status == 200, await ok.text()
    async with client.app[RUNTIME].store.read() as rd:
        [stored] = await rd.reports.recent(T0_FAR_PAST)
    assert stored.contact == ("mail", address)


async def test_the_form_refuses_text_that_is_not_utf_8_naming_the_field(tmp_path, aiohttp_client) -> None:
    client = await aiohttp_client(build_app(config(tmp_path, form_rate_per_min=20), run_probes=False, run_worker=False))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for body in (b"text=%FF%FEcard+broken&email=", b"text=\xff\xfe card broken&email="):
        bad = await client.post("/report", headers=form, data=body)
        assert bad.status == 400 and "text: is not valid utf-8 text" in await bad.text(), body
    nul = await client.post("/report", headers=form, data=b"text=card%00+broken&email=")
    assert nul.status == 400 and "text: contains a NUL character" in await nul.text()
    latin = await client.post("/report", headers={"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"},
                              data="text=Caf\xe9 checkout fails".encode("latin-1"))
    assert latin.status == 200, await latin.text()
    unknown = await client.post("/report", headers={"Content-Type": "application/x-www-form-urlencoded; charset=nope"},
                                data=b"text=x")
    assert unknown.status == 400 and "charset &#x27;nope&#x27; is not supported" in await unknown.text()
    for charset, body in (("utf-7", b"text=card+declined+%2B2AA-"), ("unicode_escape", b"text=card+%5Cud800"),
                          ("punycode", b"text=abc-%21")):  # lone surrogates, or an error of their own
        odd = await client.post("/report", headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"},
                                data=body)
        assert odd.status == 400 and "is not supported" in await odd.text(), charset
    async with client.app[RUNTIME].store.read() as rd:
        stored = await rd.reports.recent(T0_FAR_PAST)
    assert [r.text for r in stored] == ["Caf\xe9 checkout fails"]  # nothing half-decoded was kept


# --- the group commit and the detector's process ---------------------------------------------


async def test_concurrent_requests_share_commits_and_each_gets_its_own_answer(client) -> None:
    """Fifty requests at once (three of them repeating one ticket): every answer is the caller's own."""
    import asyncio

    bodies = [report(i, tags={"component": "payments"}) for i in range(47)]
    bodies += [report(100, external_id="T-7"), report(101, external_id="T-7"), report(102, external_id="T-7")]
    responses = await asyncio.gather(*(client.post("/api/v1/reports", headers=auth(), json=b) for b in bodies))
    results = [(r.status, (await r.json())["report"]) for r in responses]
    ids = [res["id"] for _, res in results]
    assert len(set(ids[:47])) == 47 and len(set(ids[47:])) == 1  # the ticket was stored once
    assert sorted(status for status, _ in results[47:]) == [200, 200, 202]
    assert [status for status, _ in results[:47]] == [202] * 47
    async with client.app[RUNTIME].store.read() as r:
        stored = await r.reports.recent(T0_FAR_PAST)
        assert {report.id for report in stored} == set(ids)
        assert {report.client_id for report in stored if report.id == ids[0]} == {"client-0"}
        incidents = await r.incidents.list_open()
    # The surge opened one incident and every payments report of the flood is linked to it.
    assert len(incidents) == 1
    linked = {res["id"] for _, res in results[:47] if res["incident_id"] == incidents[0].id}
    assert len(linked) >= 40


async def test_a_failed_commit_fails_every_request_that_shared_it_and_stores_nothing(client, monkeypatch) -> None:
    import asyncio

    store = client.app[RUNTIME].store
    real = store.transaction

    def broken(**options):
        raise OSError("disk full")
    monkeypatch.setattr(store, "transaction", broken)
    responses = await asyncio.gather(*(client.post("/api/v1/reports", headers=auth(), json=report(i)) for i in range(5)))
    assert [r.status for r in responses] == [500] * 5
    assert all("error" in body for body in [await r.json() for r in responses])
    monkeypatch.setattr(store, "transaction", real)
    async with store.read() as r:
        assert await r.reports.recent(T0_FAR_PAST) == []
    ok = await client.post("/api/v1/reports", headers=auth(), json=report(9))
    assert ok.status == 202  # the intake goes on after a failed commit


async def test_a_report_detected_while_its_surge_opens_the_incident_is_linked_to_it(tmp_path, aiohttp_client) -> None:
    """Stage two reads the open incidents while the detector works; the surge's incident may open just after."""
    import asyncio

    c = await aiohttp_client(build_app(config(tmp_path, detector_process=False), run_probes=False, run_worker=False))
    runtime = c.app[RUNTIME]
    for i in range(4):
        await c.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
    release = asyncio.Event()
    handle = runtime.coordinator.handle

    async def held(signal):
        await release.wait()
        return await handle(signal)
    runtime.coordinator.handle = held
    surge = asyncio.create_task(c.post("/api/v1/reports", headers=auth(), json=report(4, tags={"component": "payments"})))
    while runtime.intake._linking is None or runtime.intake._linking.done():  # stage three waits in handle
        await asyncio.sleep(0.01)
    late = asyncio.create_task(c.post("/api/v1/reports", headers=auth(), json=report(5, tags={"component": "payments"})))
    while not runtime.intake._observed:  # the late report is detected, the open incidents read: none yet
        await asyncio.sleep(0.01)
    release.set()
    first, second = [(await (await task).json())["report"] for task in (surge, late)]
    assert first["incident_id"] is not None
    assert second["incident_id"] == first["incident_id"]
    async with runtime.store.read() as r:
        assert len(await r.reports.for_incident(first["incident_id"])) == 6


async def test_a_report_detected_before_its_incident_was_resolved_by_hand_is_not_linked_to_it(
        tmp_path, aiohttp_client) -> None:
    """Stage three links from a read of the open incidents taken during detection; a resolution may come between."""
    import asyncio

    c = await aiohttp_client(build_app(config(tmp_path, detector_process=False), run_probes=False, run_worker=False))
    intake = c.app[RUNTIME].intake
    for i in range(5):
        r = await c.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
    incident_id = (await r.json())["report"]["incident_id"]
    assert incident_id is not None
    release, held = asyncio.Event(), asyncio.Event()
    link = intake._link

    async def late_link(stored, outcomes, open_now):
        held.set()
        await release.wait()
        return await link(stored, outcomes, open_now)
    intake._link = late_link
    late = asyncio.create_task(c.post("/api/v1/reports", headers=auth(), json=report(5, tags={"component": "payments"})))
    await held.wait()  # detected as part of the active surge; the open incidents were read: it is open
    r = await c.post(f"/api/v1/incidents/{incident_id}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    assert r.status == 200, await r.text()
    release.set()
    answer = await late
    assert answer.status == 202
    result = (await answer.json())["report"]
    assert result["incident_id"] is None
    async with c.app[RUNTIME].store.read() as rd:
        assert len(await rd.reports.for_incident(incident_id)) == 5
        [late_report] = [x for x in await rd.reports.recent(T0_FAR_PAST) if x.client_id == "client-5"]
        assert late_report.incident_id is None
    assert "client5@example.com" not in await outbox(c, "report_ack")


async def test_a_restart_catches_up_on_a_surge_whose_signal_or_links_a_crash_lost(client) -> None:
    """kill -9 between storing the report that tips a surge and handling its signal used to lose the incident."""
    from statusd.core.model import CustomerReport

    runtime = client.app[RUNTIME]
    intake, now = runtime.intake, runtime.clock.now()
    stored = [CustomerReport(source="helpdesk", client_id=f"client-{i}", text=f"card payment declined ({i})",
                             channel="chat", received_at=now - timedelta(minutes=10 - i), tags={"component": "payments"},
                             contact=("mail", f"client{i}@example.com"), created_at=now) for i in range(6)]
    async with runtime.store.transaction() as tx:  # stored and answered, then the process died: nothing detected
        await tx.reports.add_many(stored)
    await intake.detector.restart()
    await intake.rebuild(24)
    async with runtime.store.read() as rd:
        [incident] = await rd.incidents.list_open()
        assert len(await rd.reports.for_incident(incident.id)) == 6
    assert await outbox(client, "report_ack") == sorted(f"client{i}@example.com" for i in range(6))
    # Another restart finds the incident open and everything linked: nothing new, nobody told twice.
    await intake.detector.restart()
    await intake.rebuild(24)
    async with runtime.store.read() as rd:
        assert [i.id for i in await rd.incidents.list_open()] == [incident.id]
        acks = [m for m in await rd.outbox.list(1000) if m.template == "report_ack"]
    assert len(acks) == 6
    # Resolved by hand since: the surge is over for the people on it, and a restart leaves it so.
    r = await client.post(f"/api/v1/incidents/{incident.id}/resolve", headers=auth(SUPPORT), json={"body": "Fixed."})
    assert r.status == 200
    await intake.detector.restart()
    await intake.rebuild(24)
    async with runtime.store.read() as rd:
        assert await rd.incidents.list_open() == []


async def seed_four_payments_reports(tmp_path, aiohttp_client) -> None:
    first = await aiohttp_client(build_app(config(tmp_path), run_probes=False, run_worker=False))
    for i in range(4):  # one client short of a surge (min_clients 5)
        r = await first.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
        assert r.status == 202
    await first.close()


async def test_the_server_answers_while_the_detector_relearns_and_detects_new_reports_after_it(
        tmp_path, aiohttp_client) -> None:
    """The start-up replay (7 s for 40,000 reports) used to keep the status page and the API down."""
    import asyncio

    await seed_four_payments_reports(tmp_path, aiohttp_client)
    app = build_app(config(tmp_path), run_probes=False, run_worker=False)
    intake, replay_may_go = app[RUNTIME].intake, asyncio.Event()
    replay = intake.detector.rebuild

    async def held_replay(reports):
        await replay_may_go.wait()
        return await replay(reports)

    intake.detector.rebuild = held_replay  # type: ignore[method-assign]
    client = await asyncio.wait_for(aiohttp_client(app), 10)  # before: start-up waited for the replay
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/")).status == 200
    r = await asyncio.wait_for(client.post("/api/v1/reports", headers=auth(),
                                           json=report(4, tags={"component": "payments"})), 10)
    assert r.status == 202  # stored, and answered without waiting for the history to be relearnt
    assert (await r.json())["report"] == {"id": 5, "duplicate": False, "incident_id": None, "detection": "pending"}
    async with app[RUNTIME].store.read() as rd:
        assert await rd.incidents.list_open() == []
    assert (await scrape(client))[("statusd_report_detector_warming", ())] == 1
    replay_may_go.set()
    await asyncio.wait_for(intake.replayed(), 10)
    assert (await scrape(client))[("statusd_report_detector_warming", ())] == 0
    for _ in range(250):  # detected after the history: the fifth client makes the surge
        async with app[RUNTIME].store.read() as rd:
            if opened := await rd.incidents.list_open():
                break
        await asyncio.sleep(0.02)
    [incident] = opened
    async with app[RUNTIME].store.read() as rd:
        assert len(await rd.reports.for_incident(incident.id)) == 5
    assert await outbox(client, "report_ack") == sorted(f"client{i}@example.com" for i in range(5))


async def test_a_start_up_replay_that_fails_is_relearnt_before_the_next_report_is_detected(
        tmp_path, aiohttp_client) -> None:
    """The detector's process died during the replay: the next report used to meet an empty detector."""
    import os
    import signal

    await seed_four_payments_reports(tmp_path, aiohttp_client)
    app = build_app(config(tmp_path), run_probes=False, run_worker=False)
    intake = app[RUNTIME].intake
    replay, calls = intake.detector.rebuild, []

    async def dying_once(reports):
        calls.append(len(reports))
        if len(calls) == 1:
            os.kill(await intake.detector.pid(), signal.SIGKILL)
        return await replay(reports)

    intake.detector.rebuild = dying_once  # type: ignore[method-assign]
    client = await aiohttp_client(app)
    await intake.replayed()  # failed; a report meanwhile would be answered "detection pending"
    r = await client.post("/api/v1/reports", headers=auth(), json=report(4, tags={"component": "payments"}))
    assert r.status == 202 and (await r.json())["report"]["incident_id"] is not None  # the fifth client: a surge
    assert calls == [4, 4]  # the failed replay, then the relearning before the fifth report


async def test_a_shutdown_during_the_start_up_replay_answers_waiting_reports_without_relearning(
        tmp_path, aiohttp_client) -> None:
    import asyncio
    import os
    import signal

    await seed_four_payments_reports(tmp_path, aiohttp_client)
    app = build_app(config(tmp_path), run_probes=False, run_worker=False)
    intake, calls, pids = app[RUNTIME].intake, [], []
    replay = intake.detector.rebuild

    async def stuck(reports):  # the child is busy with a long history (7 s for 40,000 reports)
        calls.append(len(reports))
        pids.append(await intake.detector.pid())
        os.kill(pids[-1], signal.SIGSTOP)
        return await replay(reports)

    intake.detector.rebuild = stuck  # type: ignore[method-assign]
    client = await aiohttp_client(app)
    # The answer is the barrier: during the replay a report is answered as soon as it is stored.
    r = await asyncio.wait_for(client.post("/api/v1/reports", headers=auth(),
                                           json=report(4, tags={"component": "payments"})), 10)
    assert r.status == 202 and (await r.json())["report"]["incident_id"] is None  # stored; a restart replays it
    assert (await r.json())["report"]["detection"] == "pending"
    try:
        await asyncio.wait_for(intake.close(), 10)  # what the app's shutdown does first
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    assert calls == [4]  # no second replay during the shutdown
    assert app[RUNTIME].metrics.registry.get_sample_value("statusd_reports_undetected_total",
                                                          {"reason": "shutdown"}) == 1
    async with app[RUNTIME].store.read() as rd:
        assert len(await rd.reports.recent(T0_FAR_PAST)) == 5


async def test_a_restart_links_the_reports_of_a_surge_whose_incident_opened_before_the_crash(client) -> None:
    from statusd.core.model import ComponentStatus, CustomerReport, Signal

    runtime = client.app[RUNTIME]
    intake, now = runtime.intake, runtime.clock.now()
    async with runtime.store.transaction() as tx:
        await tx.reports.add_many([CustomerReport(
            source="helpdesk", client_id=f"client-{i}", text="card payment declined", channel="chat",
            received_at=now - timedelta(minutes=10 - i), tags={"component": "payments"},
            contact=("mail", f"client{i}@example.com"), created_at=now) for i in range(5)])
    # The surge's signal was handled, then the process died before the link transaction.
    opened = await runtime.coordinator.handle(Signal(
        source="reports", dedup_key="reports:component:payments", components=("payments",),
        severity=ComponentStatus.DEGRADED_PERFORMANCE, summary="payments: customer reports surge", at=now))
    await intake.detector.restart()
    await intake.rebuild(24)
    async with runtime.store.read() as rd:
        assert [i.id for i in await rd.incidents.list_open()] == [opened.id]
        assert len(await rd.reports.for_incident(opened.id)) == 5
    assert await outbox(client, "report_ack") == sorted(f"client{i}@example.com" for i in range(5))


@pytest.mark.parametrize("killed_before", [3, 4, 6])  # 4: the report that tips the surge (min_clients 5)
async def test_reports_survive_the_detector_process_dying_and_detection_resumes(client, killed_before) -> None:
    import os
    import signal

    intake = client.app[RUNTIME].intake
    results = []
    for i in range(10):
        if i == killed_before:
            os.kill(await intake.detector.pid(), signal.SIGKILL)
        r = await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
        assert r.status == 202  # stored and answered, whatever happened to the detector
        results.append((await r.json())["report"])
    # The new process learnt the reports from before the crash, then saw the one that met the dead one:
    # the surge fires at the fifth client as if nothing had happened, and nothing is counted twice.
    assert [res["incident_id"] is not None for res in results] == [False] * 4 + [True] * 6
    assert (await scrape(client))[("statusd_report_detector_restarts_total", ())] == 1
    async with client.app[RUNTIME].store.read() as r:
        [incident] = await r.incidents.list_open()
        assert len(await r.reports.for_incident(incident.id)) == 10


async def test_a_stuck_detector_process_is_replaced_and_requests_still_answer(client, monkeypatch) -> None:
    import os
    import signal

    from statusd.reports import host as report_worker

    intake = client.app[RUNTIME].intake
    for i in range(4):
        await client.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
    stuck = await intake.detector.pid()
    monkeypatch.setattr(report_worker, "CALL_TIMEOUT_S", 1.0)
    os.kill(stuck, signal.SIGSTOP)  # alive but never answering, like a detector caught in a loop
    try:
        r = await client.post("/api/v1/reports", headers=auth(), json=report(4, tags={"component": "payments"}))
        assert r.status == 202 and (await r.json())["report"]["incident_id"] is not None
        assert await intake.detector.pid() != stuck
    finally:
        try:
            os.kill(stuck, signal.SIGCONT)
        except ProcessLookupError:
            pass


async def test_a_report_the_detector_fails_on_is_stored_and_the_others_are_detected(tmp_path, aiohttp_client) -> None:
    import asyncio

    c = await aiohttp_client(build_app(config(tmp_path, detector_process=False), run_probes=False, run_worker=False))
    detector = c.app[RUNTIME].intake.detector.detector
    observe = detector.observe

    def fragile(r):
        if "boom" in r.text:
            raise ValueError("internal state at /srv/statusd")
        return observe(r)
    detector.observe = fragile
    innocent, poisoned = await asyncio.gather(
        c.post("/api/v1/reports", headers=auth(), json=report(1, "card payment declined")),
        c.post("/api/v1/reports", headers=auth(), json=report(2, "boom")))
    assert innocent.status == 202 and poisoned.status == 202
    assert (await innocent.json())["report"]["group"]
    body = await poisoned.json()
    assert "group" not in body["report"] and "srv" not in json.dumps(body)  # stored; no internals leak
    assert (await scrape(c))[("statusd_reports_undetected_total", (("reason", "detector_failed"),))] == 1


async def test_the_detector_gives_the_same_answers_in_a_child_process_and_inline(tmp_path, aiohttp_client) -> None:
    answers = {}
    for inline in (False, True):
        folder = tmp_path / ("inline" if inline else "process")
        app = build_app(config(folder, detector_process=not inline), run_probes=False, run_worker=False)
        c = await aiohttp_client(app)
        texts = ["card payment declined", "cannot log in to the app", "card payment declined again",
                 "не проходит оплата картой", "login page is broken"]
        got = []
        for i in range(30):
            r = await c.post("/api/v1/reports", headers=auth(), json=report(i, texts[i % len(texts)]))
            res = (await r.json())["report"]
            got.append((res["group"], res["incident_id"]))
        answers[inline] = got
        assert type(c.app[RUNTIME].intake.detector).__name__ == ("InlineDetector" if inline else "ProcessDetector")
    assert answers[False] == answers[True]


def test_the_detector_runs_numpy_s_blas_on_one_thread() -> None:
    """Split over two cores, its small products spin a helper thread: about 40 % more CPU in a server."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from statusd.reports.host import InlineDetector
    from statusd.reports.spec import DetectorSpec

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("threadpoolctl sees no BLAS here (e.g. numpy on Apple's Accelerate)")
    with threadpool_limits(limits=2, user_api="blas"):  # restores this process's setting afterwards
        assert blas_threads() == {2}
        InlineDetector(DetectorSpec().build)  # the child process calls the same function first thing
        assert blas_threads() == {1}


# --- a text model fitted on the operator's history ---------------------------------------------


async def test_a_fitted_model_configured_in_reports_groups_paraphrases(tmp_path, aiohttp_client) -> None:
    """`statusd fit-model` on a labelled history, `[reports] model = ...`: the detector's process uses it."""
    from statusd.cli import fit_model
    from tests.support.reports import paraphrase_history_csv

    history = tmp_path / "history.csv"
    history.write_text(paraphrase_history_csv(), encoding="utf-8")
    model = tmp_path / "model.npz"
    assert fit_model.main([str(history), str(model)]) == 0
    texts = ["refund please", "I want my money back", "refund please now", "my money back please", "refund me",
             "money back"]
    outcome = {}
    for name, extra in (("plain", {}), ("fitted", {"model": str(model)})):
        c = await aiohttp_client(build_app(config(tmp_path / name, **extra), run_probes=False, run_worker=False))
        results = []
        start = datetime.now(UTC) - timedelta(minutes=20)
        for i, text in enumerate(texts):  # over ten minutes, like a real burst: the periodic merge runs between
            at = (start + timedelta(minutes=2 * i)).isoformat()
            r = await c.post("/api/v1/reports", headers=auth(), json={"client_id": f"c{i}", "text": text,
                                                                     "received_at": at})
            results.append((await r.json())["report"])
        outcome[name] = ({res["group"] for res in results}, {res["incident_id"] for res in results} - {None})
    plain_groups, plain_incidents = outcome["plain"]
    fitted_groups, fitted_incidents = outcome["fitted"]
    # Plain n-grams split "refund" from "money back", so no group reaches five clients; the fitted
    # model learnt from the history that both ask for the money back: one surge, one incident.
    assert len(plain_groups) >= 2 and plain_incidents == set()
    assert len(fitted_incidents) == 1


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param({"model": "missing.npz"}, "no such file", id="missing"),
    pytest.param({"model": "garbage.npz"}, "not a report model file", id="garbage"),
    pytest.param({"model": "garbage.npz", "encoder": "use"}, "replaces TF-IDF", id="with-use"),
])
def test_a_bad_model_setting_is_a_config_error_naming_the_key(tmp_path, monkeypatch, extra, message) -> None:
    from statusd.core.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.npz").write_text("not a model", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_app(config(tmp_path, **extra), run_probes=False, run_worker=False)
    assert [path for path, _ in caught.value.problems] == ["reports.model"]
    assert message in caught.value.problems[0][1]


async def test_shutdown_finishes_the_reports_already_accepted(client) -> None:
    import asyncio

    from statusd.reports.validation import ReportValidator

    runtime = client.app[RUNTIME]
    intake = runtime.intake
    validator = ReportValidator(runtime.clock, components={cid: c.name for cid, c in runtime.config.components.items()},
                                notifiers=runtime.config.notifiers)
    queued = [asyncio.create_task(intake.ingest([validator.parse(report(i), "", "api:helpdesk")])) for i in range(20)]
    await asyncio.sleep(0)  # every request is waiting for a commit
    await intake.close()  # what the app does on SIGTERM, before the store closes
    results = [res for [res] in await asyncio.gather(*queued)]
    assert len({res["id"] for res in results}) == 20 and all(res["group"] for res in results)
    async with client.app[RUNTIME].store.read() as r:
        assert len(await r.reports.recent(T0_FAR_PAST)) == 20


async def test_encoder_auto_builds_with_the_thresholds_of_what_it_resolves_to(tmp_path, aiohttp_client) -> None:
    """"auto" has no thresholds of its own: it resolves to blend (with the extra) or tfidf."""
    c = await aiohttp_client(build_app(config(tmp_path, encoder="auto", detector_process=False),
                                       run_probes=False, run_worker=False))
    r = await c.post("/api/v1/reports", headers=auth(), json=report(1))
    assert r.status == 202
    detector = c.app[RUNTIME].intake.detector.detector
    assert detector.clusterer.encoder.kind in ("tfidf", "blend")
