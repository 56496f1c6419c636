"""Alerts from the monitoring people already run: Alertmanager, Grafana and PagerDuty Events v2 in, Signals out.

Every alert becomes one Signal whose dedup key is stable across retries, repeats and
Alertmanager HA peers, so the coordinator's dedup — not this module — guarantees one
incident per alert. A payload is validated as a whole before its first Signal is
handled: a bad payload writes nothing. Nothing is sent from here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aiohttp import web

from statusd.alerts.config import (PAGERDUTY_ACTIONS, PAGERDUTY_SEVERITIES, PLACEHOLDER,
                                    SEVERITY_LABELS, AlertsConfig, Intake)
from statusd.api.routes import error_response
from statusd.incidents.coordinator import Coordinator
from statusd.core.clock import Clock
from statusd.core.errors import Conflict, ValidationError
from statusd.web.body import TooLarge, read_body
from statusd.core.json_body import parse_json
from statusd.core.model import ComponentStatus, Incident, Signal
from statusd.core.schema import join

log = logging.getLogger(__name__)

KnownComponents = Callable[[], Awaitable[AbstractSet[str]]] | AbstractSet[str]
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})")
_SUMMARY_MAX = 1024


# --- mapping -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """Where an alert lands: known components, a severity, and what could not be mapped."""

    components: tuple[str, ...]
    severity: ComponentStatus
    unmapped: tuple[str, ...] = ()
    rule: int | None = None  # index into `rules`; None for the default mapping


class AlertMapper:
    """Labels → components and severity: the first matching rule wins, else the `component`/`severity` labels."""

    def __init__(self, config: AlertsConfig) -> None:
        self.default_severity = config.default_severity
        self._rules = [(i, rule, {key: _matcher(value) for key, value in rule.match.items()})
                       for i, rule in enumerate(config.rules)]

    def map(self, source: Intake, labels: Mapping[str, str], known: AbstractSet[str]) -> Target:
        """Where an alert from `source` with `labels` goes; components not in `known` end up in `unmapped`."""
        for index, rule, matchers in self._rules:
            if rule.sources and source not in rule.sources:
                continue
            if all(matches(labels.get(key, "")) for key, matches in matchers.items()):
                return _target([(t, _fill(t, labels)) for t in rule.components],
                               rule.severity or self._severity(labels), known, index)
        wanted = [(labels["component"], labels["component"])] if labels.get("component") else []
        return _target(wanted, self._severity(labels), known, None)

    def _severity(self, labels: Mapping[str, str]) -> ComponentStatus:
        return SEVERITY_LABELS.get(labels.get("severity", "").strip().lower(), self.default_severity)


def _matcher(value: str) -> Callable[[str], bool]:
    if value.startswith("re:"):
        pattern = re.compile(value[3:])
        return lambda actual: pattern.fullmatch(actual) is not None
    return lambda actual: actual == value


def _fill(template: str, labels: Mapping[str, str]) -> str | None:
    """The template with its `{label}`s filled in; None when one of them is missing or empty."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        value = labels.get(m.group(1), "")
        missing = missing or not value
        return value

    filled = PLACEHOLDER.sub(sub, template)
    return None if missing else filled


def _target(wanted: Iterable[tuple[str, str | None]], severity: ComponentStatus, known: AbstractSet[str],
            rule: int | None) -> Target:
    components: dict[str, None] = {}
    unmapped: dict[str, None] = {}
    for template, cid in wanted:
        if cid is not None and cid in known:
            components[cid] = None
        else:
            unmapped[cid if cid is not None else template] = None
    return Target(tuple(components), severity, tuple(unmapped), rule)


# --- input -------------------------------------------------------------------------------

def _json_object(raw: bytes, problems: _Problems) -> dict[str, Any] | None:
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


class _Problems:
    """Collects (field, message) pairs so a payload is judged as a whole; readers return None for bad values."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def obj(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(join(path, key), "required")
            return None
        if not isinstance(value, dict):
            self.add(join(path, key), "must be a JSON object")
            return None
        return value

    def text(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False,
             max_len: int | None = None) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(join(path, key), "required")
            return None
        if not isinstance(value, str):
            self.add(join(path, key), "must be a string")
            return None
        if required and not value.strip():
            self.add(join(path, key), "must not be empty")
            return None
        if max_len is not None and len(value) > max_len:
            self.add(join(path, key), f"must be at most {max_len} characters")
            return None
        return value

    def choice(self, data: Mapping[str, Any], key: str, path: str, choices: Iterable[str], *,
               required: bool = False) -> str | None:
        choices = tuple(choices)
        value = data.get(key)
        if value is None and not required:
            return None
        if value not in choices:
            self.add(join(path, key), "required: one of " + ", ".join(choices) if value is None
                     else "must be one of " + ", ".join(choices))
            return None
        return value

    def labels(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> dict[str, str]:
        value = self.obj(data, key, path, required=required)
        if value is None:
            return {}
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        for k in bad:
            self.add(join(join(path, key), k), "must be a string")
        return {} if bad else value

    def timestamp(self, data: Mapping[str, Any], key: str, path: str) -> str | None:
        """An RFC 3339 timestamp with a time zone, kept as sent."""
        value = self.text(data, key, path)
        if value is None:
            return None
        if not _RFC3339.fullmatch(value):
            self.add(join(path, key), "must be an RFC 3339 timestamp like 2026-03-02T09:00:00Z")
            return None
        try:
            datetime.fromisoformat(value.upper())
        except ValueError as exc:
            self.add(join(path, key), f"is not a valid timestamp: {exc}")
            return None
        return value


@dataclass(frozen=True, slots=True)
class _Alert:
    firing: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    evidence: dict[str, Any]


_GROUP_EVIDENCE = ("receiver", "groupKey", "externalURL")
_GRAFANA_ALERT_EVIDENCE = ("dashboardURL", "panelURL", "silenceURL", "imageURL", "valueString")


def _parse_webhook(data: Mapping[str, Any], source: Intake, problems: _Problems) -> list[_Alert]:
    """Alertmanager's webhook v4 payload (Grafana's is a superset); unknown fields are ignored.

    Unknown fields are not errors here, unlike our own API: both senders add fields between
    releases, and refusing a payload would drop real alerts.
    """
    version = problems.text(data, "version", "")
    if source == "alertmanager" and version is not None and version != "4":
        problems.add("version", f"unsupported version {version[:20]!r}: this endpoint takes Alertmanager's version 4 "
                                "(Grafana posts to /api/v1/alerts/grafana)")
    problems.choice(data, "status", "", ("firing", "resolved"))
    for key in (*_GROUP_EVIDENCE, "title", "state", "message"):
        problems.text(data, key, "")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        problems.labels(data, key, "")
    for key in ("truncatedAlerts", "orgId"):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool)):
            problems.add(key, "must be an integer")
    raw_alerts = data.get("alerts")
    if raw_alerts is None:
        problems.add("alerts", "required")
        return []
    if not isinstance(raw_alerts, list):
        problems.add("alerts", "must be a list of alerts")
        return []
    group = {key: data[key] for key in (*_GROUP_EVIDENCE, "orgId") if isinstance(data.get(key), (str, int))}
    alerts = []
    for i, item in enumerate(raw_alerts):
        path = f"alerts[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "must be a JSON object")
            continue
        status = problems.choice(item, "status", path, ("firing", "resolved"), required=True)
        labels = problems.labels(item, "labels", path, required=True)
        annotations = problems.labels(item, "annotations", path)
        evidence: dict[str, Any] = {"labels": labels, "annotations": annotations, **group}
        for key in ("startsAt", "endsAt"):
            if (ts := problems.timestamp(item, key, path)) is not None:
                evidence[key] = ts
        for key in ("generatorURL", *(_GRAFANA_ALERT_EVIDENCE if source == "grafana" else ())):
            if (text := problems.text(item, key, path)) is not None:
                evidence[key] = text
        fingerprint = (problems.text(item, "fingerprint", path, max_len=128) or "").strip()  # blank: keyed by labels
        if fingerprint:
            evidence["fingerprint"] = fingerprint
        if source == "grafana" and (values := _grafana_values(item, path, problems)) is not None:
            evidence["values"] = values
        if status is not None:
            alerts.append(_Alert(status == "firing", labels, annotations, fingerprint, evidence))
    return alerts


def _grafana_values(item: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, Any] | None:
    values = problems.obj(item, "values", path)
    if values is None:
        return None
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.add(join(join(path, "values"), key), "must be a number or null")
    return values


def _labels_hash(labels: Mapping[str, str]) -> str:
    """A stable key for a label set, for senders that leave out `fingerprint`."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return "labels-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _summary(alert: _Alert) -> str:
    text = (alert.annotations.get("summary", "").strip() or alert.annotations.get("description", "").strip()
            or alert.labels.get("alertname", "").strip() or "Alert without a summary")
    return _clip(text if alert.firing else f"Resolved: {text}")


def _clip(text: str) -> str:
    return text if len(text) <= _SUMMARY_MAX else text[:_SUMMARY_MAX - 1] + "…"


@dataclass(frozen=True, slots=True)
class _PagerDutyEvent:
    integration: str
    action: str
    dedup_key: str | None
    payload: dict[str, Any]
    evidence: dict[str, Any]


def _parse_pagerduty(data: Mapping[str, Any], integration: str | None, problems: _Problems) -> _PagerDutyEvent | None:
    """A PagerDuty Events API v2 event; fields PagerDuty ignores for an action are ignored here too."""
    action = problems.choice(data, "event_action", "", PAGERDUTY_ACTIONS, required=True)
    dedup_key = problems.text(data, "dedup_key", "", max_len=255)
    if dedup_key is not None and not dedup_key.strip():
        problems.add("dedup_key", "must not be empty")
    if action in ("acknowledge", "resolve") and data.get("dedup_key") is None:
        problems.add("dedup_key", f"required to {action}")
    payload: dict[str, Any] = {}
    evidence: dict[str, Any] = {"integration": integration}
    if action == "trigger":
        if (given := problems.obj(data, "payload", "", required=True)) is not None:
            payload = given
            problems.text(payload, "summary", "payload", required=True, max_len=_SUMMARY_MAX)
            problems.text(payload, "source", "payload", required=True, max_len=_SUMMARY_MAX)
            problems.choice(payload, "severity", "payload", PAGERDUTY_SEVERITIES, required=True)
            problems.timestamp(payload, "timestamp", "payload")
            for key in ("component", "group", "class"):
                problems.text(payload, key, "payload", max_len=255)
            evidence.update({key: payload[key] for key in ("source", "severity", "component", "group", "class",
                                                           "timestamp", "custom_details") if key in payload})
        for key in ("client", "client_url"):
            if (text := problems.text(data, key, "")) is not None:
                evidence[key] = text
        for key in ("links", "images"):
            if key in data:
                if isinstance(data[key], list) and all(isinstance(x, dict) for x in data[key]):
                    evidence[key] = data[key]
                else:
                    problems.add(key, "must be a list of JSON objects")
    if problems or integration is None or action is None:
        return None
    return _PagerDutyEvent(integration, action, dedup_key, payload, evidence)


# --- handlers ----------------------------------------------------------------------------

class AlertIntake:
    """The alert webhooks: each alert becomes one Signal; repeats and retries join the incident it opened."""

    def __init__(self, config: AlertsConfig, coordinator: Coordinator, clock: Clock,
                 known_components: KnownComponents) -> None:
        """`known_components` is the set of component ids, or an async callable giving it per request."""
        self.config = config
        self.coordinator = coordinator
        self.clock = clock
        self.mapper = AlertMapper(config)
        self._known = known_components
        self._token = config.token.reveal().encode() if config.token else None
        self._routing_keys = [(key.reveal().encode(), name) for name, key in config.pagerduty.items()]
        if self._token is None:
            log.warning("alerts.token is not set: the Alertmanager and Grafana webhooks accept alerts from anyone "
                        "who can reach them")

    def add_routes(self, app: web.Application) -> None:
        """Alertmanager and Grafana under /api/v1/alerts, PagerDuty Events v2 at its own path too."""
        app.router.add_post("/api/v1/alerts/alertmanager", self.alertmanager)
        app.router.add_post("/api/v1/alerts/grafana", self.grafana)
        app.router.add_post("/api/v1/alerts/pagerduty", self.pagerduty)
        # So a PagerDuty client pointed at statusd's base URL instead of events.pagerduty.com works as is.
        app.router.add_post("/v2/enqueue", self.pagerduty)

    async def alertmanager(self, request: web.Request) -> web.Response:
        """Prometheus Alertmanager webhook (payload version 4)."""
        return await self._webhook(request, "alertmanager")

    async def grafana(self, request: web.Request) -> web.Response:
        """Grafana unified alerting webhook contact point."""
        return await self._webhook(request, "grafana")

    async def _webhook(self, request: web.Request, source: Intake) -> web.Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        try:
            raw = await read_body(request, self.config.max_body_bytes, "alerts.max_body_bytes")
        except ValidationError as exc:
            return error_response(exc.status, exc.field, exc.message)
        problems = _Problems()
        data = _json_object(raw, problems)
        alerts = _parse_webhook(data, source, problems) if data is not None else []
        if problems:
            (path, message), more = problems.items[0], len(problems.items) - 1
            return error_response(400, path, message + (f" (and {more} more)" if more else ""))
        known = await self._known_components()
        signals = [self._alert_signal(source, alert, known) for alert in alerts]
        # One transaction per alert: if one fails the sender retries the whole payload, and
        # the alerts already applied are joined by dedup key, not opened twice.
        results = []
        for signal in signals:
            incident = await self._apply(signal)
            results.append({"dedup_key": signal.dedup_key, "firing": signal.firing,
                            "incident": incident.id if incident else None})
        return web.json_response({"status": "success", "alerts": results})

    def _alert_signal(self, source: Intake, alert: _Alert, known: AbstractSet[str]) -> Signal:
        dedup_key = f"{source}:{alert.fingerprint or _labels_hash(alert.labels)}"
        target = self.mapper.map(source, alert.labels, known)
        return Signal(source=source, dedup_key=dedup_key, components=target.components, severity=target.severity,
                      summary=_summary(alert), at=self.clock.now(), firing=alert.firing,
                      evidence=self._evidence(dedup_key, alert.evidence, target, firing=alert.firing))

    def _evidence(self, dedup_key: str, evidence: dict[str, Any], target: Target, *, firing: bool) -> dict[str, Any]:
        evidence = {**evidence, "rule": target.rule if target.rule is not None else "default"}
        if target.unmapped and firing:
            # Accepted without the unknown components rather than refused: Alertmanager does not
            # retry a 4xx, so refusing would drop the whole group and hide a real outage behind
            # one mislabelled alert. The log and the incident's evidence say what was left out.
            log.warning("alert %s names unknown component(s) %s; accepted without them (check [[alerts.rules]] "
                        "and the alert's labels)", dedup_key, ", ".join(repr(c) for c in target.unmapped))
            evidence["unmapped_components"] = list(target.unmapped)
        return evidence

    async def _apply(self, signal: Signal) -> Incident | None:
        if signal.firing:
            return await self.coordinator.handle(signal)
        return await self._recover(signal)

    async def _recover(self, signal: Signal) -> Incident | None:
        """Resolve the open incident for `signal.dedup_key`, if there is one.

        A resolution for an alert with no open incident changes nothing: letting it through
        would reset its components to operational, undoing a status someone set by hand. The
        incident's own components are restored, whatever the mapping says today.
        """
        async with self.coordinator.store.read() as r:
            incident = await r.incidents.find_open_by_dedup_key(signal.dedup_key)
        if incident is None:
            log.debug("resolution for %s without an open incident; nothing to do", signal.dedup_key)
            return None
        return await self.coordinator.handle(replace(signal, components=incident.components,
                                                     severity=ComponentStatus.OPERATIONAL))

    async def pagerduty(self, request: web.Request) -> web.Response:
        """PagerDuty Events API v2: trigger, acknowledge and resolve by routing key and dedup key."""
        try:
            raw = await read_body(request, self.config.max_body_bytes, "alerts.max_body_bytes")
        except TooLarge as exc:
            return _pagerduty_invalid(413, [f"{exc.field}: {exc.message}"], message="Event object is too large")
        except ValidationError as exc:
            return _pagerduty_invalid(exc.status, [f"{exc.field}: {exc.message}"])
        problems = _Problems()
        data = _json_object(raw, problems)
        event = None
        if data is not None:
            integration = self._integration(data, problems)
            event = _parse_pagerduty(data, integration, problems)
        if event is None:
            return _pagerduty_invalid(400, [f"{path}: {message}" for path, message in problems.items])
        dedup_key = event.dedup_key or uuid.uuid4().hex
        key = f"pagerduty:{event.integration}:{dedup_key}"
        if event.action == "trigger":
            await self.coordinator.handle(await self._pagerduty_signal(event, key))
        elif event.action == "acknowledge":
            await self._acknowledge(key, by=f"PagerDuty event ({event.integration})")
        else:
            await self._recover(Signal(source="pagerduty", dedup_key=key, components=(),
                                       severity=ComponentStatus.OPERATIONAL,
                                       summary=f"Resolved by PagerDuty event ({event.integration})",
                                       at=self.clock.now(), firing=False, evidence=event.evidence))
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup_key},
                                 status=202)

    def _integration(self, data: Mapping[str, Any], problems: _Problems) -> str | None:
        """The integration whose routing key `data` carries; the key itself never reaches a response or log."""
        presented = data.get("routing_key")
        if presented is None:
            problems.add("routing_key", "required")
            return None
        if not isinstance(presented, str):
            problems.add("routing_key", "must be a string")
            return None
        found = None
        for key, name in self._routing_keys:  # compare with every key, in constant time each
            if hmac.compare_digest(key, presented.encode("utf-8", "surrogateescape")):
                found = name
        if found is None:
            problems.add("routing_key", "Invalid routing key")
        return found

    async def _pagerduty_signal(self, event: _PagerDutyEvent, dedup_key: str) -> Signal:
        payload = event.payload
        labels = {"integration": event.integration, "source": payload["source"], "severity": payload["severity"]}
        labels.update({key: payload[key] for key in ("component", "group", "class") if payload.get(key)})
        target = self.mapper.map("pagerduty", labels, await self._known_components())
        return Signal(source="pagerduty", dedup_key=dedup_key, components=target.components, severity=target.severity,
                      summary=_clip(payload["summary"].strip()), at=self.clock.now(),
                      evidence=self._evidence(dedup_key, event.evidence, target, firing=True))

    async def _acknowledge(self, dedup_key: str, *, by: str) -> None:
        async with self.coordinator.store.read() as r:
            incident = await r.incidents.find_open_by_dedup_key(dedup_key)
        if incident is None:  # PagerDuty accepts these too; there is nothing to acknowledge
            log.debug("acknowledgement for %s without an open incident; nothing to do", dedup_key)
            return
        try:
            await self.coordinator.acknowledge(incident.id, by=by)
        except Conflict:  # already acknowledged (or resolved meanwhile): the first acknowledgement stands
            pass

    def _authenticate(self, request: web.Request) -> web.Response | None:
        """None when the request carries `alerts.token` (or none is configured), else the 401 to answer."""
        if self._token is None:
            return None
        presented = _presented_token(request)
        if presented is None:
            return _unauthorized("missing credentials: send Authorization: Bearer <alerts.token> or ?token=")
        if not hmac.compare_digest(self._token, presented.encode("utf-8", "surrogateescape")):
            return _unauthorized("invalid token")
        return None

    async def _known_components(self) -> AbstractSet[str]:
        known = self._known() if callable(self._known) else self._known
        if inspect.isawaitable(known):
            known = await known
        return known


def _presented_token(request: web.Request) -> str | None:
    """The credential from `Authorization` (Bearer, or Basic with it as password), else from `?token=`.

    `?token=` is for senders that cannot set headers; it ends up in proxies' access logs.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return request.query.get("token") or None
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if scheme.lower() == "basic" and credentials:
        # Basic auth with the token as password, for senders that only offer user and password.
        try:
            return base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")[2] or None
        except ValueError:  # not base64 (binascii.Error), non-ASCII, or not UTF-8 once decoded
            return None
    return None


def _unauthorized(message: str) -> web.Response:
    response = error_response(401, "Authorization", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="statusd alerts"'
    return response


def _pagerduty_invalid(status: int, errors: list[str], *, message: str = "Event object is invalid") -> web.Response:
    # PagerDuty's own error shape, not our `{"error": {...}}`: Events v2 clients parse this one.
    return web.json_response({"status": "invalid event", "message": message, "errors": errors}, status=status)
