"""The public status page: server-rendered HTML and the Statuspage-compatible read API.

Every public response is rendered once per cache period and then served from memory, so
a crowd opening the page during an outage costs the store one read per path, not one per
visitor. The coordinator calls `StatusPage.invalidate()` after every change, so the cache
age only bounds how long a missed invalidation (another replica's write) can show.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup
from aiohttp import web

from status_page.api_v2 import (
    INDICATOR_DESCRIPTIONS,
    JSON,
    PageInfo,
    component_objects,
    grouped,
    incident_object,
    indicator,
    iso,
    page_id,
    page_object,
    public_updates,
    status_object,
)
from status_page.uptime import MAX_API_DAYS, PAGE_DAYS, component_uptime_objects, parse_days, views
from statusd.config import Config
from statusd.core.clock import Clock
from statusd.core.model import Component, DayUptime, Incident, TimelineEntry
from statusd.core.protocols import Store

_INCIDENT_ID = re.compile(r"[0-9]{1,18}")  # fits SQLite's signed 64-bit INTEGER; rejects '+5', ' 5', '٥'
_API_INCIDENT_LIMIT = 50  # what Statuspage's incidents.json returns
_STATIC_MAX_AGE_S = 86_400  # the page links the stylesheet with a content hash, so it may be kept long


@dataclass(frozen=True, slots=True)
class Rendered:
    """A finished response body; `etag` is a strong validator of exactly these bytes."""

    status: int
    body: bytes
    content_type: str
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"')


@dataclass(frozen=True, slots=True)
class _Cached:
    rendered: Rendered
    expires_at: datetime


class _LeaderGone(Exception):
    """The request rendering for everyone was cancelled; a waiter should take over."""


class RenderCache:
    """Rendered bodies per key for at most `ttl_s` of clock time; concurrent misses share one render.

    Only 200 responses are kept, so the set of keys stays bounded by what really exists.
    """

    def __init__(self, clock: Clock, ttl_s: float) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=max(0.0, ttl_s))
        self._entries: dict[str, _Cached] = {}
        self._flights: dict[str, asyncio.Future[Rendered]] = {}
        self._generation = 0

    def invalidate(self) -> None:
        """Forget every body; renders already running finish but are not kept."""
        self._entries.clear()
        # New requests must not join a render that may have read the old state.
        self._flights.clear()
        self._generation += 1

    async def get(self, key: str, render: Callable[[], Awaitable[Rendered]]) -> Rendered:
        """The cached body for `key`, or the result of the one `render()` running for it."""
        while True:
            hit = self._entries.get(key)
            if hit is not None:
                if self._clock.now() < hit.expires_at:
                    return hit.rendered
                del self._entries[key]
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, render)
            try:
                # shield: a visitor who hangs up must not cancel the render others wait for.
                return await asyncio.shield(flight)
            except _LeaderGone:
                continue

    async def _lead(self, key: str, render: Callable[[], Awaitable[Rendered]]) -> Rendered:
        generation = self._generation
        started = self._clock.now()
        flight: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        # Mark an exception as retrieved even when nobody else was waiting for it.
        flight.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._flights[key] = flight
        try:
            rendered = await render()
        except asyncio.CancelledError:
            flight.set_exception(_LeaderGone())
            raise
        except Exception as exc:
            flight.set_exception(exc)
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.set_result(rendered)
        if rendered.status == 200 and self._ttl and generation == self._generation:
            self._entries[key] = _Cached(rendered, started + self._ttl)
        return rendered


@dataclass(frozen=True, slots=True)
class _Snapshot:
    components: list[Component]
    open: list[Incident]
    recent: list[Incident]  # open or not, newest first, within history_days
    updates: dict[int, list[TimelineEntry]]  # public updates per incident, oldest first
    since: datetime
    uptime: dict[str, list[DayUptime]]  # per component, oldest day first (empty unless asked for)
    now: datetime  # when it was read

    @property
    def resolved(self) -> list[Incident]:
        """Recent incidents resolved within the history window and no longer open."""
        open_ids = {i.id for i in self.open}
        return [i for i in self.recent if i.id not in open_ids and i.resolved_at is not None
                and i.resolved_at >= self.since]

    @property
    def updated_at(self) -> datetime | None:
        """The latest change to any component or listed incident; None when nothing ever changed."""
        times = [c.updated_at for c in self.components if c.updated_at is not None]
        times += [i.updated_at for i in self.open + self.recent]
        return max(times) if times else None


def _human(at: datetime | None) -> str:
    if at is None:
        return ""
    at = at.astimezone(UTC)
    return f"{at.day} {at:%b %Y, %H:%M} UTC"


def _label(value: str) -> str:
    return value.replace("_", " ").capitalize()


def _markdown(text: str) -> Markup:
    # Imported when a postmortem is first shown, not with the page: markdown-it and nh3 add ~2.6 MiB
    # to the RSS of every server, and most pages have no postmortem to render.
    from status_page.markdown import render_markdown

    return render_markdown(text)


class StatusPage:
    """The public status page and `/api/v2`, read from `store` and cached for `config.page.cache_s`."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._page_id = page_id(config.page.title)
        self._cache = RenderCache(clock, config.page.cache_s)
        self._max_age = f"public, max-age={int(config.page.cache_s)}"
        self._css = resources.files("status_page").joinpath("static", "style.css").read_bytes()
        self._css_rendered = Rendered(200, self._css, "text/css")
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("status_page", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["human"] = _human
        self._env.filters["iso"] = iso
        self._env.filters["label"] = _label
        self._env.filters["markdown"] = _markdown
        self._env.globals["css_url"] = "/static/style.css?v=" + self._css_rendered.etag.strip('"')[:12]
        self._env.globals["page"] = config.page

    def add_routes(self, app: web.Application) -> None:
        """Register the page, incident pages, the stylesheet, `/api/v2/*.json` and `/api/v1/uptime` on `app`."""
        api: dict[str, Callable[[_Snapshot], JSON]] = {
            "summary": self._summary,
            "status": lambda s: {"page": self._page(s), "status": status_object(indicator(s.components, s.open))},
            "components": lambda s: {"page": self._page(s),
                                     "components": component_objects(s.components, self._page_id)},
            "incidents": lambda s: {"page": self._page(s), "incidents": self._incidents(s, s.recent)},
            "incidents/unresolved": lambda s: {"page": self._page(s), "incidents": self._incidents(s, s.open)},
            "scheduled-maintenances": self._no_maintenances,
            "scheduled-maintenances/upcoming": self._no_maintenances,
            "scheduled-maintenances/active": self._no_maintenances,
        }
        app.router.add_get("/", self._index)
        app.router.add_get("/incidents/{id}", self._incident)
        app.router.add_get("/static/style.css", self._stylesheet)
        for name, build in api.items():
            app.router.add_get(f"/api/v2/{name}.json", self._api_handler(name, build))
        # Ours, not Statuspage's: uptime stays out of /api/v2 so its shapes remain exactly Statuspage's.
        app.router.add_get("/api/v1/uptime", self._uptime)

    def invalidate(self) -> None:
        """Drop every cached body, so the next request reads the store again."""
        self._cache.invalidate()

    # --- handlers ---------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._respond(request, await self._cache.get("page:index", self._render_index))

    async def _incident(self, request: web.Request) -> web.StreamResponse:
        raw = request.match_info["id"]
        if not _INCIDENT_ID.fullmatch(raw) or int(raw) == 0:
            return self._respond(request, self._not_found())
        incident_id = int(raw)
        return self._respond(request, await self._cache.get(
            f"page:incident:{incident_id}", lambda: self._render_incident(incident_id)))

    async def _stylesheet(self, request: web.Request) -> web.StreamResponse:
        return self._respond(request, self._css_rendered, cache_control=f"public, max-age={_STATIC_MAX_AGE_S}")

    def _api_handler(self, name: str, build: Callable[[_Snapshot], JSON]) -> Callable[[web.Request],
                                                                                     Awaitable[web.StreamResponse]]:
        needs_updates = name in ("summary", "incidents", "incidents/unresolved")

        async def render() -> Rendered:
            snapshot = await self._load(updates=needs_updates)
            response = web.json_response(build(snapshot))
            assert isinstance(response.body, bytes)
            return Rendered(200, response.body, "application/json")

        async def handler(request: web.Request) -> web.StreamResponse:
            return self._respond(request, await self._cache.get(f"api:{name}", render))

        return handler

    async def _uptime(self, request: web.Request) -> web.StreamResponse:
        days = parse_days(request.query.get("days"))
        if days is None:
            error = {"error": {"field": "days", "message": f"expected a whole number of days from 1 to {MAX_API_DAYS}"}}
            return self._respond(request, Rendered(400, json.dumps(error).encode(), "application/json"))

        async def render() -> Rendered:
            snapshot = await self._load(updates=False, uptime_days=days)
            today = snapshot.now.date()
            body = {"page": self._page(snapshot), "days": days,
                    "from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat(),
                    "components": component_uptime_objects(snapshot.components, snapshot.uptime)}
            return Rendered(200, json.dumps(body, separators=(",", ":")).encode(), "application/json")

        # `days` is validated, so the cache holds at most MAX_API_DAYS keys.
        return self._respond(request, await self._cache.get(f"api:uptime:{days}", render))

    def _respond(self, request: web.Request, rendered: Rendered, *, cache_control: str | None = None) -> web.StreamResponse:
        headers = {
            "ETag": rendered.etag,
            "Cache-Control": cache_control or (self._max_age if rendered.status == 200 else "no-cache"),
        }
        if rendered.content_type == "application/json":
            headers["Access-Control-Allow-Origin"] = "*"  # Statuspage's API is readable from any site's widget
        if rendered.status == 200 and _matches(request.headers.get("If-None-Match"), rendered.etag):
            return web.Response(status=304, headers=headers)
        if rendered.content_type == "application/json":
            return web.json_response(body=rendered.body, status=rendered.status, headers=headers)
        return web.Response(body=rendered.body, status=rendered.status, content_type=rendered.content_type,
                            charset="utf-8", headers=headers)

    # --- reading ----------------------------------------------------------------------

    async def _load(self, *, updates: bool, uptime_days: int = 0) -> _Snapshot:
        now = self._clock.now()
        since = now - timedelta(days=self._config.page.history_days)
        async with self._store.read() as tx:  # one read per render, uptime included
            components = await tx.components.list()
            open_incidents = await tx.incidents.list_open()
            recent = await tx.incidents.list_recent(since, _API_INCIDENT_LIMIT)
            entries: dict[int, list[TimelineEntry]] = {}
            if updates:
                ids = {i.id for i in open_incidents + recent}
                entries = await tx.incidents.entries(sorted(ids), public_only=True)
            uptime: dict[str, list[DayUptime]] = {}
            if uptime_days:
                uptime = await tx.components.uptime([c.id for c in components], uptime_days, now)
        return _Snapshot(components, open_incidents, recent,
                         {k: public_updates(v) for k, v in entries.items()}, since, uptime, now)

    # --- JSON -------------------------------------------------------------------------

    def _page(self, snapshot: _Snapshot) -> JSON:
        page = self._config.page
        updated = snapshot.updated_at or snapshot.since + timedelta(days=page.history_days)
        return page_object(PageInfo(self._page_id, page.title, self._config.server.base_url, page.time_zone, updated))

    def _incidents(self, snapshot: _Snapshot, incidents: Sequence[Incident]) -> list[JSON]:
        by_id = {c.id: c for c in snapshot.components}
        return [incident_object(i, snapshot.updates.get(i.id, []), by_id, self._page_id,
                                self._config.server.base_url) for i in incidents]

    def _summary(self, snapshot: _Snapshot) -> JSON:
        return {
            "page": self._page(snapshot),
            "components": component_objects(snapshot.components, self._page_id),
            "incidents": self._incidents(snapshot, snapshot.open),
            "scheduled_maintenances": [],
            "status": status_object(indicator(snapshot.components, snapshot.open)),
        }

    def _no_maintenances(self, snapshot: _Snapshot) -> JSON:
        return {"page": self._page(snapshot), "scheduled_maintenances": []}

    # --- HTML -------------------------------------------------------------------------

    def _html(self, template: str, status: int = 200, **context: Any) -> Rendered:
        body = self._env.get_template(template).render(**context).encode("utf-8")
        return Rendered(status, body, "text/html")

    def simple_page(self, heading: str, body_html: str, status: int = 200) -> web.Response:
        """A page in the status page's layout for other parts of statusd (forms, confirmations).

        `body_html` must already be safe HTML; `heading` is escaped here.
        """
        rendered = self._html("simple.html", status, heading=heading, body=Markup(body_html))
        return web.Response(status=rendered.status, body=rendered.body, content_type="text/html", charset="utf-8")

    def _not_found(self) -> Rendered:
        return self._html("404.html", 404)

    async def _render_index(self) -> Rendered:
        snapshot = await self._load(updates=True, uptime_days=PAGE_DAYS)
        names = {c.id: c.name for c in snapshot.components}
        level = indicator(snapshot.components, snapshot.open)
        return self._html(
            "index.html",
            indicator=level.value,
            indicator_description=INDICATOR_DESCRIPTIONS[level],
            groups=grouped(snapshot.components),
            open_incidents=[_IncidentView.of(i, snapshot.updates.get(i.id, []), names) for i in snapshot.open],
            resolved_incidents=[_IncidentView.of(i, snapshot.updates.get(i.id, []), names)
                                for i in snapshot.resolved],
            updated_at=snapshot.updated_at,
            uptime=views(snapshot.uptime),
            uptime_days=PAGE_DAYS,
        )

    async def _render_incident(self, incident_id: int) -> Rendered:
        async with self._store.read() as tx:
            incident = await tx.incidents.get(incident_id)
            if incident is None:
                return self._not_found()
            entries = await tx.incidents.entries([incident_id], public_only=True)
            components = await tx.components.list()
        names = {c.id: c.name for c in components}
        view = _IncidentView.of(incident, public_updates(entries.get(incident_id, [])), names)
        return self._html("incident.html", incident=view)


@dataclass(frozen=True, slots=True)
class _IncidentView:
    incident: Incident
    updates: list[TimelineEntry]  # newest first, as status pages show them
    component_names: list[str]

    @classmethod
    def of(cls, incident: Incident, updates: Sequence[TimelineEntry], names: dict[str, str]) -> _IncidentView:
        """The view of `incident`: its updates newest first, its components by display name."""
        return cls(incident, list(reversed(updates)), [names.get(c, c) for c in incident.components])


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored; `*` matches anything."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False
