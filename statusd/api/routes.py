"""The token-authenticated write API (/api/v1) and the signed links for people, as one route table.

Bad input never reaches the coordinator: every body is checked field by field first and
answered with 4xx and `{"error": {"field": ..., "message": ...}}`. Nothing here sends a
notification; the coordinator commits outbox rows and the worker delivers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from statusd.api.components import ComponentsApi
from statusd.api.incidents import IncidentsApi
from statusd.api.kpis import KpisApi
from statusd.api.openapi import OPENAPI_ROUTE, serve_document
from statusd.api.oncall import OnCallApi, RenderPage
from statusd.api.outbox import OutboxApi
from statusd.api.subscribers import SubscribersApi
from statusd.core.protocols import Store
from statusd.incidents.coordinator import Coordinator
from statusd.oncall.schedule import Schedule
from statusd.web.auth import READ, Token, TokenAuth
from statusd.web.signing import Signer
from statusd.web.urls import ACK_ROUTE, ICAL_ROUTE


class WriteApi:
    """/api/v1: one handler object per noun behind one set of tokens, and every route in one table."""

    def __init__(self, store: Store, coordinator: Coordinator, tokens: Mapping[str, Token],
                 notifiers: Mapping[str, Any], *, render_page: RenderPage,
                 schedules: Mapping[str, Schedule] | None = None, signer: Signer | None = None,
                 base_url: str = "") -> None:
        """`notifiers` maps a notifier name to its config, whose `check_recipient` vets subscriber targets;
        `render_page(title, safe_body_html, status)` puts a confirmation page in the status page's layout."""
        self.auth = TokenAuth(tokens.values())
        self.render_page = render_page
        self.incidents = IncidentsApi(store, coordinator, self.auth)
        self.components = ComponentsApi(store, coordinator, self.auth)
        self.subscribers = SubscribersApi(store, coordinator.clock, self.auth, notifiers)
        self.outbox = OutboxApi(store, self.auth)
        self.kpis = KpisApi(store, coordinator.clock, self.auth)
        self.oncall = OnCallApi(coordinator, self.auth, schedules or {}, render_page=render_page, signer=signer,
                                base_url=base_url)

    def authorize(self, request: web.Request, scope: str | None) -> Token:
        """The token presented as `Authorization: Bearer …`; 401 without a valid one, 403 without `scope`.

        No route is open to every token: without a `scope` (a read), the token needs `incidents:read`.
        """
        return self.auth.authorize(request, scope or READ)

    def add_routes(self, app: web.Application) -> None:
        """Every route of the write API and of the signed links."""
        incidents, oncall = self.incidents, self.oncall
        app.router.add_post("/api/v1/incidents", incidents.open_incident)
        app.router.add_get("/api/v1/incidents/{id}", incidents.get_incident)
        app.router.add_post("/api/v1/incidents/{id}/updates", incidents.post_update)
        app.router.add_post("/api/v1/incidents/{id}/acknowledge", incidents.acknowledge)
        app.router.add_post("/api/v1/incidents/{id}/resolve", incidents.resolve)
        app.router.add_put("/api/v1/components/{id}", self.components.set_component)
        app.router.add_get("/api/v1/subscribers", self.subscribers.list_subscribers)
        app.router.add_post("/api/v1/subscribers", self.subscribers.add_subscriber)
        app.router.add_delete("/api/v1/subscribers/{id}", self.subscribers.remove_subscriber)
        app.router.add_get("/api/v1/outbox", self.outbox.list_outbox)
        app.router.add_post("/api/v1/incidents/{id}/handoff", incidents.hand_off)
        app.router.add_put("/api/v1/incidents/{id}/comms", incidents.set_comms)
        app.router.add_post("/api/v1/incidents/{id}/postmortem", incidents.postmortem)
        app.router.add_post("/api/v1/incidents/{id}/merge", incidents.merge)
        app.router.add_get("/api/v1/kpis", self.kpis.kpis)
        app.router.add_get("/api/v1/oncall", oncall.who_is_on_call)
        app.router.add_get("/api/v1/schedules", oncall.list_schedules)
        app.router.add_get("/api/v1/schedules/{id}/shifts", oncall.shifts)
        app.router.add_get(ICAL_ROUTE, oncall.ical)
        app.router.add_get(ACK_ROUTE, oncall.ack_link_page)
        app.router.add_post(ACK_ROUTE, oncall.ack_link)
        app.router.add_get(OPENAPI_ROUTE, serve_document)
