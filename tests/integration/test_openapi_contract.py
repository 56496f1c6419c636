"""The OpenAPI document keeps up with the server: every route is described, answers match it, README lists it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis

from statusd.api.openapi import OPENAPI_ROUTE, document
from statusd.app import build_app
from statusd.web.signing import Signer
from statusd.web.urls import ack_url, ical_url
from tests.support.openapi import (ADMIN, HEARTBEAT, READER, SUPPORT, TELEGRAM_SECRET, check_answer,
                                   openapi_config)

README = Path(__file__).resolve().parents[2] / "README.md"
METHODS = ("get", "put", "post", "delete", "patch")


def described() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document()["paths"].items() for method in item
            if method in METHODS}


def registered(app) -> set[tuple[str, str]]:
    # add_get also registers HEAD for the same handler; HEAD is implied by GET in the document.
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None}


def test_every_registered_route_is_described_and_every_described_route_exists(tmp_path) -> None:
    app = build_app(openapi_config(tmp_path), run_probes=False, run_worker=False)
    routes, doc = registered(app), described()
    assert routes - doc == set(), "registered but not in statusd/api/openapi.py"
    assert doc - routes == set(), "described in statusd/api/openapi.py but not registered"


def test_every_operation_states_its_auth_and_its_body_and_answers() -> None:
    doc = document()
    schemes = set(doc["components"]["securitySchemes"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert "security" in op, f"{where}: no security (use [] for a public route)"
            for requirement in op["security"]:
                assert set(requirement) <= schemes, where
            if op["security"] == [{"bearer": []}]:
                assert "x-scope" in op, f"{where}: a token route names its scope (null for any token)"
                assert {"401", "403"} <= set(op["responses"]), f"{where}: token routes answer 401 and 403"
            assert any(code.startswith("2") for code in op["responses"]), f"{where}: no success answer"
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None and "$ref" not in body and body.get("additionalProperties") is False:
                # A strict body names its fields and which are required.
                assert set(body["required"]) <= set(body["properties"]), where


def test_the_document_is_valid_openapi_3_1() -> None:
    # Against the OpenAPI 3.1 meta-schema, as schemathesis carries it; raises naming the place at fault.
    assert document()["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document()).validate()


def test_every_schema_is_valid_json_schema_and_every_reference_resolves() -> None:
    doc = document()
    refs = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    for ref in refs:
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"], ref
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)


def readme_operations() -> set[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## HTTP API\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    found = set()
    for row in rows:
        # `GET\|POST /path` (a table cell escapes its `|`) is both methods.
        for methods, path in re.findall(r"`((?:GET|POST|PUT|DELETE)(?:\\?\|(?:GET|POST|PUT|DELETE))*) (/[^`?\s]*)", row):
            found |= {(method, path) for method in methods.replace("\\", "").split("|")}
    return found


def test_readme_http_api_tables_list_exactly_the_documented_routes() -> None:
    readme, doc = readme_operations(), described()
    assert readme - doc == set(), "in README's HTTP API tables but not in the document"
    assert doc - readme == set(), "in the document but not in README's HTTP API tables"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    return await aiohttp_client(build_app(openapi_config(tmp_path), run_probes=False, run_worker=False))


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Checked:
    """Sends requests through the test client and checks each answer against the document."""

    def __init__(self, client) -> None:
        self.client = client
        self.doc = document()
        self.seen: set[tuple[str, str]] = set()

    async def __call__(self, method: str, template: str, url: str | None = None, expect: int | None = None,
                       **kwargs: Any) -> Any:
        response = await self.client.request(method, url or template, **kwargs)
        raw = await response.read()
        body = await response.json() if response.content_type == "application/json" and raw else None
        if expect is not None:
            assert response.status == expect, (method, url or template, response.status, raw[:500])
        check_answer(self.doc, method, template, response.status, response.content_type if raw else None, body)
        self.seen.add((method, template))
        return body


async def test_real_answers_match_the_documented_schemas(client) -> None:
    call = Checked(client)
    doc = await call("GET", OPENAPI_ROUTE, expect=200)
    assert doc == document()

    opened = await call("POST", "/api/v1/incidents", json={
        "title": "Checkout errors", "body": "Some card payments fail.", "components": ["web"],
        "component_status": "partial_outage"}, headers=auth(SUPPORT), expect=201)
    iid = opened["incident"]["id"]
    other = (await call("POST", "/api/v1/incidents", json={"title": "Second", "body": "Another."},
                        headers=auth(SUPPORT), expect=201))["incident"]["id"]
    one = "/api/v1/incidents/{id}"
    await call("GET", one, f"/api/v1/incidents/{iid}", headers=auth(READER), expect=200)
    await call("GET", one, "/api/v1/incidents/x", headers=auth(READER), expect=400)
    await call("GET", one, "/api/v1/incidents/999", headers=auth(READER), expect=404)
    await call("GET", one, f"/api/v1/incidents/{iid}", expect=401)
    await call("POST", one + "/updates", f"/api/v1/incidents/{iid}/updates", headers=auth(SUPPORT),
               json={"body": "Cause identified.", "status": "identified"}, expect=201)
    await call("POST", one + "/updates", f"/api/v1/incidents/{iid}/updates", headers=auth(READER),
               json={"body": "x"}, expect=403)
    await call("POST", one + "/updates", f"/api/v1/incidents/{iid}/updates", headers=auth(SUPPORT),
               json={"body": "x", "status": "sideways"}, expect=400)
    await call("POST", one + "/acknowledge", f"/api/v1/incidents/{iid}/acknowledge", headers=auth(SUPPORT),
               expect=200)
    await call("POST", one + "/acknowledge", f"/api/v1/incidents/{iid}/acknowledge", headers=auth(SUPPORT),
               expect=409)
    await call("PUT", one + "/comms", f"/api/v1/incidents/{iid}/comms", headers=auth(SUPPORT),
               json={"person": "ann"}, expect=200)
    await call("POST", one + "/handoff", f"/api/v1/incidents/{iid}/handoff", headers=auth(SUPPORT),
               json={"to": "ann", "note": "yours"})
    await call("POST", one + "/merge", f"/api/v1/incidents/{other}/merge", headers=auth(SUPPORT),
               json={"into": iid}, expect=200)
    await call("POST", one + "/resolve", f"/api/v1/incidents/{iid}/resolve", headers=auth(SUPPORT),
               json={"body": "Fixed."}, expect=200)
    await call("POST", one + "/postmortem", f"/api/v1/incidents/{iid}/postmortem", headers=auth(SUPPORT),
               json={"body": "# What happened"}, expect=201)
    await call("POST", "/api/v1/incidents", data=b"\x00" * 70_000, headers=auth(SUPPORT), expect=413)
    await call("POST", "/api/v1/incidents", data=b"{}", headers={**auth(SUPPORT), "Content-Encoding": "x"},
               expect=415)

    await call("PUT", "/api/v1/components/{id}", "/api/v1/components/api", headers=auth(SUPPORT),
               json={"status": "degraded_performance"}, expect=200)
    await call("PUT", "/api/v1/components/{id}", "/api/v1/components/nope", headers=auth(SUPPORT),
               json={"status": "operational"}, expect=404)
    added = await call("POST", "/api/v1/subscribers", headers=auth(SUPPORT),
                       json={"notifier": "mail", "target": "ops@example.com", "components": ["api"]}, expect=201)
    await call("POST", "/api/v1/subscribers", headers=auth(SUPPORT), json={"notifier": "nope", "target": "x"},
               expect=400)
    await call("GET", "/api/v1/subscribers", headers=auth(SUPPORT), expect=200)
    sid = added["subscriber"]["id"]
    await call("DELETE", "/api/v1/subscribers/{id}", f"/api/v1/subscribers/{sid}", headers=auth(SUPPORT),
               expect=200)
    await call("DELETE", "/api/v1/subscribers/{id}", f"/api/v1/subscribers/{sid}", headers=auth(SUPPORT),
               expect=404)
    await call("GET", "/api/v1/outbox", headers=auth(), expect=200)
    await call("GET", "/api/v1/outbox", headers=auth(SUPPORT), expect=403)
    await call("GET", "/api/v1/kpis", "/api/v1/kpis?days=30", headers=auth(READER), expect=200)
    await call("GET", "/api/v1/kpis", "/api/v1/kpis?days=0", headers=auth(READER), expect=400)
    await call("GET", "/api/v1/oncall", headers=auth(READER), expect=200)
    schedules = await call("GET", "/api/v1/schedules", headers=auth(READER), expect=200)
    await call("GET", "/api/v1/schedules/{id}/shifts", "/api/v1/schedules/primary/shifts", headers=auth(READER),
               expect=200)
    await call("GET", "/api/v1/schedules/{id}/shifts", "/api/v1/schedules/nope/shifts", headers=auth(READER),
               expect=404)

    report = {"client_id": "c1", "text": "cannot pay by card", "tags": {"component": "api"}, "external_id": "t-1"}
    await call("POST", "/api/v1/reports", headers=auth(SUPPORT), json=report, expect=202)
    await call("POST", "/api/v1/reports", headers=auth(SUPPORT), json=report, expect=200)
    await call("POST", "/api/v1/reports/batch", headers=auth(SUPPORT), expect=202,
               json={"reports": [{"client_id": "c2", "text": "card payment fails"}]})
    await call("POST", "/api/v1/reports/batch", headers=auth(SUPPORT), json={"reports": []}, expect=400)
    await call("GET", "/api/v1/incidents/{id}/reports", f"/api/v1/incidents/{iid}/reports", headers=auth(READER),
               expect=200)

    alert = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "Down", "component": "api"}, "fingerprint": "f1"}]}
    await call("POST", "/api/v1/alerts/alertmanager", json=alert, expect=200)
    await call("POST", "/api/v1/alerts/alertmanager", json={"alerts": "no"}, expect=400)
    await call("POST", "/api/v1/alerts/grafana", json=alert, expect=200)
    await call("POST", "/api/v1/alerts/pagerduty", json={"event_action": "trigger"}, expect=400)
    await call("POST", "/v2/enqueue", json=[], expect=400)
    heartbeat = "/api/v1/heartbeat/{token}"
    await call("POST", heartbeat, f"/api/v1/heartbeat/{HEARTBEAT}", expect=200)
    await call("GET", heartbeat, f"/api/v1/heartbeat/{HEARTBEAT}", expect=200)
    await call("GET", heartbeat, "/api/v1/heartbeat/unknown-token", expect=404)
    telegram = "/telegram/{notifier}/webhook"
    await call("POST", telegram, "/telegram/tg/webhook", json={"update_id": 1}, expect=401)
    await call("POST", telegram, "/telegram/tg/webhook", data=b"[", expect=400,
               headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    await call("POST", telegram, "/telegram/tg/webhook", json={"update_id": 1}, expect=200,
               headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    await call("POST", telegram, "/telegram/nope/webhook", json={"update_id": 1}, expect=404)

    for path, item in document()["paths"].items():
        if path.startswith("/api/v2/"):
            await call("GET", path, expect=200)
    await call("GET", "/api/v1/uptime", "/api/v1/uptime?days=7", expect=200)
    await call("GET", "/api/v1/uptime", "/api/v1/uptime?days=-1", expect=400)
    await call("GET", "/healthz", expect=200)
    await call("GET", "/metrics", expect=200)
    await call("GET", "/", expect=200)
    await call("GET", "/incidents/{id}", f"/incidents/{iid}", expect=200)
    await call("GET", "/incidents/{id}", "/incidents/0", expect=404)
    await call("GET", "/static/style.css", expect=200)
    await call("GET", "/report", expect=200)
    await call("POST", "/report", data={"text": "the site is down", "component": "web", "website": ""})
    signer = Signer("openapi-test-secret-key-0123456789")
    ical = ical_url("", signer, "primary")
    assert schedules["schedules"][0]["ical_url"].endswith(ical)
    await call("GET", "/schedules/{id}.ics", ical, expect=200)
    await call("GET", "/schedules/{id}.ics", "/schedules/primary.ics?sig=wrong", expect=401)
    ack = "/ack/{id}/{person}/{sig}"
    link = ack_url("", signer, other, "ann")
    await call("GET", ack, link, expect=200)
    await call("POST", ack, link, expect=200)
    await call("GET", ack, f"/ack/{other}/ann/wrong", expect=403)

    # Every documented operation was tried at least once above.
    assert described() - call.seen == set()
