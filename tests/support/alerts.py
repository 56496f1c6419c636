"""Alert intake for tests: the [alerts] config, an app with only the intake, and Alertmanager payloads."""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from statusd.alerts.config import AlertsConfig
from statusd.alerts.intake import AlertIntake
from statusd.web.application import web_application
from statusd.core.clock import Clock
from statusd.core.model import Component, Incident, Person, Subscriber
from statusd.core.protocols import Store
from statusd.core.schema import Problems, load_section
from statusd.incidents.coordinator import Coordinator, PageInfo, Policy

TOKEN = "alerts-token-0123456789"
BILLING_KEY = "R0UT1NGKEYbilling000000000000001"
OPS_KEY = "R0UT1NGKEYops0000000000000000002"


# What an operator writes under [alerts]; parsed the way the main config parses sections.
ALERTS_TOML = f"""
token = "{TOKEN}"
max_body_bytes = 16384

[pagerduty]
billing = "{BILLING_KEY}"
ops = "{OPS_KEY}"

[[rules]]
sources = ["alertmanager", "grafana"]
match = {{ alertname = "re:Payment.*", env = "prod" }}
components = ["payments"]
severity = "major_outage"

[[rules]]
match = {{ service = "re:api|web" }}
components = ["{{service}}"]

[[rules]]
sources = ["pagerduty"]
match = {{ integration = "billing" }}
components = ["payments"]
"""

COMPONENTS = [Component("api", "Public API", position=0), Component("web", "Website", position=1),
              Component("payments", "Payments", position=2), Component("db", "Database", position=3)]
PEOPLE = {"ann": Person("ann", "Ann Example", {"mail": "ann@example.com"})}


def alerts_config(toml: str = ALERTS_TOML) -> AlertsConfig:
    """`toml` parsed as the [alerts] section; the test fails if it has any problem."""
    problems: Problems = []
    config = load_section(AlertsConfig, tomllib.loads(toml), "alerts", problems)
    assert problems == []
    return config


CONFIG = alerts_config()


def known_components(store: Store) -> Callable[[], Awaitable[set[str]]]:
    """The component ids in the store, read per request (as the composition root would)."""

    async def known() -> set[str]:
        async with store.read() as r:
            return {c.id for c in await r.components.list()}

    return known


async def build_coordinator(store: Store, clock: Clock) -> Coordinator:
    """A coordinator on `store` with the test components and nobody on call (paging is not under test)."""
    async with store.transaction() as tx:
        await tx.components.sync(COMPONENTS, clock.now())
        await tx.subscribers.add(Subscriber("mail", "everything@example.com"))
    # Grouping by component is off: these tests are about each alert's own dedup key.
    return Coordinator(store, clock, people=PEOPLE, page=PageInfo("Example status", "http://status.example.com"),
                       policy=Policy(group_window_s=0))


def build_app(config: AlertsConfig, coordinator: Coordinator, clock: Clock) -> web.Application:
    """An app with only the alert intake, behind the API's JSON error middleware."""
    app = web_application(1024 ** 2)
    AlertIntake(config, coordinator, clock, known_components(coordinator.store)).add_routes(app)
    return app


def am_alert(status: str = "firing", fingerprint: str | None = "a1b2c3d4e5f60718", *,
             summary: str = "Error rate above 5%", **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager's webhook sends it."""
    labels = {"alertname": "HighErrorRate", "service": "api", "severity": "critical", **labels}
    alert: dict[str, Any] = {
        "status": status, "labels": labels, "annotations": {"summary": summary},
        "startsAt": "2026-03-02T08:58:00.123456789Z",
        "endsAt": "2026-03-02T09:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=up",
    }
    if fingerprint is not None:
        alert["fingerprint"] = fingerprint
    return alert


def am_payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager webhook v4 body."""
    alerts = alerts or (am_alert(),)
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4", "groupKey": '{}:{alertname="HighErrorRate"}', "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved", "receiver": "statusd",
        "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example.com:9093", "alerts": list(alerts),
    }


async def all_incidents(store: Store, clock: Clock) -> list[Incident]:
    """Every incident opened in the last day, open or resolved."""
    async with store.read() as r:
        return await r.incidents.list_recent(clock.now() - timedelta(days=1), limit=1000)
