"""The token-authenticated write API (/api/v1), plus /healthz and /metrics.

Bad input never reaches the coordinator: every body is checked field by field first and
answered with 4xx and `{"error": {"field": ..., "message": ...}}`. Nothing here sends a
notification; the coordinator commits outbox rows and the worker delivers them.
"""

from __future__ import annotations

import hmac
import html
import logging
from datetime import datetime, timedelta
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import icalendar
from aiohttp import web

from statusd.incidents.coordinator import Coordinator
from statusd.core.clock import FIRST_YEAR, LAST_YEAR, supported
from statusd.core.errors import Conflict, NotFound, StatusdError, ValidationError
from statusd.web.body import read_body
from statusd.core.json_body import parse_json
from statusd.core.model import ComponentStatus, Impact, Incident, IncidentStatus, Subscriber, TimelineEntry
from statusd.core.protocols import Store
from statusd.web.signing import Signer
from statusd.oncall.schedule import Schedule

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Enum)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Token:
    """An API credential: `name` signs what is posted with it."""

    id: str
    name: str
    secret: str
    scopes: frozenset[str]
    person: str | None = None  # acts as this person when acknowledging or handing over


def error_response(status: int, field: str | None, message: str) -> web.Response:
    """The one JSON error shape of every API answer."""
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["field"] = field
    return web.json_response({"error": body}, status=status)


def web_application(max_body_bytes: int) -> web.Application:
    """The app every statusd route is added to: JSON errors, the body limit, and bodies decoded by read_body."""
    return web.Application(middlewares=[json_errors], client_max_size=max_body_bytes,
                           handler_args={"auto_decompress": False})


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors into 4xx JSON; never leak a stack trace to a client."""
    try:
        return await handler(request)
    except ValidationError as exc:
        return error_response(exc.status, exc.field, exc.message)
    except NotFound as exc:
        return error_response(404, None, str(exc))
    except Conflict as exc:
        return error_response(409, None, str(exc))
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        field, message = None, exc.reason
        if exc.status == 401:
            field = "Authorization"
        elif exc.status == 413:  # name the limit, so a client knows to send fewer reports per batch
            field, message = "body", f"is larger than {request.client_max_size} bytes ([server] max_body_bytes)"
        response = error_response(exc.status, field, message)
        if "WWW-Authenticate" in exc.headers:
            response.headers["WWW-Authenticate"] = exc.headers["WWW-Authenticate"]
        return response
    except StatusdError as exc:
        return error_response(400, None, str(exc))
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return error_response(500, None, "internal error; the server log has the details")
        raise web.HTTPInternalServerError(text="Internal error") from None


# --- input -------------------------------------------------------------------------------

class Body:
    """A JSON object from a request, read field by field; unknown fields are errors."""

    def __init__(self, data: Mapping[str, Any], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                raise ValidationError(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
        self.data = data

    @classmethod
    async def read(cls, request: web.Request, allowed: set[str]) -> Body:
        raw = await read_body(request, request.client_max_size, "[server] max_body_bytes")
        if not raw:
            return cls({}, allowed)
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise ValidationError("body", "must be a JSON object")
        return cls(data, allowed)

    def text(self, key: str, *, required: bool = False, max_len: int = 10_000, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ValidationError(key, "required")
            return default
        if not isinstance(value, str):
            raise ValidationError(key, "must be a string")
        value = value.strip()
        if required and not value:
            raise ValidationError(key, "must not be empty")
        if len(value) > max_len:
            raise ValidationError(key, f"must be at most {max_len} characters")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ValidationError(key, "must be true or false")
        return value

    def choice(self, key: str, enum: type[E], *, required: bool = False) -> E | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ValidationError(key, "required")
            return None
        try:
            return enum(value)
        except ValueError:
            raise ValidationError(key, "must be one of: " + ", ".join(str(m.value) for m in enum)) from None

    def names(self, key: str, *, max_items: int = 100) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(key, "must be a list of strings")
        if len(value) > max_items:
            raise ValidationError(key, f"must have at most {max_items} items")
        return value


def path_id(request: web.Request, what: str = "incident") -> int:
    """The `{id}` of the path: 400 if it is not an integer, 404 if no row could have it (64-bit ids)."""
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):  # int() would also take "+1", " 1", "1_0" and other scripts' digits
        raise ValidationError("id", "must be an integer")
    value = int(raw) if len(raw) <= 19 else 2**63  # (and thousands of digits are an error of their own)
    if not 0 < value < 2**63:
        raise NotFound(what, value)
    return value


# --- output ------------------------------------------------------------------------------

def _ts(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def incident_json(incident: Incident, entries: list[TimelineEntry] | None = None) -> dict[str, Any]:
    """An incident as the write API shows it, internal timeline included."""
    out: dict[str, Any] = {
        "id": incident.id, "title": incident.title, "status": incident.status.value,
        "impact": incident.impact.value, "components": list(incident.components), "source": incident.source,
        "dedup_key": incident.dedup_key, "assignee": incident.assignee,
        "acknowledged_at": _ts(incident.acknowledged_at), "acknowledged_by": incident.acknowledged_by,
        "first_public_update_at": _ts(incident.first_public_update_at), "opened_at": _ts(incident.opened_at),
        "updated_at": _ts(incident.updated_at), "resolved_at": _ts(incident.resolved_at),
        "commander": incident.commander, "comms": incident.comms, "handoff": incident.handoff,
        "escalation": incident.escalation, "postmortem": incident.postmortem,
        "postmortem_at": _ts(incident.postmortem_at), "kpis": incident.kpis(),
    }
    if entries is not None:
        out["timeline"] = [
            {"id": e.id, "at": _ts(e.at), "kind": e.kind.value, "public": e.public, "author": e.author,
             "status": e.status.value if e.status else None, "body": e.body, "data": e.data}
            for e in entries
        ]
    return out


# --- handlers ------------------------------------------------------------------------------

class WriteApi:
    """/api/v1: open, update, acknowledge and resolve incidents; component status; subscribers."""

    def __init__(self, store: Store, coordinator: Coordinator, tokens: Mapping[str, Token],
                 notifiers: Mapping[str, Any], *, render_page: Callable[[str, str, int], web.Response],
                 schedules: Mapping[str, Schedule] | None = None, signer: Signer | None = None,
                 base_url: str = "") -> None:
        """`notifiers` maps a notifier name to its config, whose `check_recipient` vets subscriber targets;
        `render_page(title, safe_body_html, status)` puts a confirmation page in the status page's layout."""
        self.store = store
        self.coordinator = coordinator
        self.tokens = list(tokens.values())
        self.notifiers = dict(notifiers)
        self.schedules = dict(schedules or {})
        self.signer = signer
        self.base_url = base_url
        self.render_page = render_page

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/incidents", self.open_incident)
        app.router.add_get("/api/v1/incidents/{id}", self.get_incident)
        app.router.add_post("/api/v1/incidents/{id}/updates", self.post_update)
        app.router.add_post("/api/v1/incidents/{id}/acknowledge", self.acknowledge)
        app.router.add_post("/api/v1/incidents/{id}/resolve", self.resolve)
        app.router.add_put("/api/v1/components/{id}", self.set_component)
        app.router.add_get("/api/v1/subscribers", self.list_subscribers)
        app.router.add_post("/api/v1/subscribers", self.add_subscriber)
        app.router.add_delete("/api/v1/subscribers/{id}", self.remove_subscriber)
        app.router.add_get("/api/v1/outbox", self.list_outbox)
        app.router.add_post("/api/v1/incidents/{id}/handoff", self.hand_off)
        app.router.add_put("/api/v1/incidents/{id}/comms", self.set_comms)
        app.router.add_post("/api/v1/incidents/{id}/postmortem", self.postmortem)
        app.router.add_post("/api/v1/incidents/{id}/merge", self.merge)
        app.router.add_get("/api/v1/kpis", self.kpis)
        app.router.add_get("/api/v1/oncall", self.who_is_on_call)
        app.router.add_get("/api/v1/schedules", self.list_schedules)
        app.router.add_get("/api/v1/schedules/{id}/shifts", self.shifts)
        app.router.add_get("/schedules/{id}.ics", self.ical)
        app.router.add_get("/ack/{id}/{person}/{sig}", self.ack_link_page)
        app.router.add_post("/ack/{id}/{person}/{sig}", self.ack_link)

    def authorize(self, request: web.Request, scope: str | None) -> Token:
        """The token presented as `Authorization: Bearer …`; 401 without a valid one, 403 without `scope`."""
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise _unauthorized("missing bearer token")
        found = None
        for token in self.tokens:  # compare with every token, in constant time each
            if hmac.compare_digest(token.secret.encode(), presented.strip().encode("utf-8", "surrogateescape")):
                found = token
        if found is None:
            raise _unauthorized("invalid token")
        if scope is not None and scope not in found.scopes and "admin" not in found.scopes:
            raise web.HTTPForbidden(reason=f"token lacks the {scope} scope")
        return found

    async def open_incident(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        body = await Body.read(request, {"title", "body", "components", "component_status", "impact", "status", "notify"})
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
        self.authorize(request, None)
        incident_id = path_id(request)
        async with self.store.read() as r:
            incident = await r.incidents.get(incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            entries = (await r.incidents.entries([incident_id]))[incident_id]
        return web.json_response({"incident": incident_json(incident, entries)})

    async def post_update(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Body.read(request, {"body", "status", "impact", "component_status", "notify"})
        incident = await self.coordinator.post_update(
            incident_id, body=body.text("body", required=True) or "", author=token.name,
            status=body.choice("status", IncidentStatus), impact=body.choice("impact", Impact),
            component_status=body.choice("component_status", ComponentStatus), notify=body.flag("notify", True),
        )
        return web.json_response({"incident": incident_json(incident)}, status=201)

    async def acknowledge(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        await Body.read(request, set())
        incident = await self.coordinator.acknowledge(incident_id, by=token.name, person=token.person)
        return web.json_response({"incident": incident_json(incident)})

    async def resolve(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Body.read(request, {"body", "notify"})
        text = body.text("body", default="This incident has been resolved.") or "This incident has been resolved."
        incident = await self.coordinator.resolve(incident_id, body=text, author=token.name,
                                                  notify=body.flag("notify", True))
        return web.json_response({"incident": incident_json(incident)})

    async def set_component(self, request: web.Request) -> web.Response:
        self.authorize(request, "components:write")
        body = await Body.read(request, {"status"})
        status = body.choice("status", ComponentStatus, required=True)
        assert status is not None
        component_id = request.match_info["id"]
        async with self.store.read() as r:
            if await r.components.get(component_id) is None:
                raise NotFound("component", component_id)
        changed = await self.coordinator.set_component_status(component_id, status)
        return web.json_response({"component": {"id": component_id, "status": status.value}, "changed": changed})

    async def list_subscribers(self, request: web.Request) -> web.Response:
        self.authorize(request, "subscribers:write")
        async with self.store.read() as r:
            subscribers = await r.subscribers.list()
        return web.json_response({"subscribers": [_subscriber_json(s) for s in subscribers]})

    async def add_subscriber(self, request: web.Request) -> web.Response:
        self.authorize(request, "subscribers:write")
        body = await Body.read(request, {"notifier", "target", "components"})
        notifier_name = body.text("notifier", required=True, max_len=100) or ""
        notifier_config = self.notifiers.get(notifier_name)
        if notifier_config is None:
            raise ValidationError("notifier", f"no notifier {notifier_name!r}; configured: "
                                  + (", ".join(sorted(self.notifiers)) or "none"))
        target = body.text("target", required=True, max_len=2000) or ""
        problem = notifier_config.check_recipient(target)
        if problem:
            raise ValidationError("target", problem)
        components = list(dict.fromkeys(body.names("components")))
        async with self.store.transaction() as tx:
            known = {c.id for c in await tx.components.list()}
            for i, cid in enumerate(components):
                if cid not in known:
                    raise ValidationError(f"components[{i}]", f"no component {cid!r}")
            subscriber = await tx.subscribers.add(Subscriber(notifier=notifier_name, target=target,
                                                             components=tuple(components),
                                                             created_at=self.coordinator.clock.now()))
        return web.json_response({"subscriber": _subscriber_json(subscriber)}, status=201)

    async def remove_subscriber(self, request: web.Request) -> web.Response:
        self.authorize(request, "subscribers:write")
        subscriber_id = path_id(request, "subscriber")
        async with self.store.transaction() as tx:
            removed = await tx.subscribers.remove(subscriber_id)
        if not removed:
            raise NotFound("subscriber", subscriber_id)
        return web.json_response({"removed": subscriber_id})

    async def list_outbox(self, request: web.Request) -> web.Response:
        self.authorize(request, "admin")
        try:
            limit = min(1000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            raise ValidationError("limit", "must be an integer") from None
        async with self.store.read() as r:
            messages = await r.outbox.list(limit)
            counts = await r.outbox.counts()
        return web.json_response({"counts": counts, "messages": [
            {"id": m.id, "key": m.key, "notifier": m.notifier, "recipient": m.recipient, "template": m.template,
             "status": m.status.value, "attempts": m.attempts, "last_error": m.last_error,
             "created_at": _ts(m.created_at), "next_attempt_at": _ts(m.next_attempt_at), "sent_at": _ts(m.sent_at)}
            for m in messages]})


    async def hand_off(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Body.read(request, {"to", "note"})
        incident = await self.coordinator.hand_off(
            incident_id, to=body.text("to", required=True, max_len=100) or "", note=body.text("note", default="") or "",
            by=token.name, person=token.person)
        return web.json_response({"incident": incident_json(incident)}, status=202)

    async def set_comms(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Body.read(request, {"person"})
        incident = await self.coordinator.set_comms(incident_id, person=body.text("person", max_len=100),
                                                    by=token.name)
        return web.json_response({"incident": incident_json(incident)})

    async def postmortem(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Body.read(request, {"body", "notify"})
        incident = await self.coordinator.publish_postmortem(
            incident_id, body=body.text("body", required=True, max_len=100_000) or "", author=token.name,
            notify=body.flag("notify", False))
        return web.json_response({"incident": incident_json(incident)}, status=201)

    async def merge(self, request: web.Request) -> web.Response:
        token = self.authorize(request, "incidents:write")
        incident_id = path_id(request)
        body = await Body.read(request, {"into"})
        into = body.data.get("into")
        if not isinstance(into, int) or isinstance(into, bool):
            raise ValidationError("into", "required: the id of the open incident to merge into")
        if not 0 < into < 2**63:
            raise NotFound("incident", into)
        incident = await self.coordinator.merge(incident_id, into=into, by=token.name)
        return web.json_response({"incident": incident_json(incident)})

    async def kpis(self, request: web.Request) -> web.Response:
        """Support KPIs over incidents opened in the last `days` (default 30): per impact and source."""
        self.authorize(request, None)
        days = _int_query(request, "days", 30, 1, 3650)
        now = self.coordinator.clock.now()
        async with self.store.read() as r:
            incidents = [i for i in await r.incidents.list_recent(now - timedelta(days=days), limit=10_000)
                         if i.opened_at >= now - timedelta(days=days)]
        out: dict[str, Any] = {"days": days, "incidents": len(incidents), "by_impact": {}, "by_source": {}}
        for i in incidents:
            out["by_impact"][i.impact.value] = out["by_impact"].get(i.impact.value, 0) + 1
            out["by_source"][i.source] = out["by_source"].get(i.source, 0) + 1
        for kpi in ("time_to_acknowledge_s", "time_to_first_public_update_s", "time_to_resolve_s"):
            values = sorted(v for i in incidents if (v := i.kpis()[kpi]) is not None)
            out[kpi] = {"count": len(values), "median": _quantile(values, 0.5), "p90": _quantile(values, 0.9)}
        return web.json_response(out)

    async def who_is_on_call(self, request: web.Request) -> web.Response:
        self.authorize(request, None)
        at = _time_query(request, "at", self.coordinator.clock.now())
        out = {}
        for name, schedule in self.schedules.items():
            # The stretch around `at`, looking far enough both ways to report a whole shift.
            current = next(s for s in schedule.shifts(at - timedelta(days=2), at + timedelta(days=2))
                           if s.start <= at < s.end)
            person = self.coordinator.people.get(current.person or "")
            out[name] = {"person": current.person, "name": person.name if person else None,
                         "since": _ts(current.start), "until": _ts(current.end)}
        return web.json_response({"at": _ts(at), "schedules": out})

    async def list_schedules(self, request: web.Request) -> web.Response:
        self.authorize(request, None)
        return web.json_response({"schedules": [
            {"id": name, "timezone": str(s.tz), "layers": [layer.name for layer in s.layers],
             "ical_url": self._ical_url(name)} for name, s in self.schedules.items()]})

    def _ical_url(self, name: str) -> str | None:
        if self.signer is None:
            return None
        return f"{self.base_url}/schedules/{name}.ics?sig={self.signer.sign('ical', name)}"

    async def shifts(self, request: web.Request) -> web.Response:
        self.authorize(request, None)
        schedule = self._schedule(request)
        start = _time_query(request, "from", self.coordinator.clock.now())
        end = _time_query(request, "to", start + timedelta(days=7))
        if not start < end <= start + timedelta(days=366):
            raise ValidationError("to", "must be after from and at most 366 days later")
        return web.json_response({"schedule": schedule.name, "shifts": [
            {"person": s.person, "start": _ts(s.start), "end": _ts(s.end)} for s in schedule.shifts(start, end)]})

    def _schedule(self, request: web.Request) -> Schedule:
        name = request.match_info["id"]
        if name not in self.schedules:
            raise NotFound("schedule", name)
        return self.schedules[name]

    async def ical(self, request: web.Request) -> web.Response:
        """An iCal feed of the schedule's shifts (past 7 days to 60 ahead), behind a signed URL."""
        schedule = self._schedule(request)
        sig = request.query.get("sig", "")
        if self.signer is None or not self.signer.verify(sig, "ical", schedule.name):
            raise _unauthorized("missing or wrong signature; get the feed URL from /api/v1/schedules")
        now = self.coordinator.clock.now()
        calendar = icalendar.Calendar()
        calendar.add("prodid", "-//statusd//on-call//EN")
        calendar.add("version", "2.0")
        calendar.add("x-wr-calname", f"On call: {schedule.name}")
        for shift in schedule.shifts(now - timedelta(days=7), now + timedelta(days=60)):
            if shift.person is None:
                continue
            person = self.coordinator.people.get(shift.person)
            event = icalendar.Event()
            event.add("uid", f"{schedule.name}-{shift.person}-{int(shift.start.timestamp())}@statusd")
            event.add("summary", f"On call: {person.name if person else shift.person}")
            event.add("dtstart", shift.start)
            event.add("dtend", shift.end)
            event.add("dtstamp", now)
            calendar.add_component(event)
        return web.Response(body=calendar.to_ical(), content_type="text/calendar", charset="utf-8")

    def _check_ack_link(self, request: web.Request) -> tuple[int, str]:
        incident_id = path_id(request)
        person = request.match_info["person"]
        if self.signer is None or not self.signer.verify(request.match_info["sig"], "ack", incident_id, person):
            raise web.HTTPForbidden(text="This acknowledgement link is not valid.")
        return incident_id, person

    async def ack_link_page(self, request: web.Request) -> web.Response:
        """A confirmation page: mail scanners open links, so only the POST from its button acknowledges."""
        incident_id, person = self._check_ack_link(request)
        name = html.escape(self.coordinator.people[person].name if person in self.coordinator.people else person)
        return self.render_page("Acknowledge incident",
                          f"<p>{name}, acknowledge incident #{incident_id} and take ownership?</p>"
                          f'<form method="post"><p><button type="submit">Acknowledge #{incident_id}</button></p></form>', 200)

    async def ack_link(self, request: web.Request) -> web.Response:
        incident_id, person = self._check_ack_link(request)
        name = self.coordinator.people[person].name if person in self.coordinator.people else person
        try:
            await self.coordinator.acknowledge(incident_id, by=name, person=person)
            text = f"<p>Acknowledged. You own incident #{incident_id}; escalation has stopped.</p>"
        except Conflict as exc:
            text = f"<p>Nothing to do: {html.escape(str(exc))}.</p>"
        return self.render_page("Acknowledged", text, 200)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(name, "must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value


def _time_query(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    return default if raw is None else parse_time(raw, name)


def parse_time(value: Any, key: str) -> datetime:
    """An ISO-8601 time with a UTC offset ("Z" too), or ValidationError naming `key`."""
    if not isinstance(value, str):
        raise ValidationError(key, "expected an ISO-8601 time with offset")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(key, "expected an ISO-8601 time with offset, e.g. 2026-03-02T09:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValidationError(key, "needs a UTC offset, e.g. Z or +03:00")
    if not supported(parsed):
        raise ValidationError(key, f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")
    return parsed


def _subscriber_json(s: Subscriber) -> dict[str, Any]:
    return {"id": s.id, "notifier": s.notifier, "target": s.target, "components": list(s.components),
            "created_at": _ts(s.created_at)}


def _unauthorized(reason: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(reason=reason, headers={"WWW-Authenticate": 'Bearer realm="statusd"'})
