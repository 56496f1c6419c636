"""Alertmanager, Grafana and PagerDuty events become Signals: one incident per alert; bad input writes nothing."""

from __future__ import annotations

import asyncio
import base64
import copy
import gzip
import json
import logging
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from statusd.alerts.config import AlertRule, AlertsConfig
from statusd.alerts.mapping import AlertMapper, Target
from statusd.incidents.coordinator import Coordinator
from statusd.core.model import (
    ComponentStatus,
    EntryKind,
    Impact,
    IncidentStatus,
)
from statusd.core.schema import Problems, Secret, load_section
from statusd.store.sqlite import SqliteStore
from tests.conftest import assert_no_secret
from tests.support.alerts import (
    BILLING_KEY, CONFIG, OPS_KEY, TOKEN, all_incidents, am_alert, am_payload, build_app, build_coordinator,
)

SECRETS = (TOKEN, BILLING_KEY, OPS_KEY)


@pytest.fixture
async def coordinator(sqlite_store, clock) -> Coordinator:
    return await build_coordinator(sqlite_store, clock)


@pytest.fixture
async def client(aiohttp_client, coordinator, clock):
    return await aiohttp_client(build_app(CONFIG, coordinator, clock))


# --- payloads --------------------------------------------------------------------------------

def grafana_payload(status: str = "firing", fingerprint: str = "c6eadffa33fcdf37") -> dict[str, Any]:
    """A Grafana unified alerting webhook body."""
    alert = am_alert(status, fingerprint, summary="Memory above 90%", alertname="HighMemory", service="web",
                     severity="warning", grafana_folder="Web")
    alert.update({"values": {"B": 91.5, "C": 1}, "valueString": "[ var='B' value=91.5 ]",
                  "silenceURL": "http://grafana.example.com/alerting/silence/new", "dashboardURL": "",
                  "panelURL": "", "imageURL": ""})
    payload = am_payload(alert)
    payload.update({"version": "1", "orgId": 1, "state": "alerting" if status == "firing" else "ok",
                    "title": "[FIRING:1] HighMemory", "message": "Memory above 90%"})
    return payload


def pd_event(action: str = "trigger", dedup_key: str | None = None, routing_key: str = BILLING_KEY,
             **payload: Any) -> dict[str, Any]:
    """A PagerDuty Events API v2 event."""
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action}
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    if action == "trigger":
        event["payload"] = {"summary": "Card payments failing", "source": "checkout-1", "severity": "critical",
                            "timestamp": "2026-03-02T08:59:58.315+0000", "custom_details": {"errors": 42},
                            **payload}
        event["client"] = "Sample Monitoring Service"
    return event


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post_am(client, payload: dict[str, Any], path: str = "/api/v1/alerts/alertmanager") -> dict[str, Any]:
    response = await client.post(path, json=payload, headers=auth())
    assert response.status == 200, await response.text()
    return await response.json()


def statusd_log(caplog: pytest.LogCaptureFixture) -> str:
    """What statusd logged (aiohttp's access log shows `?token=` query strings; statusd turns it off)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("statusd"))


async def component_status(store: SqliteStore, component_id: str) -> ComponentStatus:
    async with store.read() as r:
        component = await r.components.get(component_id)
    assert component is not None
    return component.status


# --- Alertmanager ------------------------------------------------------------------------------

async def test_firing_alert_opens_one_incident_with_the_mapped_component(client, sqlite_store, clock) -> None:
    body = await post_am(client, am_payload(am_alert()))
    [incident] = await all_incidents(sqlite_store, clock)
    assert body == {"status": "success", "alerts": [
        {"dedup_key": "alertmanager:a1b2c3d4e5f60718", "firing": True, "incident": incident.id}]}
    assert incident.components == ("api",)  # rule 1: {service}
    assert incident.impact is Impact.CRITICAL  # severity=critical → major_outage
    assert incident.source == "alertmanager"
    assert await component_status(sqlite_store, "api") is ComponentStatus.MAJOR_OUTAGE
    async with sqlite_store.read() as r:
        [signal, *_] = (await r.incidents.entries([incident.id]))[incident.id]
    assert signal.kind is EntryKind.SIGNAL and signal.body == "Error rate above 5%"
    assert signal.data["labels"]["alertname"] == "HighErrorRate"
    assert signal.data["generatorURL"].startswith("http://prometheus.example.com/")
    assert signal.data["receiver"] == "statusd" and signal.data["rule"] == 1


async def test_a_nul_in_an_alert_is_replaced_not_refused(client, sqlite_store, clock) -> None:
    """Alertmanager cannot send the alert any other way: a 400 would lose it over one character."""
    alert = am_alert(summary="Error rate\u0000 above 5%", instance="api-1\u0000")
    await post_am(client, am_payload(alert))
    r = await client.post("/v2/enqueue", json=pd_event(dedup_key="nul", summary="Card\u0000 payments failing"))
    assert r.status == 202, await r.text()
    incidents = await all_incidents(sqlite_store, clock)
    assert len(incidents) == 2
    async with sqlite_store.read() as rd:
        entries = await rd.incidents.entries([i.id for i in incidents])
    bodies = sorted(e.body for i in incidents for e in entries[i.id] if e.kind is EntryKind.SIGNAL)
    assert bodies == ["Card\ufffd payments failing", "Error rate\ufffd above 5%"]
    [am] = [e for i in incidents for e in entries[i.id] if e.kind is EntryKind.SIGNAL and e.data.get("labels")]
    assert am.data["labels"]["instance"] == "api-1\ufffd"
    # In a key it is refused: "a\u0000" and "a\ufffd" would become one label, and a value would be lost.
    r = await client.post("/api/v1/alerts/alertmanager", headers=auth(),
                          json=am_payload(am_alert(fingerprint="key", **{"zone\u0000": "a", "zone\ufffd": "b"})))
    assert r.status == 400 and (await r.json())["error"]["field"] == "alerts[0].labels"
    assert len(await all_incidents(sqlite_store, clock)) == 2


async def test_a_nul_deep_in_an_alert_payload_is_replaced_without_running_out_of_stack(client) -> None:
    depth = 900  # json.loads reads it; a recursive replacement, two frames a level, did not
    payload = json.dumps(am_payload(am_alert(fingerprint="deep"))).encode()
    raw = payload[:-1] + b', "extra": ' + b"[" * depth + b'"x\\u0000"' + b"]" * depth + b"}"
    r = await client.post("/api/v1/alerts/alertmanager", data=raw,
                          headers={**auth(), "Content-Type": "application/json"})
    assert r.status == 200, await r.text()


async def test_repeats_and_retries_never_open_a_second_incident(client, sqlite_store, clock) -> None:
    payload = am_payload(am_alert())
    await post_am(client, payload)
    async with sqlite_store.read() as r:
        notifications = len(await r.outbox.list(1000))
    assert notifications > 0
    await clock.advance(3600)  # repeat_interval
    await post_am(client, payload)
    # Two Alertmanager HA peers delivering the same notification at once.
    await asyncio.gather(post_am(client, payload), post_am(client, payload))
    [incident] = await all_incidents(sqlite_store, clock)
    async with sqlite_store.read() as r:
        entries = (await r.incidents.entries([incident.id]))[incident.id]
        assert len(await r.outbox.list(1000)) == notifications  # nobody hears about it twice
    assert [e.kind for e in entries].count(EntryKind.SIGNAL) == 4


async def test_resolved_alert_resolves_its_incident(client, sqlite_store, clock) -> None:
    await post_am(client, am_payload(am_alert()))
    await clock.advance(300)
    body = await post_am(client, am_payload(am_alert("resolved")))
    [incident] = await all_incidents(sqlite_store, clock)
    assert body["alerts"] == [{"dedup_key": "alertmanager:a1b2c3d4e5f60718", "firing": False, "incident": incident.id}]
    assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at == clock.now()
    assert await component_status(sqlite_store, "api") is ComponentStatus.OPERATIONAL
    # Alertmanager re-sends resolved alerts with the group; that changes nothing.
    await post_am(client, am_payload(am_alert("resolved")))
    assert len(await all_incidents(sqlite_store, clock)) == 1


async def test_resolution_without_open_incident_keeps_a_status_set_by_hand(client, coordinator, sqlite_store,
                                                                          clock) -> None:
    await coordinator.set_component_status("api", ComponentStatus.DEGRADED_PERFORMANCE)
    body = await post_am(client, am_payload(am_alert("resolved")))
    assert body["alerts"][0]["incident"] is None
    assert await all_incidents(sqlite_store, clock) == []
    assert await component_status(sqlite_store, "api") is ComponentStatus.DEGRADED_PERFORMANCE


async def test_grouped_payload_opens_one_incident_per_alert(client, sqlite_store, clock) -> None:
    body = await post_am(client, am_payload(
        am_alert(fingerprint="0000000000000001", service="api"),
        am_alert(fingerprint="0000000000000002", service="web", severity="warning")))
    incidents = await all_incidents(sqlite_store, clock)
    assert sorted((i.dedup_key, i.components, i.impact) for i in incidents) == [
        ("alertmanager:0000000000000001", ("api",), Impact.CRITICAL),
        ("alertmanager:0000000000000002", ("web",), Impact.MAJOR)]
    assert [a["incident"] for a in body["alerts"]] == [
        next(i.id for i in incidents if i.components == (c,)) for c in ("api", "web")]
    # The next group notification: api resolved, web still firing.
    await post_am(client, am_payload(am_alert("resolved", "0000000000000001", service="api"),
                                     am_alert(fingerprint="0000000000000002", service="web", severity="warning")))
    async with sqlite_store.read() as r:
        assert [i.components for i in await r.incidents.list_open()] == [("web",)]


async def test_alert_without_fingerprint_is_keyed_by_its_label_set(client, sqlite_store, clock) -> None:
    first = am_alert(fingerprint=None)
    reordered = am_alert(fingerprint=None)
    reordered["labels"] = dict(reversed(list(first["labels"].items())))
    a = await post_am(client, am_payload(first))
    b = await post_am(client, am_payload(reordered))
    assert a["alerts"][0]["dedup_key"] == b["alerts"][0]["dedup_key"]
    assert a["alerts"][0]["dedup_key"].startswith("alertmanager:labels-")
    assert len(await all_incidents(sqlite_store, clock)) == 1
    await post_am(client, am_payload(am_alert(fingerprint=None, instance="other:9100")))
    assert len(await all_incidents(sqlite_store, clock)) == 2
    blank = await post_am(client, am_payload(am_alert(fingerprint="   ")))  # a blank fingerprint is none
    assert blank["alerts"][0]["dedup_key"] == a["alerts"][0]["dedup_key"]


async def test_unknown_component_is_accepted_without_it(client, sqlite_store, clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="statusd.alerts.intake")
    alert = am_alert(alertname="DiskFull", service="batch", component="warehouse", severity="info")
    await post_am(client, am_payload(alert))
    [incident] = await all_incidents(sqlite_store, clock)
    assert incident.components == () and incident.impact is Impact.MINOR
    async with sqlite_store.read() as r:
        [signal, *_] = (await r.incidents.entries([incident.id]))[incident.id]
    assert signal.data["unmapped_components"] == ["warehouse"] and signal.data["rule"] == "default"
    assert "'warehouse'" in caplog.text


@pytest.mark.parametrize("headers, query", [
    pytest.param({"Authorization": f"Bearer {TOKEN}"}, "", id="bearer"),
    pytest.param({"Authorization": f"bearer  {TOKEN} "}, "", id="bearer-lowercase"),
    pytest.param({}, f"?token={TOKEN}", id="query"),
    pytest.param({"Authorization": "Basic " + base64.b64encode(f"grafana:{TOKEN}".encode()).decode()}, "",
                 id="basic-password"),
])
async def test_token_is_accepted_in_every_documented_place(client, sqlite_store, clock, headers, query) -> None:
    response = await client.post("/api/v1/alerts/alertmanager" + query, json=am_payload(), headers=headers)
    assert response.status == 200, await response.text()
    assert len(await all_incidents(sqlite_store, clock)) == 1


async def test_without_a_token_configured_the_webhooks_are_open(aiohttp_client, coordinator, sqlite_store,
                                                               clock) -> None:
    client = await aiohttp_client(build_app(AlertsConfig(), coordinator, clock))
    response = await client.post("/api/v1/alerts/alertmanager", json=am_payload())
    assert response.status == 200
    [incident] = await all_incidents(sqlite_store, clock)
    assert incident.components == ()  # no rules: the `service` label alone names no component


# --- Grafana -------------------------------------------------------------------------------------

async def test_grafana_alert_opens_and_resolves_its_own_incident(client, sqlite_store, clock) -> None:
    await post_am(client, am_payload(am_alert(fingerprint="c6eadffa33fcdf37")))  # same fingerprint, other sender
    body = await post_am(client, grafana_payload(), path="/api/v1/alerts/grafana")
    assert body["alerts"][0]["dedup_key"] == "grafana:c6eadffa33fcdf37"
    incidents = {i.source: i for i in await all_incidents(sqlite_store, clock)}
    grafana = incidents["grafana"]
    assert grafana.components == ("web",) and grafana.impact is Impact.MAJOR  # warning → partial_outage
    async with sqlite_store.read() as r:
        [signal, *_] = (await r.incidents.entries([grafana.id]))[grafana.id]
    assert signal.data["values"] == {"B": 91.5, "C": 1} and signal.data["orgId"] == 1
    await post_am(client, grafana_payload("resolved"), path="/api/v1/alerts/grafana")
    incidents = {i.source: i for i in await all_incidents(sqlite_store, clock)}
    assert incidents["grafana"].status is IncidentStatus.RESOLVED
    assert incidents["alertmanager"].status is IncidentStatus.INVESTIGATING


# --- PagerDuty Events v2 ---------------------------------------------------------------------------

async def test_pagerduty_trigger_acknowledge_resolve(client, sqlite_store, clock) -> None:
    responses = []
    r = await client.post("/v2/enqueue", json=pd_event())
    responses.append(await r.text())
    assert r.status == 202
    body = await r.json()
    dedup = body["dedup_key"]
    assert body == {"status": "success", "message": "Event processed", "dedup_key": dedup} and len(dedup) == 32
    [incident] = await all_incidents(sqlite_store, clock)
    assert incident.dedup_key == f"pagerduty:billing:{dedup}"
    assert incident.components == ("payments",) and incident.impact is Impact.CRITICAL

    await clock.advance(60)
    for path, event in [("/api/v1/alerts/pagerduty", pd_event(dedup_key=dedup)),  # a repeat joins
                        ("/v2/enqueue", pd_event("acknowledge", dedup)),
                        ("/v2/enqueue", pd_event("acknowledge", dedup))]:  # already acknowledged: still fine
        r = await client.post(path, json=event)
        responses.append(await r.text())
        assert r.status == 202 and (await r.json())["dedup_key"] == dedup
    [incident] = await all_incidents(sqlite_store, clock)
    assert incident.acknowledged_by == "PagerDuty event (billing)" and incident.acknowledged_at == clock.now()

    await clock.advance(60)
    r = await client.post("/api/v1/alerts/pagerduty", json=pd_event("resolve", dedup))
    responses.append(await r.text())
    assert r.status == 202
    [incident] = await all_incidents(sqlite_store, clock)
    assert incident.status is IncidentStatus.RESOLVED
    assert await component_status(sqlite_store, "payments") is ComponentStatus.OPERATIONAL
    for text in responses:
        assert_no_secret(text, *SECRETS)


async def test_pagerduty_dedup_keys_are_per_integration(client, sqlite_store, clock) -> None:
    await client.post("/v2/enqueue", json=pd_event(dedup_key="disk-1"))
    r = await client.post("/v2/enqueue", json=pd_event(dedup_key="disk-1", routing_key=OPS_KEY, component="db",
                                                       severity="warning"))
    assert r.status == 202
    incidents = {i.dedup_key: i for i in await all_incidents(sqlite_store, clock)}
    assert set(incidents) == {"pagerduty:billing:disk-1", "pagerduty:ops:disk-1"}
    ops = incidents["pagerduty:ops:disk-1"]
    assert ops.components == ("db",) and ops.impact is Impact.MAJOR  # default mapping: payload.component
    await client.post("/v2/enqueue", json=pd_event("resolve", "disk-1", routing_key=OPS_KEY))
    async with sqlite_store.read() as r:
        assert [i.dedup_key for i in await r.incidents.list_open()] == ["pagerduty:billing:disk-1"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
async def test_pagerduty_event_for_unknown_dedup_key_is_accepted_and_changes_nothing(client, sqlite_store, clock,
                                                                                     action) -> None:
    r = await client.post("/v2/enqueue", json=pd_event(action, "never-triggered"))
    assert r.status == 202 and (await r.json())["dedup_key"] == "never-triggered"
    assert await all_incidents(sqlite_store, clock) == []


# --- bad input: nothing written, status and field named, no secret echoed -------------------------

def changed(payload: dict[str, Any], path: tuple[Any, ...], value: Any = ...) -> dict[str, Any]:
    """A deep copy of `payload` with the item at `path` set to `value` (or removed when `value` is ...)."""
    out = copy.deepcopy(payload)
    node = out
    for step in path[:-1]:
        node = node[step]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


AM = "/api/v1/alerts/alertmanager"
GRAFANA = "/api/v1/alerts/grafana"
GOOD = am_payload(am_alert(), am_alert(fingerprint="0000000000000002", service="web"))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


BAD_WEBHOOKS = [
    pytest.param(AM, {}, GOOD, 401, "Authorization", id="no-token"),
    pytest.param(AM, auth("wrong-token-0123456789"), GOOD, 401, "Authorization", id="wrong-bearer"),
    pytest.param(AM + "?token=wrong", {}, GOOD, 401, "Authorization", id="wrong-query-token"),
    pytest.param(AM + f"?token={TOKEN}", auth("wrong"), GOOD, 401, "Authorization", id="header-wins-over-query"),
    pytest.param(AM, {"Authorization": f"Token {TOKEN}"}, GOOD, 401, "Authorization", id="unknown-scheme"),
    pytest.param(AM, basic("grafana", "wrong"), GOOD, 401, "Authorization", id="wrong-basic-password"),
    pytest.param(GRAFANA, {}, grafana_payload(), 401, "Authorization", id="grafana-no-token"),
    pytest.param(AM, auth(), b"{not json", 400, "body", id="not-json"),
    pytest.param(AM, auth(), b"", 400, "body", id="empty-body"),
    pytest.param(AM, auth(), b"\xff\xfe", 400, "body", id="not-utf8"),
    pytest.param(AM, auth(), b"[" * 5000 + b"]" * 5000, 400, "body", id="nested-too-deeply"),
    pytest.param(AM, auth(), [GOOD], 400, "body", id="json-array"),
    pytest.param(AM, auth(), b"x" * 16385, 413, "body", id="too-large"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts",)), 400, "alerts", id="alerts-missing"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts",), {}), 400, "alerts", id="alerts-not-a-list"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0), "HighErrorRate"), 400, "alerts[0]", id="alert-not-object"),
    pytest.param(AM, auth(), changed(GOOD, ("version",), "3"), 400, "version", id="unsupported-version"),
    pytest.param(AM, auth(), changed(GOOD, ("status",), "pending"), 400, "status", id="group-status"),
    pytest.param(AM, auth(), changed(GOOD, ("commonLabels",), ["a"]), 400, "commonLabels", id="common-labels"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "status")), 400, "alerts[0].status", id="status-missing"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "status"), "pending"), 400, "alerts[0].status",
                 id="status-unknown"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "labels")), 400, "alerts[0].labels", id="labels-missing"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "labels", "severity"), 3), 400, "alerts[0].labels.severity",
                 id="label-not-string"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "annotations"), "x"), 400, "alerts[0].annotations",
                 id="annotations-not-object"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "startsAt"), "yesterday"), 400, "alerts[0].startsAt",
                 id="startsAt-garbage"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "startsAt"), "2026-03-02T09:00:00"), 400,
                 "alerts[0].startsAt", id="startsAt-without-zone"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "endsAt"), "2026-13-02T09:00:00Z"), 400,
                 "alerts[0].endsAt", id="endsAt-month-13"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 0, "fingerprint"), 42), 400, "alerts[0].fingerprint",
                 id="fingerprint-not-string"),
    pytest.param(AM, auth(), changed(GOOD, ("alerts", 1, "labels"), None), 400, "alerts[1].labels",
                 id="second-alert-bad-first-not-written"),
    pytest.param(GRAFANA, auth(), changed(grafana_payload(), ("alerts", 0, "values", "B"), "91.5"), 400,
                 "alerts[0].values.B", id="grafana-value-not-number"),
    pytest.param(GRAFANA, auth(), changed(grafana_payload(), ("orgId",), "1"), 400, "orgId", id="grafana-orgId"),
    # Found by an adversarial pass: each of these was a 500 (or, for 1e999, an Infinity stored in the timeline).
    pytest.param(AM, {"Authorization": "Basic \u00e9"}, GOOD, 401, "Authorization", id="basic-not-ascii"),
    pytest.param(AM, {"Content-Encoding": "gzip", **auth()}, json.dumps(GOOD).encode(), 400, "body",
                 id="body-not-its-content-encoding"),
    pytest.param(AM, {"Content-Encoding": "gzip", **auth()}, gzip.compress(json.dumps(GOOD).encode())[:-6], 400, "body",
                 id="gzip-cut-short"),
    pytest.param(AM, {"Content-Encoding": "gzip", **auth()}, gzip.compress(b" " * 200_000), 413, "body",
                 id="gzip-bomb-over-alerts-max-body-bytes"),
    pytest.param(AM, {"Content-Encoding": "compress", **auth()}, json.dumps(GOOD).encode(), 415, "Content-Encoding",
                 id="unsupported-content-coding"),
    pytest.param(GRAFANA, {**auth(), "Content-Type": "application/json"},
                 b'{"alerts": [{"status": "firing", "labels": {}, "values": {"A": 1e999}}]}', 400, "body",
                 id="grafana-value-infinite"),
]


@pytest.mark.parametrize("path, headers, body, status, field", BAD_WEBHOOKS)
async def test_bad_webhook_is_refused_naming_the_field(client, sqlite_store, clock, caplog, path, headers, body,
                                                       status, field) -> None:
    caplog.set_level(logging.DEBUG)
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = await client.post(path, headers=headers, **kwargs)
    text = await response.text()
    assert response.status == status, text
    error = (await response.json())["error"]
    assert error["field"] == field, error
    assert error["message"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_no_secret(text + statusd_log(caplog), *SECRETS)
    assert await all_incidents(sqlite_store, clock) == []


async def test_too_large_chunked_body_is_refused_without_reading_it_all(client, sqlite_store, clock) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 1024

    response = await client.post(AM, headers=auth(), data=chunks())
    assert response.status == 413
    assert (await response.json())["error"]["field"] == "body"
    assert await all_incidents(sqlite_store, clock) == []


PD = "/v2/enqueue"
BAD_PAGERDUTY = [
    pytest.param(b"{", 400, "body", id="not-json"),
    pytest.param(b"x" * 16385, 413, "body", id="too-large"),
    pytest.param(changed(pd_event(), ("routing_key",)), 400, "routing_key", id="routing-key-missing"),
    pytest.param(pd_event(routing_key=BILLING_KEY[:-1] + "X"), 400, "routing_key", id="routing-key-unknown"),
    pytest.param(pd_event(routing_key=TOKEN), 400, "routing_key", id="alerts-token-is-no-routing-key"),
    pytest.param(changed(pd_event(), ("routing_key",), 12345), 400, "routing_key", id="routing-key-not-string"),
    pytest.param(changed(pd_event(), ("event_action",)), 400, "event_action", id="action-missing"),
    pytest.param(changed(pd_event(), ("event_action",), "page"), 400, "event_action", id="action-unknown"),
    pytest.param(changed(pd_event(), ("payload",)), 400, "payload", id="payload-missing"),
    pytest.param(changed(pd_event(), ("payload",), "down"), 400, "payload", id="payload-not-object"),
    pytest.param(changed(pd_event(), ("payload",), {}), 400, "payload.summary", id="payload-empty"),
    pytest.param(changed(pd_event(), ("payload", "summary")), 400, "payload.summary", id="summary-missing"),
    pytest.param(pd_event(summary="x" * 1025), 400, "payload.summary", id="summary-too-long"),
    pytest.param(pd_event(summary="  "), 400, "payload.summary", id="summary-blank"),
    pytest.param(changed(pd_event(), ("payload", "source")), 400, "payload.source", id="source-missing"),
    pytest.param(pd_event(severity="fatal"), 400, "payload.severity", id="severity-unknown"),
    pytest.param(changed(pd_event(), ("payload", "severity")), 400, "payload.severity", id="severity-missing"),
    pytest.param(pd_event(timestamp="soon"), 400, "payload.timestamp", id="timestamp-garbage"),
    pytest.param(pd_event(component=5), 400, "payload.component", id="component-not-string"),
    pytest.param(pd_event(dedup_key="k" * 256), 400, "dedup_key", id="dedup-key-too-long"),
    pytest.param(changed(pd_event(), ("links",), "http://x"), 400, "links", id="links-not-list"),
    pytest.param(pd_event("acknowledge"), 400, "dedup_key", id="acknowledge-without-dedup-key"),
    pytest.param(pd_event("resolve"), 400, "dedup_key", id="resolve-without-dedup-key"),
    pytest.param(pd_event("resolve", ""), 400, "dedup_key", id="resolve-with-empty-dedup-key"),
]


@pytest.mark.parametrize("body, status, field", BAD_PAGERDUTY)
async def test_bad_pagerduty_event_is_refused_in_pagerdutys_shape(client, sqlite_store, clock, caplog, body, status,
                                                                  field) -> None:
    caplog.set_level(logging.DEBUG)
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = await client.post(PD, **kwargs)
    text = await response.text()
    assert response.status == status, text
    answer = await response.json()
    assert answer["status"] == "invalid event" and answer["message"]
    assert any(e.startswith(f"{field}: ") for e in answer["errors"]), answer
    assert_no_secret(text + statusd_log(caplog), *SECRETS)
    assert await all_incidents(sqlite_store, clock) == []


async def test_pagerduty_reports_every_problem_at_once(client) -> None:
    response = await client.post(PD, json={"routing_key": "nope", "event_action": "trigger",
                                           "payload": {"severity": "fatal"}})
    assert response.status == 400
    fields = [e.partition(":")[0] for e in (await response.json())["errors"]]
    assert fields == ["routing_key", "payload.summary", "payload.source", "payload.severity"]


# --- mapping ---------------------------------------------------------------------------------------

KNOWN = {"api", "web", "payments", "db"}
MAJOR, PARTIAL, DEGRADED = ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE, \
    ComponentStatus.DEGRADED_PERFORMANCE


@pytest.mark.parametrize("source, labels, expected", [
    pytest.param("alertmanager", {"alertname": "PaymentLatency", "env": "prod", "service": "api"},
                 Target(("payments",), MAJOR, (), 0), id="regex-rule-first-match-wins"),
    pytest.param("alertmanager", {"alertname": "PaymentLatency", "env": "staging", "service": "api",
                                  "severity": "warning"},
                 Target(("api",), PARTIAL, (), 1), id="every-match-must-hold"),
    pytest.param("alertmanager", {"alertname": "XPaymentLatency", "env": "prod", "service": "web",
                                  "severity": "info"},
                 Target(("web",), DEGRADED, (), 1), id="regex-is-a-full-match"),
    pytest.param("pagerduty", {"alertname": "PaymentLatency", "env": "prod", "service": "api"},
                 Target(("api",), PARTIAL, (), 1), id="rule-for-other-sources-skipped"),
    pytest.param("grafana", {"service": "api", "severity": "CRITICAL"}, Target(("api",), MAJOR, (), 1),
                 id="label-substitution-and-severity-case"),
    pytest.param("alertmanager", {"service": "apis"}, Target((), PARTIAL, (), None), id="no-rule-no-component"),
    pytest.param("alertmanager", {"component": "db", "severity": "major"}, Target(("db",), PARTIAL, (), None),
                 id="default-component-label"),
    pytest.param("alertmanager", {"component": "db", "severity": "minor"}, Target(("db",), DEGRADED, (), None),
                 id="default-minor"),
    pytest.param("alertmanager", {"component": "db", "severity": "page-me"}, Target(("db",), PARTIAL, (), None),
                 id="default-unknown-severity"),
    pytest.param("alertmanager", {"component": "nope"}, Target((), PARTIAL, ("nope",), None),
                 id="unknown-component-unmapped"),
    pytest.param("pagerduty", {"integration": "billing", "severity": "error"}, Target(("payments",), PARTIAL, (), 2),
                 id="pagerduty-integration-rule"),
])
def test_mapping_table(source, labels, expected) -> None:
    assert AlertMapper(CONFIG).map(source, labels, KNOWN) == expected


def test_missing_placeholder_label_is_unmapped_and_missing_match_label_is_empty() -> None:
    config = AlertsConfig(rules=[AlertRule(components=["{service}-{region}", "db"], match={"env": ""})],
                          default_severity=ComponentStatus.MAJOR_OUTAGE)
    mapper = AlertMapper(config)
    assert mapper.map("alertmanager", {"service": "api"}, KNOWN) == Target(("db",), MAJOR, ("{service}-{region}",), 0)
    assert mapper.map("alertmanager", {"env": "prod", "component": "web"}, KNOWN) == Target(("web",), MAJOR, (), None)


# --- config ----------------------------------------------------------------------------------------

def test_config_parses_and_hides_its_secrets() -> None:
    assert CONFIG.token == Secret(TOKEN) and set(CONFIG.pagerduty) == {"billing", "ops"}
    assert CONFIG.rules[1] == AlertRule(components=["{service}"], match={"service": "re:api|web"})
    assert CONFIG.referenced_components() == [("rules[0].components[0]", "payments"),
                                              ("rules[2].components[0]", "payments")]
    assert_no_secret(repr(CONFIG) + str(CONFIG), *SECRETS)


@pytest.mark.parametrize("toml, problem_key", [
    pytest.param('token = "short"', "alerts.token", id="short-token"),
    pytest.param('pagerduty = { ops = "short" }', "alerts.pagerduty.ops", id="short-routing-key"),
    pytest.param(f'pagerduty = {{ a = "{OPS_KEY}", b = "{OPS_KEY}" }}', "alerts.pagerduty.b", id="same-routing-key"),
    pytest.param(f'pagerduty = {{ "a b" = "{OPS_KEY}" }}', "alerts.pagerduty.a b", id="bad-integration-name"),
    pytest.param("max_body_bytes = 0", "alerts.max_body_bytes", id="max-body-zero"),
    pytest.param('default_severity = "operational"', "alerts.default_severity", id="default-severity-operational"),
    pytest.param('surprise = 1', "alerts.surprise", id="unknown-key"),
    pytest.param('[[rules]]\nmatch = { a = "re:(" }\ncomponents = ["api"]', "alerts.rules[0].match.a",
                 id="bad-regex"),
    pytest.param('[[rules]]\ncomponents = ["api"]\nseverity = "under_maintenance"', "alerts.rules[0].severity",
                 id="rule-severity-maintenance"),
    pytest.param('[[rules]]\ncomponents = ["api"]\nseverity = "down"', "alerts.rules[0].severity",
                 id="rule-severity-unknown"),
    pytest.param('[[rules]]\ncomponents = []', "alerts.rules[0].components", id="no-components"),
    pytest.param('[[rules]]\ncomponents = ["api", "{service.name}"]', "alerts.rules[0].components[1]",
                 id="bad-placeholder"),
    pytest.param('[[rules]]\ncomponents = ["api"]\nsources = ["nagios"]', "alerts.rules[0].sources[0]",
                 id="unknown-source"),
    pytest.param('[[rules]]\ncomponents = ["api"]\nmatch = { a = 1 }', "alerts.rules[0].match.a",
                 id="match-value-not-string"),
])
def test_config_problems_name_their_key(toml, problem_key) -> None:
    problems: Problems = []
    load_section(AlertsConfig, tomllib.loads(toml), "alerts", problems)
    assert problem_key in [key for key, _ in problems], problems
    assert_no_secret(repr(problems), *SECRETS)
