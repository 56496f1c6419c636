"""/api/v1/incidents: open, read, update, acknowledge, resolve, hand over, merge and write the postmortem."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from statusd.core.errors import NotFound, ValidationError
from statusd.core.model import ComponentStatus, Impact, Incident, IncidentStatus, TimelineEntry
from statusd.core.protocols import Store
from statusd.incidents.coordinator import Coordinator
from statusd.web.auth import READ, Token, TokenAuth
from statusd.web.fields import Fields, iso, path_id


def incident_json(incident: Incident, entries: list[TimelineEntry] | None = None) -> dict[str, Any]:
    """An incident as the write API shows it, internal timeline included."""
    out: dict[str, Any] = {
        "id": incident.id, "title": incident.title, "status": incident.status.value,
        "impact": incident.impact.value, "components": list(incident.components), "source": incident.source,
        "dedup_key": incident.dedup_key, "assignee": incident.assignee,
        "acknowledged_at": iso(incident.acknowledged_at), "acknowledged_by": incident.acknowledged_by,
        "first_public_update_at": iso(incident.first_public_update_at), "opened_at": iso(incident.opened_at),
        "updated_at": iso(incident.updated_at), "resolved_at": iso(incident.resolved_at),
        "commander": incident.commander, "comms": incident.comms, "handoff": incident.handoff,
        "escalation": incident.escalation, "postmortem": incident.postmortem,
        "postmortem_at": iso(incident.postmortem_at), "kpis": incident.kpis(),
    }
    if entries is not None:
        out["timeline"] = [
            {"id": e.id, "at": iso(e.at), "kind": e.kind.value, "public": e.public, "author": e.author,
             "status": e.status.value if e.status else None, "body": e.body, "data": e.data}
            for e in entries
        ]
    return out


class IncidentsApi:
    """The incident handlers: each checks its token and body, then asks the coordinator, which notifies."""

    def __init__(self, store: Store, coordinator: Coordinator, auth: TokenAuth) -> None:
        self.store = store
        self.coordinator = coordinator
        self.auth = auth

    async def open_incident(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents (incidents:write): 201 with the new incident."""
        token = self.auth.authorize(request, "incidents:write")
        body = await Fields.read(request, {"title", "body", "components", "component_status", "impact", "status",
                                           "notify"})
        incident = await self.coordinator.open_incident(
            title=body.text("title", required=True, max_len=200) or "",
            body=body.text("body", required=True) or "",
            author=token.name,
            components=body.names("components"),
            component_status=body.choice("component_status", ComponentStatus),
            impact=body.choice("impact", Impact),
            status=body.choice("status", IncidentStatus) or IncidentStatus.INVESTIGATING,
            notify=body.flag("notify", True),
        )
        return web.json_response({"incident": incident_json(incident)}, status=201)

    async def get_incident(self, request: web.Request) -> web.Response:
        """GET /api/v1/incidents/{id} (incidents:read): the incident with its whole timeline."""
        self.auth.authorize(request, READ)
        incident_id = path_id(request)
        async with self.store.read() as r:
            incident = await r.incidents.get(incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            entries = (await r.incidents.entries([incident_id]))[incident_id]
        return web.json_response({"incident": incident_json(incident, entries)})

    async def post_update(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/updates (incidents:write): a public update, 201, with its components' statuses.

        `component_status` sets every component of the incident to it, better or worse.
        """
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"body", "status", "impact", "component_status", "notify"})
        incident = await self.coordinator.post_update(
            incident_id, body=body.text("body", required=True) or "", author=token.name,
            status=body.choice("status", IncidentStatus), impact=body.choice("impact", Impact),
            component_status=body.choice("component_status", ComponentStatus), notify=body.flag("notify", True),
        )
        async with self.store.read() as r:  # what the status page now shows for them, set by hand or not
            statuses = [{"id": c.id, "status": c.status.value} for cid in incident.components
                        if (c := await r.components.get(cid)) is not None]
        return web.json_response({"incident": incident_json(incident), "components": statuses}, status=201)

    async def acknowledge(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/acknowledge (incidents:write): someone named takes ownership.

        The token's person acknowledges; a token without one names the person taking ownership in
        `person`, since an acknowledgement stops escalation and must leave the incident an owner.
        """
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"person"})
        named = body.text("person", max_len=100)
        person = self._owner(token, named)
        incident = await self.coordinator.acknowledge(incident_id, by=token.name, person=person)
        return web.json_response({"incident": incident_json(incident)})

    def _owner(self, token: Token, named: str | None) -> str:
        """Who takes ownership: the token's person, else the configured person `named` (400 naming `person`)."""
        if token.person is not None:
            if named is not None and named != token.person:
                raise ValidationError("person", f"this token acts as {token.person!r}; leave person out")
            return token.person
        if not named:
            raise ValidationError("person", "required: the id of the person taking ownership (this token has no "
                                            "person of its own)")
        if named not in self.coordinator.people:
            raise ValidationError("person", f"no person {named!r} in [people]")
        return named

    async def resolve(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/resolve (incidents:write)."""
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"body", "notify"})
        text = body.text("body", default="This incident has been resolved.") or "This incident has been resolved."
        incident = await self.coordinator.resolve(incident_id, body=text, author=token.name,
                                                  notify=body.flag("notify", True))
        return web.json_response({"incident": incident_json(incident)})

    async def hand_off(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/handoff (incidents:write): 202, ownership moves once `to` acknowledges."""
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"to", "note"})
        incident = await self.coordinator.hand_off(
            incident_id, to=body.text("to", required=True, max_len=100) or "", note=body.text("note", default="") or "",
            by=token.name, person=token.person)
        return web.json_response({"incident": incident_json(incident)}, status=202)

    async def set_comms(self, request: web.Request) -> web.Response:
        """PUT /api/v1/incidents/{id}/comms (incidents:write): who writes the public updates."""
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"person"})
        incident = await self.coordinator.set_comms(incident_id, person=body.text("person", max_len=100),
                                                    by=token.name)
        return web.json_response({"incident": incident_json(incident)})

    async def postmortem(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/postmortem (incidents:write): 201 with the published postmortem."""
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"body", "notify"})
        incident = await self.coordinator.publish_postmortem(
            incident_id, body=body.text("body", required=True, max_len=100_000) or "", author=token.name,
            notify=body.flag("notify", False))
        return web.json_response({"incident": incident_json(incident)}, status=201)

    async def merge(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/merge (incidents:write): into the open incident `into`."""
        token = self.auth.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Fields.read(request, {"into"})
        into = body.data.get("into")
        if not isinstance(into, int) or isinstance(into, bool):
            raise ValidationError("into", "required: the id of the open incident to merge into")
        if not 0 < into < 2**63:
            raise NotFound("incident", into)
        incident = await self.coordinator.merge(incident_id, into=into, by=token.name)
        return web.json_response({"incident": incident_json(incident)})
