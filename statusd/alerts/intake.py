"""The alert webhooks: Alertmanager, Grafana and PagerDuty Events v2 in over HTTP, Signals to the coordinator.

Every alert becomes one Signal whose dedup key is stable across retries, repeats and
Alertmanager HA peers, so the coordinator's dedup — not this module — guarantees one
incident per alert. A payload is validated as a whole before its first Signal is
handled: a bad payload writes nothing. Nothing is sent from here.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

from aiohttp import web

from statusd.alerts.config import AlertsConfig, Intake
from statusd.alerts.mapping import AlertMapper, Target
from statusd.alerts.payloads import (Alert, PagerDutyEvent, clip, json_object, labels_hash, parse_pagerduty,
                                     parse_webhook, summary)
from statusd.core.clock import Clock
from statusd.core.errors import Conflict, ValidationError
from statusd.core.model import ComponentStatus, Incident, Signal
from statusd.incidents.coordinator import Coordinator
from statusd.web.auth import presented_secret, same_secret
from statusd.web.body import TooLarge, read_body
from statusd.web.errors import error_response
from statusd.web.fields import Problems

log = logging.getLogger(__name__)

KnownComponents = Callable[[], Awaitable[AbstractSet[str]]] | AbstractSet[str]


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
        problems = Problems()
        data = json_object(raw, problems)
        alerts = parse_webhook(data, source, problems) if data is not None else []
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

    def _alert_signal(self, source: Intake, alert: Alert, known: AbstractSet[str]) -> Signal:
        dedup_key = f"{source}:{alert.fingerprint or labels_hash(alert.labels)}"
        target = self.mapper.map(source, alert.labels, known)
        return Signal(source=source, dedup_key=dedup_key, components=target.components, severity=target.severity,
                      summary=summary(alert), at=self.clock.now(), firing=alert.firing,
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
        problems = Problems()
        data = json_object(raw, problems)
        event = None
        if data is not None:
            integration = self._integration(data, problems)
            event = parse_pagerduty(data, integration, problems)
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

    def _integration(self, data: Mapping[str, Any], problems: Problems) -> str | None:
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
            if same_secret(key, presented):
                found = name
        if found is None:
            problems.add("routing_key", "Invalid routing key")
        return found

    async def _pagerduty_signal(self, event: PagerDutyEvent, dedup_key: str) -> Signal:
        payload = event.payload
        labels = {"integration": event.integration, "source": payload["source"], "severity": payload["severity"]}
        labels.update({key: payload[key] for key in ("component", "group", "class") if payload.get(key)})
        target = self.mapper.map("pagerduty", labels, await self._known_components())
        return Signal(source="pagerduty", dedup_key=dedup_key, components=target.components, severity=target.severity,
                      summary=clip(payload["summary"].strip()), at=self.clock.now(),
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
        presented = presented_secret(request)
        if presented is None:
            return _unauthorized("missing credentials: send Authorization: Bearer <alerts.token> or ?token=")
        if not same_secret(self._token, presented):
            return _unauthorized("invalid token")
        return None

    async def _known_components(self) -> AbstractSet[str]:
        known = self._known() if callable(self._known) else self._known
        if inspect.isawaitable(known):
            known = await known
        return known


def _unauthorized(message: str) -> web.Response:
    response = error_response(401, "Authorization", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="statusd alerts"'
    return response


def _pagerduty_invalid(status: int, errors: list[str], *, message: str = "Event object is invalid") -> web.Response:
    # PagerDuty's own error shape, not our `{"error": {...}}`: Events v2 clients parse this one.
    return web.json_response({"status": "invalid event", "message": message, "errors": errors}, status=status)
