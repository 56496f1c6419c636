"""The OpenAPI 3.1 document of every HTTP route statusd serves, and the route that serves it.

The document is built here, next to the handlers it describes, rather than kept as a JSON file:
the vocabularies (component status, impact, incident status) come from the model's enums, so a
new value cannot be forgotten, and the shapes that repeat (the error, an incident) are written
once. tests/integration/test_openapi_contract.py keeps it complete: every route the app
registers is described here and every route described here is registered, real answers are
validated against these schemas, and README's "HTTP API" tables list the same routes.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aiohttp import web

from statusd.core.model import ComponentStatus, Impact, IncidentStatus

OPENAPI_ROUTE = "/api/v1/openapi.json"

JSON = dict[str, Any]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _enum(values: Any) -> JSON:
    return {"type": "string", "enum": [v.value for v in values]}


def _nullable(schema: JSON) -> JSON:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(required: dict[str, JSON], optional: dict[str, JSON] | None = None, *, closed: bool = False) -> JSON:
    """An object with `required` properties always present and `optional` ones that may be left out."""
    out: JSON = {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required)}
    if closed:
        out["additionalProperties"] = False
    return out


STRING: JSON = {"type": "string"}
TIME: JSON = {"type": "string", "format": "date-time"}
NULLABLE_TIME: JSON = _nullable(TIME)
NULLABLE_STRING: JSON = _nullable(STRING)
INTEGER: JSON = {"type": "integer"}
BOOLEAN: JSON = {"type": "boolean"}
STRINGS: JSON = {"type": "array", "items": STRING}
NULLABLE_NUMBER: JSON = _nullable({"type": "number"})

ERROR_STATUSES = {
    400: "Bad input; `field` names the input at fault",
    401: "No valid credential; `field` names `Authorization`",
    403: "The token lacks the scope this route needs",
    404: "No such thing",
    409: "The thing is not in a state that allows this",
    413: "The body is larger than `[server] max_body_bytes` (as sent or once decoded)",
    415: "An unsupported `Content-Encoding`",
}


def _schemas() -> JSON:
    kpi = _obj({"count": INTEGER, "median": NULLABLE_NUMBER, "p90": NULLABLE_NUMBER})
    page = _obj({"id": STRING, "name": STRING, "url": STRING, "time_zone": STRING, "updated_at": NULLABLE_TIME})
    sp_component = _obj({
        "id": STRING, "name": STRING, "status": _enum(ComponentStatus), "created_at": NULLABLE_TIME,
        "updated_at": NULLABLE_TIME, "position": INTEGER, "description": NULLABLE_STRING, "showcase": BOOLEAN,
        "start_date": NULLABLE_STRING, "group_id": NULLABLE_STRING, "page_id": STRING, "group": BOOLEAN,
        "only_show_if_degraded": BOOLEAN,
    }, {"components": STRINGS})
    sp_update = _obj({
        "id": STRING, "status": _enum(IncidentStatus), "body": STRING, "incident_id": STRING, "created_at": TIME,
        "updated_at": TIME, "display_at": TIME, "affected_components": _nullable({"type": "array"}),
        "deliver_notifications": BOOLEAN,
    })
    sp_incident = _obj({
        "id": STRING, "name": STRING, "status": _enum(IncidentStatus), "created_at": TIME, "updated_at": TIME,
        "monitoring_at": NULLABLE_TIME, "resolved_at": NULLABLE_TIME, "impact": _enum(Impact), "shortlink": STRING,
        "started_at": TIME, "page_id": STRING, "incident_updates": {"type": "array", "items": _ref("StatuspageUpdate")},
        "components": {"type": "array", "items": _ref("StatuspageComponent")},
        "postmortem_body": NULLABLE_STRING, "postmortem_published_at": NULLABLE_TIME,
    })
    timeline_entry = _obj({
        "id": INTEGER, "at": TIME, "kind": STRING, "public": BOOLEAN, "author": NULLABLE_STRING,
        "status": _nullable(_enum(IncidentStatus)), "body": STRING, "data": {"type": "object"},
    })
    incident = _obj({
        "id": INTEGER, "title": STRING, "status": _enum(IncidentStatus), "impact": _enum(Impact),
        "components": STRINGS, "source": STRING, "dedup_key": NULLABLE_STRING, "assignee": NULLABLE_STRING,
        "acknowledged_at": NULLABLE_TIME, "acknowledged_by": NULLABLE_STRING,
        "first_public_update_at": NULLABLE_TIME, "opened_at": TIME, "updated_at": TIME,
        "resolved_at": NULLABLE_TIME, "commander": NULLABLE_STRING, "comms": NULLABLE_STRING,
        "handoff": _nullable({"type": "object"}), "escalation": _nullable({"type": "object"}),
        "postmortem": NULLABLE_STRING, "postmortem_at": NULLABLE_TIME,
        "kpis": _obj({"time_to_acknowledge_s": NULLABLE_NUMBER, "time_to_first_public_update_s": NULLABLE_NUMBER,
                      "time_to_resolve_s": NULLABLE_NUMBER}),
    }, {"timeline": {"type": "array", "items": _ref("TimelineEntry")}})
    subscriber = _obj({"id": INTEGER, "notifier": STRING, "target": STRING, "components": STRINGS,
                       "created_at": TIME})
    report_in = _obj({
        "client_id": {"type": "string", "maxLength": 320, "description": "who reported it (not blank)"},
        "text": {"type": "string", "description": "the report, at most `[reports] max_text_chars`"},
    }, {
        "channel": {"type": "string", "maxLength": 50, "default": "api"},
        "contact": _obj({"notifier": STRING, "address": STRING}, closed=True),
        "tags": {"type": "object", "additionalProperties": False, "properties": {
            "component": {"type": "string", "minLength": 1, "maxLength": 100},
            "region": {"type": "string", "minLength": 1, "maxLength": 100},
            "category": {"type": "string", "minLength": 1, "maxLength": 100}}},
        "received_at": {"type": "string", "format": "date-time", "description": "RFC 3339 with a time zone"},
        "external_id": {"type": "string", "maxLength": 200, "description": "the helpdesk's id; repeats are duplicates"},
        "ticket_url": {"type": "string", "maxLength": 2000},
    }, closed=True)
    report_result = _obj({"id": INTEGER, "duplicate": BOOLEAN, "incident_id": _nullable(INTEGER)})
    day = _obj({"date": {"type": "string", "format": "date"}, "uptime": NULLABLE_NUMBER,
                "worst_status": _nullable(_enum(ComponentStatus)),
                "seconds": {"type": "object", "additionalProperties": {"type": "number"}},
                "checks": INTEGER, "failures": INTEGER})
    return {
        "Error": _obj({"error": _obj({"message": STRING}, {"field": STRING}, closed=True)}, closed=True),
        "PagerDutyError": _obj({"status": STRING, "message": STRING, "errors": STRINGS}),
        "Incident": incident,
        "TimelineEntry": timeline_entry,
        "IncidentAnswer": _obj({"incident": _ref("Incident")}, {
            "components": {"type": "array", "description": "after an update: the components it set",
                           "items": _obj({"id": STRING, "status": _enum(ComponentStatus)})}}),
        "Subscriber": subscriber,
        "Kpi": kpi,
        "Report": report_in,
        "ReportResult": report_result,
        "Page": page,
        "StatuspageComponent": sp_component,
        "StatuspageUpdate": sp_update,
        "StatuspageIncident": sp_incident,
        "StatuspageStatus": _obj({"indicator": _enum(Impact), "description": STRING}),
        "UptimeDay": day,
    }


def _json(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> JSON:
    return {str(s): _json(_ref("Error"), ERROR_STATUSES[s]) for s in statuses}


def _body(schema: JSON, *, required: bool = True) -> JSON:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, schema: JSON, description: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: JSON, description: str) -> JSON:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


ID_PARAM = _path_param("id", {"type": "string", "pattern": "^[0-9]+$"}, "the incident's id")
BEARER: list[JSON] = [{"bearer": []}]
PUBLIC: list[JSON] = []
# Every token route answers these besides its own: no token, a wrong scope, a body too large or coded wrong.
TOKEN_ERRORS = (401, 403)
BODY_ERRORS = (400, 413, 415)


def _op(summary: str, responses: JSON, *, scope: str | None = "", body: JSON | None = None,
        parameters: list[JSON] | None = None, security: list[JSON] | None = None, tags: list[str]) -> JSON:
    """One operation. `scope` "" is a public route, None any valid token, else the scope the token needs."""
    op: JSON = {"summary": summary, "tags": tags, "responses": responses}
    if scope == "":
        op["security"] = security if security is not None else PUBLIC
    else:
        op["security"] = BEARER
        op["x-scope"] = scope
        op["description"] = ("Any valid token." if scope is None
                             else f"A token with the `{scope}` scope (or `admin`).")
    if body is not None:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    return op


def _incident_write(summary: str, body: JSON | None, status: int, *, extra: tuple[int, ...] = (409,)) -> JSON:
    responses = {str(status): _json(_ref("IncidentAnswer"), "The incident as it is now"),
                 **_errors(*BODY_ERRORS, *TOKEN_ERRORS, 404, *extra)}
    return _op(summary, responses, scope="incidents:write", body=body, parameters=[ID_PARAM], tags=["incidents"])


def _notify(default: bool) -> JSON:
    return {"type": "boolean", "default": default, "description": "whether subscribers are told"}


def _paths() -> JSON:
    component_status, impact, incident_status = _enum(ComponentStatus), _enum(Impact), _enum(IncidentStatus)
    paths: JSON = {}

    # --- incidents -------------------------------------------------------------------------------------
    paths["/api/v1/incidents"] = {"post": _op(
        "Open an incident", {
            "201": _json(_ref("IncidentAnswer"), "The new incident"),
            **_errors(*BODY_ERRORS, *TOKEN_ERRORS, 409)},
        scope="incidents:write", tags=["incidents"],
        body=_body(_obj({
            "title": {"type": "string", "maxLength": 200, "description": "not blank"},
            "body": {"type": "string", "description": "the first public update (not blank)"},
        }, {
            "components": {"type": "array", "items": STRING, "maxItems": 100},
            "component_status": component_status, "impact": impact,
            "status": {**incident_status, "default": "investigating"}, "notify": _notify(True),
        }, closed=True)))}
    paths["/api/v1/incidents/{id}"] = {"get": _op(
        "An incident with its whole timeline (internal entries included)", {
            "200": _json(_ref("IncidentAnswer"), "The incident with `timeline`"),
            **_errors(400, *TOKEN_ERRORS, 404)},
        scope="incidents:read", parameters=[ID_PARAM], tags=["incidents"])}
    paths["/api/v1/incidents/{id}/updates"] = {"post": _incident_write(
        "Post an update (public, signed with the token's name)", _body(_obj(
            {"body": {"type": "string", "description": "not blank"}},
            {"status": incident_status, "impact": impact, "component_status": component_status,
             "notify": _notify(True)}, closed=True)), 201)}
    paths["/api/v1/incidents/{id}/acknowledge"] = {"post": _incident_write(
        "Acknowledge: stops escalation; the token's person, or `person`, takes ownership", _body(_obj(
            {}, {"person": {**STRING, "description": "the person taking ownership, when the token has none"}},
            closed=True), required=False), 200)}
    paths["/api/v1/incidents/{id}/resolve"] = {"post": _incident_write(
        "Resolve the incident", _body(_obj({}, {"body": STRING, "notify": _notify(True)}, closed=True),
                                      required=False), 200)}
    paths["/api/v1/incidents/{id}/handoff"] = {"post": _incident_write(
        "Hand ownership over; it moves once `to` acknowledges", _body(_obj(
            {"to": {"type": "string", "maxLength": 100, "description": "a person's id (not blank)"}},
            {"note": STRING}, closed=True)), 202)}
    paths["/api/v1/incidents/{id}/comms"] = {"put": _incident_write(
        "Name who writes the public updates", _body(_obj(
            {}, {"person": _nullable({"type": "string", "maxLength": 100})}, closed=True), required=False), 200)}
    paths["/api/v1/incidents/{id}/postmortem"] = {"post": _incident_write(
        "Publish the postmortem (after resolution)", _body(_obj(
            {"body": {"type": "string", "maxLength": 100_000, "description": "Markdown (not blank)"}},
            {"notify": _notify(False)}, closed=True)), 201)}
    paths["/api/v1/incidents/{id}/merge"] = {"post": _incident_write(
        "Merge this incident into another open one", _body(_obj(
            {"into": {"type": "integer", "description": "the id of the open incident to merge into"}},
            closed=True)), 200)}
    paths["/api/v1/incidents/{id}/reports"] = {"get": _op(
        "The customer reports linked to an incident and the distinct clients affected", {
            "200": _json(_obj({
                "incident_id": INTEGER,
                "clients": {"type": "array", "items": _obj({
                    "client_id": STRING, "reports": INTEGER, "first_report_at": TIME,
                    "contacts": {"type": "array", "items": {"type": "array", "items": STRING}}})},
                "reports": {"type": "array", "items": _obj({
                    "id": INTEGER, "client_id": STRING, "channel": STRING, "text": STRING, "received_at": TIME,
                    "tags": {"type": "object"}, "external_id": NULLABLE_STRING,
                    "ticket_url": NULLABLE_STRING})},
            }), "Linked reports"),
            **_errors(400, *TOKEN_ERRORS, 404)},
        scope="incidents:read", parameters=[ID_PARAM], tags=["reports"])}

    # --- components, subscribers, outbox, kpis ----------------------------------------------------------
    paths["/api/v1/components/{id}"] = {"put": _op(
        "Set a component's status by hand", {
            "200": _json(_obj({"component": _obj({"id": STRING, "status": component_status}), "changed": BOOLEAN}),
                         "The component; `changed` says whether its status was different"),
            **_errors(*BODY_ERRORS, *TOKEN_ERRORS, 404, 409)},
        scope="components:write", tags=["components"],
        parameters=[_path_param("id", STRING, "the component's id (its key in the config)")],
        body=_body(_obj({"status": component_status}, closed=True)))}
    subscriber_answer = _obj({"subscriber": _ref("Subscriber")})
    paths["/api/v1/subscribers"] = {
        "get": _op("Every subscriber", {
            "200": _json(_obj({"subscribers": {"type": "array", "items": _ref("Subscriber")}}), "The subscribers"),
            **_errors(*TOKEN_ERRORS)}, scope="subscribers:write", tags=["subscribers"]),
        "post": _op("Add a subscriber; its notifier vets the target", {
            "201": _json(subscriber_answer, "The new subscriber"),
            **_errors(*BODY_ERRORS, *TOKEN_ERRORS)}, scope="subscribers:write", tags=["subscribers"],
            body=_body(_obj({"notifier": {"type": "string", "maxLength": 100, "description": "a configured notifier"},
                             "target": {"type": "string", "maxLength": 2000}},
                            {"components": {"type": "array", "items": STRING, "maxItems": 100}}, closed=True))),
    }
    paths["/api/v1/subscribers/{id}"] = {"delete": _op(
        "Remove a subscriber", {
            "200": _json(_obj({"removed": INTEGER}), "The id removed"),
            **_errors(400, *TOKEN_ERRORS, 404)}, scope="subscribers:write", tags=["subscribers"],
        parameters=[_path_param("id", {"type": "string", "pattern": "^[0-9]+$"}, "the subscriber's id")])}
    message = _obj({"id": INTEGER, "key": STRING, "notifier": STRING, "recipient": STRING, "template": STRING,
                    "status": STRING, "attempts": INTEGER, "last_error": NULLABLE_STRING, "created_at": TIME,
                    "next_attempt_at": NULLABLE_TIME, "sent_at": NULLABLE_TIME})
    paths["/api/v1/outbox"] = {"get": _op(
        "The notification log: counts per status and the latest messages", {
            "200": _json(_obj({"counts": {"type": "object", "additionalProperties": INTEGER},
                               "messages": {"type": "array", "items": message}}), "The outbox"),
            **_errors(400, *TOKEN_ERRORS)}, scope="admin", tags=["outbox"],
        parameters=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                           "how many messages")])}
    paths["/api/v1/kpis"] = {"get": _op(
        "Support KPIs over recent incidents", {
            "200": _json(_obj({
                "days": INTEGER, "incidents": INTEGER,
                "by_impact": {"type": "object", "additionalProperties": INTEGER},
                "by_source": {"type": "object", "additionalProperties": INTEGER},
                "time_to_acknowledge_s": _ref("Kpi"), "time_to_first_public_update_s": _ref("Kpi"),
                "time_to_resolve_s": _ref("Kpi")}), "Medians and 90th percentiles in seconds"),
            **_errors(400, *TOKEN_ERRORS)}, scope="incidents:read", tags=["kpis"],
        parameters=[_query("days", {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30},
                           "incidents opened in the last `days`")])}

    # --- on call ---------------------------------------------------------------------------------------
    at = {"type": "string", "format": "date-time", "description": "ISO 8601 with a UTC offset"}
    paths["/api/v1/oncall"] = {"get": _op(
        "Who is on call in each schedule at `at` (default now), with the shift", {
            "200": _json(_obj({"at": TIME, "schedules": {"type": "object", "additionalProperties": _obj({
                "person": NULLABLE_STRING, "name": NULLABLE_STRING, "since": NULLABLE_TIME, "until": NULLABLE_TIME})}}),
                "Per schedule, the person on call"),
            **_errors(400, *TOKEN_ERRORS)}, scope="incidents:read", tags=["oncall"], parameters=[_query("at", at, "the time")])}
    paths["/api/v1/schedules"] = {"get": _op(
        "The on-call schedules with their layers and private iCal URLs", {
            "200": _json(_obj({"schedules": {"type": "array", "items": _obj({
                "id": STRING, "timezone": STRING, "layers": STRINGS, "ical_url": NULLABLE_STRING})}}),
                "The schedules"),
            **_errors(*TOKEN_ERRORS)}, scope="incidents:read", tags=["oncall"])}
    paths["/api/v1/schedules/{id}/shifts"] = {"get": _op(
        "The shifts of a schedule between two times at most 366 days apart", {
            "200": _json(_obj({"schedule": STRING, "shifts": {"type": "array", "items": _obj({
                "person": NULLABLE_STRING, "start": TIME, "end": TIME})}}), "The shifts"),
            **_errors(400, *TOKEN_ERRORS, 404)}, scope="incidents:read", tags=["oncall"],
        parameters=[_path_param("id", STRING, "the schedule's name"),
                    _query("from", at, "start (default now)"), _query("to", at, "end (default `from` + 7 days)")])}

    # --- customer reports ------------------------------------------------------------------------------
    paths["/api/v1/reports"] = {"post": _op(
        "Take one customer report from a helpdesk, chat or phone system", {
            "202": _json(_obj({"report": _ref("ReportResult")}), "Stored"),
            "200": _json(_obj({"report": _ref("ReportResult")}), "It repeats a stored report"),
            **_errors(*BODY_ERRORS, *TOKEN_ERRORS)}, scope="reports:write", tags=["reports"],
        body=_body(_ref("Report")))}
    paths["/api/v1/reports/batch"] = {"post": _op(
        "Take up to `[reports] max_batch` reports, refused whole when one is invalid", {
            "202": _json(_obj({"reports": {"type": "array", "items": _ref("ReportResult")}}), "Stored"),
            **_errors(*BODY_ERRORS, *TOKEN_ERRORS)}, scope="reports:write", tags=["reports"],
        body=_body(_obj({"reports": {"type": "array", "items": _ref("Report"), "minItems": 1}}, closed=True)))}

    # --- webhooks in -----------------------------------------------------------------------------------
    alerts_security: list[JSON] = [{"bearer": []}, {"basic": []}, {"queryToken": []}, {}]
    alert_answer = _obj({"status": {"const": "success"}, "alerts": {"type": "array", "items": _obj({
        "dedup_key": STRING, "firing": BOOLEAN, "incident": _nullable(INTEGER)})}})
    for source, payload in (("alertmanager", "Prometheus Alertmanager webhook, payload version 4"),
                            ("grafana", "Grafana unified alerting webhook contact point")):
        paths[f"/api/v1/alerts/{source}"] = {"post": _op(
            f"{payload}: each alert becomes a signal; repeats join the incident it opened", {
                "200": _json(alert_answer, "Per alert, its dedup key and incident"),
                **_errors(*BODY_ERRORS, 401)}, tags=["webhooks"], security=alerts_security,
            body=_body(_obj({"alerts": {"type": "array", "items": _obj(
                {"labels": {"type": "object", "additionalProperties": STRING}},
                {"status": {"type": "string", "enum": ["firing", "resolved"]},
                 "annotations": {"type": "object", "additionalProperties": STRING},
                 "fingerprint": STRING, "startsAt": STRING, "endsAt": STRING})}},
                {"status": STRING, "receiver": STRING, "groupLabels": {"type": "object"},
                 "commonLabels": {"type": "object"}, "externalURL": STRING, "version": STRING})))}
    pagerduty_event = _obj({
        "routing_key": {"type": "string", "description": "names the integration ([alerts.pagerduty])"},
        "event_action": {"type": "string", "enum": ["trigger", "acknowledge", "resolve"]},
    }, {"dedup_key": STRING, "payload": _obj({"summary": STRING, "source": STRING, "severity": {
        "type": "string", "enum": ["critical", "error", "warning", "info"]}}, {"component": STRING})})
    pagerduty_answers = {
        "202": _json(_obj({"status": STRING, "message": STRING, "dedup_key": STRING}), "Event processed"),
        **{str(s): _json(_ref("PagerDutyError"), f"{ERROR_STATUSES[s]} (PagerDuty's own error shape)")
           for s in (400, 413, 415)}}
    for path in ("/api/v1/alerts/pagerduty", "/v2/enqueue"):
        paths[path] = {"post": _op(
            "PagerDuty Events API v2: trigger, acknowledge and resolve by routing key and dedup key",
            pagerduty_answers, tags=["webhooks"], body=_body(pagerduty_event))}
    paths["/telegram/{notifier}/webhook"] = {"post": _op(
        "Telegram's webhook delivery of button presses (checked against the notifier's `webhook_secret`)", {
            "200": {"description": "Taken; a JSON method call for Telegram, or empty",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            **_errors(400, 401, 413, 415),
            "404": {"description": "No Telegram notifier of that name, or its webhook is off (no `webhook_secret`)",
                    "content": {"application/json": {"schema": _ref("Error")}, "text/plain": {"schema": STRING}}}},
        tags=["webhooks"], security=[{"telegramSecret": []}],
        parameters=[_path_param("notifier", STRING, "the Telegram notifier's name")],
        body=_body({"type": "object", "description": "a Telegram Update"}))}
    heartbeat = _op(
        "A job checks in with its heartbeat probe's secret token", {
            "200": _json(_obj({"probe": STRING, "checked_in_at": TIME}), "Checked in"),
            "404": _json(_ref("Error"), "No heartbeat probe has this token"),
            "503": _json(_ref("Error"), "The server is starting or stopping")},
        tags=["webhooks"], parameters=[_path_param("token", STRING, "the probe's secret token")])
    paths["/api/v1/heartbeat/{token}"] = {"get": heartbeat, "post": heartbeat}

    # --- public reads ----------------------------------------------------------------------------------
    page_answer = {"page": _ref("Page")}
    components_list = {"type": "array", "items": _ref("StatuspageComponent")}
    incidents_list = {"type": "array", "items": _ref("StatuspageIncident")}
    no_maintenances = _obj({**page_answer, "scheduled_maintenances": {"type": "array"}})
    statuspage = {
        "summary": _obj({**page_answer, "components": components_list, "incidents": incidents_list,
                         "scheduled_maintenances": {"type": "array"}, "status": _ref("StatuspageStatus")}),
        "status": _obj({**page_answer, "status": _ref("StatuspageStatus")}),
        "components": _obj({**page_answer, "components": components_list}),
        "incidents": _obj({**page_answer, "incidents": incidents_list}),
        "incidents/unresolved": _obj({**page_answer, "incidents": incidents_list}),
        "scheduled-maintenances": no_maintenances,
        "scheduled-maintenances/upcoming": no_maintenances,
        "scheduled-maintenances/active": no_maintenances,
    }
    for name, schema in statuspage.items():
        paths[f"/api/v2/{name}.json"] = {"get": _op(
            f"Statuspage-compatible `{name}.json`", {
                "200": _json(schema, "Statuspage's shape and vocabularies"),
                "304": {"description": "Not modified since the `If-None-Match` ETag"}}, tags=["statuspage"])}
    paths["/api/v1/uptime"] = {"get": _op(
        "Per-component daily uptime, from daily rollups", {
            "200": _json(_obj({**page_answer, "days": INTEGER, "from": {"type": "string", "format": "date"},
                               "to": {"type": "string", "format": "date"}, "components": {
                                   "type": "array", "items": _obj({
                                       "id": STRING, "name": STRING, "group": NULLABLE_STRING,
                                       "status": component_status, "uptime": _obj({
                                           "ratio": NULLABLE_NUMBER, "percent": NULLABLE_NUMBER,
                                           "days": {"type": "array", "items": _ref("UptimeDay")}})})}}),
                         "Uptime per component and day"),
            "304": {"description": "Not modified since the `If-None-Match` ETag"},
            **_errors(400)}, tags=["statuspage"],
        parameters=[_query("days", {"type": "integer", "minimum": 1, "default": 90}, "how many days back")])}
    paths[OPENAPI_ROUTE] = {"get": _op("This document", {
        "200": _json({"type": "object"}, "OpenAPI 3.1")}, tags=["meta"])}
    paths["/healthz"] = {"get": _op("Liveness", {
        "200": _json(_obj({"status": {"const": "ok"}}), "Alive")}, tags=["meta"])}
    paths["/metrics"] = {"get": _op("Prometheus exposition", {
        "200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": STRING}}},
        "401": _json(_ref("Error"), "`[server] metrics_token` is set and the bearer token is missing or wrong")},
        tags=["meta"])}

    # --- pages for people ------------------------------------------------------------------------------
    html = {"text/html": {"schema": STRING}}
    text = {"text/plain": {"schema": STRING}}
    paths["/"] = {"get": _op("The status page (works without JavaScript)", {
        "200": {"description": "The page", "content": html},
        "304": {"description": "Not modified"}}, tags=["pages"])}
    paths["/incidents/{id}"] = {"get": _op("An incident's public page", {
        "200": {"description": "The page", "content": html},
        "304": {"description": "Not modified"},
        "404": {"description": "No such public incident", "content": html}}, tags=["pages"],
        parameters=[_path_param("id", STRING, "the incident's id")])}
    paths["/static/style.css"] = {"get": _op("The status page's stylesheet", {
        "200": {"description": "CSS", "content": {"text/css": {"schema": STRING}}},
        "304": {"description": "Not modified"}}, tags=["pages"])}
    form = {"application/x-www-form-urlencoded": {"schema": _obj({}, {
        "text": STRING, "component": STRING, "email": STRING, "website": {
            "type": "string", "description": "a honeypot: left empty by people"}})}}
    form_answers = {str(s): {"description": d, "content": html} for s, d in (
        (200, "The form, or a thank-you page"), (400, "The form again, saying what to fix"),
        (413, "Too large"), (415, "Not a form"), (429, "Too many reports from this address"))}
    paths["/report"] = {
        "get": _op("The public \"report a problem\" form", {"200": {"description": "The form", "content": html}},
                   tags=["pages"]),
        "post": _op("A visitor's report, rate-limited per address", form_answers, tags=["pages"],
                    body={"required": True, "content": form}),
    }
    paths["/schedules/{id}.ics"] = {"get": _op("An on-call schedule as a private iCal feed (signed URL)", {
        "200": {"description": "iCalendar", "content": {"text/calendar": {"schema": STRING}}},
        "401": {"description": "Missing or wrong signature", "content": text},
        "404": _json(_ref("Error"), "No such schedule")}, tags=["oncall"],
        parameters=[_path_param("id", STRING, "the schedule's name"),
                    {"name": "sig", "in": "query", "required": True, "schema": STRING, "description": "the signature"}])}
    ack_params = [ID_PARAM, _path_param("person", STRING, "the person the link was made for"),
                  _path_param("sig", STRING, "the link's signature")]
    ack_errors = {"400": _json(_ref("Error"), "The id is not an integer"),
                  "403": {"description": "The link is not valid", "content": text},
                  "404": _json(_ref("Error"), "No such incident"),
                  "410": {"description": "The link was sent for an earlier page cycle of the incident", "content": html}}
    paths["/ack/{id}/{person}/{sig}"] = {
        "get": _op("One-click acknowledgement: a confirmation page (mail scanners open links)", {
            "200": {"description": "The confirmation page", "content": html}, **ack_errors},
            tags=["oncall"], parameters=ack_params),
        "post": _op("The confirmation page's button: acknowledge as the link's person", {
            "200": {"description": "Done, or why there was nothing to do", "content": html}, **ack_errors},
            tags=["oncall"], parameters=ack_params),
    }
    return paths


@cache
def document() -> JSON:
    """The OpenAPI 3.1 document (built once; treat it as read-only)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "statusd",
            "version": "1",
            "description": "Incident communication and status. Every error under /api/ is "
                           "`{\"error\": {\"field\": ..., \"message\": ...}}` (`field` names the input at fault on "
                           "400, 401, 413 and 415; a 403, 404 or 409 has only `message`). A body may be sent with "
                           "`Content-Encoding: gzip`, `deflate`, `br` or `zstd`.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token's secret ([tokens])"},
                "basic": {"type": "http", "scheme": "basic", "description": "`alerts.token` as the password"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "`alerts.token`, for senders that cannot set headers"},
                "telegramSecret": {"type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token"},
            },
            "schemas": _schemas(),
        },
        "paths": _paths(),
    }


@cache
def _document_bytes() -> bytes:
    return json.dumps(document(), separators=(",", ":")).encode()


async def serve_document(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json, public: the document above."""
    return web.Response(body=_document_bytes(), content_type="application/json")
