"""What alert senders post, read into alerts (pure): Alertmanager and Grafana webhooks, PagerDuty Events v2.

Every problem is collected with the path of its field, so a payload is judged as a whole
and a bad one is refused before any of its alerts is handled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from statusd.alerts.config import PAGERDUTY_ACTIONS, PAGERDUTY_SEVERITIES, Intake
from statusd.core.errors import ValidationError
from statusd.core.json_body import parse_json
from statusd.core.schema import join
from statusd.web.fields import Fields, Problems

SUMMARY_MAX = 1024

_GROUP_EVIDENCE = ("receiver", "groupKey", "externalURL")
_GRAFANA_ALERT_EVIDENCE = ("dashboardURL", "panelURL", "silenceURL", "imageURL", "valueString")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of an Alertmanager or Grafana webhook; `fingerprint` is "" when the sender gave none."""

    firing: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PagerDutyEvent:
    """One PagerDuty Events v2 event for the integration whose routing key it carried."""

    integration: str
    action: str
    dedup_key: str | None
    payload: dict[str, Any]
    evidence: dict[str, Any]


def json_object(raw: bytes, problems: Problems) -> dict[str, Any] | None:
    """The body as a JSON object, or None with the reason in `problems`."""
    if not raw.strip():
        problems.add("body", "is empty; expected a JSON object")
        return None
    try:
        data = parse_json(raw, replace_nul=True)  # senders cannot change what they send
    except ValidationError as exc:
        problems.add(exc.field, exc.message)
        return None
    if not isinstance(data, dict):
        problems.add("body", "must be a JSON object")
        return None
    return data


def parse_webhook(data: Mapping[str, Any], source: Intake, problems: Problems) -> list[Alert]:
    """Alertmanager's webhook v4 payload (Grafana's is a superset); unknown fields are ignored.

    Unknown fields are not errors here, unlike our own API: both senders add fields between
    releases, and refusing a payload would drop real alerts.
    """
    fields = Fields(data, problems=problems)
    version = fields.string("version")
    if source == "alertmanager" and version is not None and version != "4":
        fields.problem("version", f"unsupported version {version[:20]!r}: this endpoint takes Alertmanager's "
                                  "version 4 (Grafana posts to /api/v1/alerts/grafana)")
    fields.one_of("status", ("firing", "resolved"))
    for key in (*_GROUP_EVIDENCE, "title", "state", "message"):
        fields.string(key)
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        fields.labels(key)
    for key in ("truncatedAlerts", "orgId"):
        fields.integer(key)
    raw_alerts = data.get("alerts")
    if raw_alerts is None:
        fields.problem("alerts", "required")
        return []
    if not isinstance(raw_alerts, list):
        fields.problem("alerts", "must be a list of alerts")
        return []
    group = {key: data[key] for key in (*_GROUP_EVIDENCE, "orgId") if isinstance(data.get(key), (str, int))}
    alerts = []
    for i, item in enumerate(raw_alerts):
        path = join("alerts", i)
        if not isinstance(item, dict):
            problems.add(path, "must be a JSON object")
            continue
        alert = Fields(item, path, problems=problems)
        status = alert.one_of("status", ("firing", "resolved"), required=True)
        labels = alert.labels("labels", required=True)
        annotations = alert.labels("annotations")
        evidence: dict[str, Any] = {"labels": labels, "annotations": annotations, **group}
        for key in ("startsAt", "endsAt"):
            if (ts := alert.timestamp(key)) is not None:
                evidence[key] = ts
        for key in ("generatorURL", *(_GRAFANA_ALERT_EVIDENCE if source == "grafana" else ())):
            if (text := alert.string(key)) is not None:
                evidence[key] = text
        fingerprint = (alert.string("fingerprint", max_len=128) or "").strip()  # blank: keyed by labels
        if fingerprint:
            evidence["fingerprint"] = fingerprint
        if source == "grafana" and (values := _grafana_values(alert)) is not None:
            evidence["values"] = values
        if status is not None:
            alerts.append(Alert(status == "firing", labels, annotations, fingerprint, evidence))
    return alerts


def _grafana_values(alert: Fields) -> dict[str, Any] | None:
    values = alert.obj("values")
    if values is None:
        return None
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            alert.problem(join("values", key), "must be a number or null")
    return values


def parse_pagerduty(data: Mapping[str, Any], integration: str | None, problems: Problems) -> PagerDutyEvent | None:
    """A PagerDuty Events API v2 event; fields PagerDuty ignores for an action are ignored here too.

    None when `problems` has any problem (those found before too) or no integration was found.
    """
    fields = Fields(data, problems=problems)
    action = fields.one_of("event_action", PAGERDUTY_ACTIONS, required=True)
    dedup_key = fields.string("dedup_key", max_len=255)
    if dedup_key is not None and not dedup_key.strip():
        fields.problem("dedup_key", "must not be empty")
    if action in ("acknowledge", "resolve") and data.get("dedup_key") is None:
        fields.problem("dedup_key", f"required to {action}")
    payload: dict[str, Any] = {}
    evidence: dict[str, Any] = {"integration": integration}
    if action == "trigger":
        if (given := fields.obj("payload", required=True)) is not None:
            payload = given
            event = Fields(payload, "payload", problems=problems)
            event.string("summary", required=True, max_len=SUMMARY_MAX)
            event.string("source", required=True, max_len=SUMMARY_MAX)
            event.one_of("severity", PAGERDUTY_SEVERITIES, required=True)
            event.timestamp("timestamp")
            for key in ("component", "group", "class"):
                event.string(key, max_len=255)
            evidence.update({key: payload[key] for key in ("source", "severity", "component", "group", "class",
                                                           "timestamp", "custom_details") if key in payload})
        for key in ("client", "client_url"):
            if (text := fields.string(key)) is not None:
                evidence[key] = text
        for key in ("links", "images"):
            if key in data:
                if isinstance(data[key], list) and all(isinstance(x, dict) for x in data[key]):
                    evidence[key] = data[key]
                else:
                    fields.problem(key, "must be a list of JSON objects")
    if problems or integration is None or action is None:
        return None
    return PagerDutyEvent(integration, action, dedup_key, payload, evidence)


def labels_hash(labels: Mapping[str, str]) -> str:
    """A stable key for a label set, for senders that leave out `fingerprint`."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return "labels-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def summary(alert: Alert) -> str:
    """The incident summary of an alert: its summary or description annotation, else its name; resolutions say so."""
    text = (alert.annotations.get("summary", "").strip() or alert.annotations.get("description", "").strip()
            or alert.labels.get("alertname", "").strip() or "Alert without a summary")
    return clip(text if alert.firing else f"Resolved: {text}")


def clip(text: str) -> str:
    """`text` cut to SUMMARY_MAX characters, the cut marked with "…"."""
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1] + "…"
