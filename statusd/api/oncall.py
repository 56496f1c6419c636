"""On call: who is on call now, schedules and their shifts, private iCal feeds, and one-click ack links."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import jinja2
from aiohttp import web

from statusd.core.errors import Conflict, NotFound, ValidationError
from statusd.incidents.coordinator import Coordinator
from statusd.incidents.handoff import Handoff
from statusd.incidents.lifecycle import Event
from statusd.incidents.routing import page_cycle
from statusd.oncall.schedule import Schedule
from statusd.web.auth import READ, TokenAuth, unauthorized
from statusd.web.fields import iso, path_id, query_time
from statusd.web.signing import Signer
from statusd.web.urls import ack_link_cycle, ical_link_valid, ical_url

SHIFT_HORIZON = timedelta(days=366)  # /api/v1/oncall looks this far both ways for the bounds of a shift
RenderPage = Callable[[str, str, int], web.Response]


class OnCallApi:
    """The on-call handlers: token-authenticated JSON, plus the signed iCal feed and ack links for people."""

    def __init__(self, coordinator: Coordinator, auth: TokenAuth, schedules: Mapping[str, Schedule], *,
                 render_page: RenderPage, signer: Signer | None = None, base_url: str = "") -> None:
        """`render_page(title, safe_body_html, status)` puts a confirmation page in the status page's layout."""
        self.coordinator = coordinator
        self.auth = auth
        self.schedules = dict(schedules)
        self.render_page = render_page
        self.signer = signer
        self.base_url = base_url
        self._templates = jinja2.Environment(loader=jinja2.PackageLoader("statusd.api"), autoescape=True,
                                             undefined=jinja2.StrictUndefined)

    async def who_is_on_call(self, request: web.Request) -> web.Response:
        """GET /api/v1/oncall?at=TIME: per schedule, the person on call at `at` (default now) and their whole shift."""
        self.auth.authorize(request, READ)
        at = query_time(request, "at", self.coordinator.clock.now())
        out = {}
        for name, schedule in self.schedules.items():
            current = schedule.shift_at(at, SHIFT_HORIZON)
            person = self.coordinator.people.get(current.person or "")
            # null: the shift began (or ends) more than SHIFT_HORIZON away, e.g. a one-person rotation.
            out[name] = {"person": current.person, "name": person.name if person else None,
                         "since": None if current.start <= at - SHIFT_HORIZON else iso(current.start),
                         "until": None if current.end >= at + SHIFT_HORIZON else iso(current.end)}
        return web.json_response({"at": iso(at), "schedules": out})

    async def list_schedules(self, request: web.Request) -> web.Response:
        """GET /api/v1/schedules: each schedule with its layers and, when links are signed, its iCal URL."""
        self.auth.authorize(request, READ)
        return web.json_response({"schedules": [
            {"id": name, "timezone": str(s.tz), "layers": [layer.name for layer in s.layers],
             "ical_url": None if self.signer is None else ical_url(self.base_url, self.signer, name)}
            for name, s in self.schedules.items()]})

    async def shifts(self, request: web.Request) -> web.Response:
        """GET /api/v1/schedules/{id}/shifts?from=&to=: the shifts between two times, at most 366 days apart."""
        self.auth.authorize(request, READ)
        schedule = self._schedule(request)
        start = query_time(request, "from", self.coordinator.clock.now())
        end = query_time(request, "to", start + timedelta(days=7))
        if not start < end <= start + timedelta(days=366):
            raise ValidationError("to", "must be after from and at most 366 days later")
        return web.json_response({"schedule": schedule.name, "shifts": [
            {"person": s.person, "start": iso(s.start), "end": iso(s.end)} for s in schedule.shifts(start, end)]})

    def _schedule(self, request: web.Request) -> Schedule:
        name = request.match_info["id"]
        if name not in self.schedules:
            raise NotFound("schedule", name)
        return self.schedules[name]

    async def ical(self, request: web.Request) -> web.Response:
        """An iCal feed of the schedule's shifts (past 7 days to 60 ahead), behind a signed URL."""
        schedule = self._schedule(request)
        if not ical_link_valid(self.signer, request.query.get("sig", ""), schedule.name):
            raise unauthorized("missing or wrong signature; get the feed URL from /api/v1/schedules")
        # Imported on the first feed request, not with the module: icalendar adds ~3.5 MiB to the RSS
        # of every server, and most never serve a feed.
        import icalendar

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

    async def _check_ack_link(self, request: web.Request) -> AckLink:
        incident_id = path_id(request)
        person = request.match_info["person"]
        async with self.coordinator.store.read() as r:
            incident = await r.incidents.get(incident_id)
        current = page_cycle(incident.escalation) if incident is not None else 0
        cycle = ack_link_cycle(self.signer, request.match_info["sig"], incident_id, person, current)
        if cycle is None:
            raise web.HTTPForbidden(text="This acknowledgement link is not valid.")
        handoff = Handoff.pending(incident.handoff) if incident is not None else None
        return AckLink(incident_id, person, cycle, stale=cycle != current,
                       handoff_from=handoff.from_person if handoff is not None and handoff.to == person else None,
                       handoff_pending=handoff is not None and handoff.to == person)

    def _name(self, person: str) -> str:
        return self.coordinator.people[person].name if person in self.coordinator.people else person

    def _stale(self, link: AckLink) -> web.Response:
        # 410: the link was real, but for a page cycle that is over; a later page carries a working one.
        body = self._templates.get_template("ack_stale.html").render(incident_id=link.incident_id)
        return self.render_page("Link expired", body, 410)

    async def ack_link_page(self, request: web.Request) -> web.Response:
        """A confirmation page: mail scanners open links, so only the POST from its button acknowledges."""
        link = await self._check_ack_link(request)
        if link.stale:
            return self._stale(link)
        body = self._templates.get_template("ack_confirm.html").render(
            name=self._name(link.person), incident_id=link.incident_id, handoff=link.handoff_pending,
            handoff_from=None if link.handoff_from is None else self._name(link.handoff_from))
        return self.render_page("Acknowledge incident", body, 200)

    async def ack_link(self, request: web.Request) -> web.Response:
        """The confirmation page's button: acknowledge as the link's person, or accept the handoff made to them.

        The page says which happened; a second press has nothing to do, and a link from before the
        incident re-opened acknowledges nothing.
        """
        link = await self._check_ack_link(request)
        if link.stale:
            return self._stale(link)
        conflict = None
        accepted = False
        acknowledged = True
        try:
            incident, event = await self.coordinator.acknowledge_or_accept(
                link.incident_id, by=self._name(link.person), person=link.person, cycle=link.cycle)
            accepted = event is Event.ACCEPT
            acknowledged = incident.acknowledged_at is not None
        except Conflict as exc:
            conflict = str(exc)
        body = self._templates.get_template("ack_done.html").render(
            incident_id=link.incident_id, conflict=conflict, accepted=accepted, acknowledged=acknowledged,
            handoff_from=None if link.handoff_from is None else self._name(link.handoff_from))
        return self.render_page("Handoff accepted" if accepted else "Acknowledged", body, 200)


@dataclass(frozen=True, slots=True)
class AckLink:
    """A checked ack link: whose, for which incident and page cycle, and whether that cycle is over."""

    incident_id: int
    person: str
    cycle: int
    stale: bool  # the incident re-opened since the link was sent
    handoff_from: str | None = None  # who asked the link's person to take the incident over
    handoff_pending: bool = False  # a handoff to the link's person waits: pressing accepts it
