"""The public status page and /api/v2 against a real SQLite store, over real HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from status_page import StatusPage
from status_page.api_v2 import group_id, page_id
from status_page.views import Rendered, RenderCache
from statusd.config import Config, PageConfig, ServerConfig
from statusd.core.clock import FakeClock
from statusd.core.model import (
    Component,
    ComponentStatus,
    EntryKind,
    Impact,
    Incident,
    IncidentStatus,
    NewIncident,
    TimelineEntry,
)
from statusd.core.protocols import Tx
from statusd.store.sqlite import SqliteStore
from tests.support.http_browser import CHROMIUM, Page, chromium_page

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BASE_URL = "https://status.example.com"

COMPONENTS = [
    Component("api", "Public API", description="REST and GraphQL", position=1),
    Component("web", "Website", position=2),
    Component("db-eu", "EU Database", group="Databases", position=3),
    Component("db-us", "US Database", group="Databases", position=4),
]

PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_KEYS = {"id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                  "start_date", "group_id", "page_id", "group", "only_show_if_degraded"}
GROUP_KEYS = COMPONENT_KEYS | {"components"}
INCIDENT_KEYS = {"id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                 "shortlink", "started_at", "page_id", "incident_updates", "components", "postmortem_body",
                 "postmortem_published_at"}
UPDATE_KEYS = {"id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
               "affected_components", "deliver_notifications"}
COMPONENT_STATUSES = {s.value for s in ComponentStatus}
INCIDENT_STATUSES = {s.value for s in IncidentStatus}
IMPACTS = {"none", "minor", "major", "critical", "maintenance"}
DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
    "maintenance": "Service Under Maintenance",
}


# --- helpers ----------------------------------------------------------------------------


class CountingStore:
    """A thin wrapper that counts `read()` units of work and can hold them until `gate` opens."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    def transaction(self, *, brief: bool = False) -> AbstractAsyncContextManager[Tx]:
        return self.inner.transaction(brief=brief)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        self.reads += 1
        await self.gate.wait()
        async with self.inner.read() as tx:
            yield tx


def update(body: str, at: datetime, *, author: str = "Dana (SRE)", status: IncidentStatus = IncidentStatus.INVESTIGATING,
           public: bool = True, kind: EntryKind = EntryKind.UPDATE) -> TimelineEntry:
    """A timeline entry for `add_incident` (its incident id is filled in there)."""
    return TimelineEntry(incident_id=0, at=at, kind=kind, body=body, author=author, status=status, public=public)


async def set_components(store: SqliteStore, statuses: dict[str, ComponentStatus] | None = None,
                         components: Sequence[Component] = COMPONENTS) -> None:
    async with store.transaction() as tx:
        await tx.components.sync(list(components), NOW - timedelta(days=30))
        for cid, status in (statuses or {}).items():
            await tx.components.set_status(cid, status, NOW - timedelta(minutes=5))


async def add_incident(store: SqliteStore, title: str, *, impact: Impact = Impact.MAJOR,
                       components: Sequence[str] = ("api",), opened_at: datetime = NOW - timedelta(minutes=30),
                       status: IncidentStatus = IncidentStatus.INVESTIGATING,
                       updates: Sequence[TimelineEntry] = (), resolved_at: datetime | None = None) -> Incident:
    async with store.transaction() as tx:
        incident = await tx.incidents.create(NewIncident(title, status, impact, tuple(components), opened_at))
        for entry in updates:
            await tx.incidents.add_entry(replace(entry, incident_id=incident.id))
        if resolved_at is not None:
            incident = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=resolved_at,
                               updated_at=resolved_at)
            await tx.incidents.save(incident)
    return incident


def make_config(**page: Any) -> Config:
    settings: dict[str, Any] = {"title": "Acme status", "description": "Live status of Acme services.",
                                "cache_s": 5.0, "history_days": 14}
    settings.update(page)
    return Config(page=PageConfig(**settings), server=ServerConfig(public_url=BASE_URL))


@dataclass
class Site:
    """A running status page: its HTTP client, the page object, the store and the clock."""

    client: TestClient[web.Request, web.Application]
    page: StatusPage
    store: SqliteStore
    clock: FakeClock

    async def get(self, path: str, **headers: str) -> tuple[int, str]:
        async with self.client.get(path, headers=headers) as resp:
            return resp.status, await resp.text()

    async def json(self, path: str) -> Any:
        async with self.client.get(path) as resp:
            assert resp.status == 200, path
            assert resp.content_type == "application/json"
            return await resp.json()


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "statusd.db")
    await db.open()
    yield db
    await db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def site(aiohttp_client: Any, store: SqliteStore, clock: FakeClock) -> SiteFactory:
    async def start(reader: Any = None, middlewares: Sequence[Any] = (), **page: Any) -> Site:
        status_page = StatusPage(reader or store, make_config(**page), clock)
        app = web.Application(middlewares=list(middlewares))
        status_page.add_routes(app)
        return Site(await aiohttp_client(app), status_page, store, clock)

    return start


def text_of(html: str) -> str:
    """Visible text, roughly: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def assert_timestamp(value: str | None) -> None:
    if value is not None:
        assert datetime.fromisoformat(value).utcoffset() is not None, value


# --- /api/v2 shapes -----------------------------------------------------------------------


async def seed_outage(store: SqliteStore) -> Incident:
    await set_components(store, {"api": ComponentStatus.PARTIAL_OUTAGE, "db-eu": ComponentStatus.DEGRADED_PERFORMANCE})
    return await add_incident(store, "Elevated API errors", components=("api", "db-eu"),
                              status=IncidentStatus.IDENTIFIED, updates=[
        update("We are investigating elevated error rates.", NOW - timedelta(minutes=25)),
        update("A failing database node was found.", NOW - timedelta(minutes=10), status=IncidentStatus.IDENTIFIED),
    ])


async def test_summary_has_statuspage_fields_and_vocabulary(site: SiteFactory, store: SqliteStore) -> None:
    incident = await seed_outage(store)
    s = await site()
    summary = await s.json("/api/v2/summary.json")

    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert set(summary["page"]) == PAGE_KEYS
    assert summary["page"]["id"] == page_id("Acme status")
    assert summary["page"]["name"] == "Acme status"
    assert summary["page"]["url"] == BASE_URL
    assert summary["page"]["time_zone"] == "Etc/UTC"
    assert_timestamp(summary["page"]["updated_at"])
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert summary["scheduled_maintenances"] == []

    for c in summary["components"]:
        assert set(c) == (GROUP_KEYS if c["group"] else COMPONENT_KEYS)
        assert c["status"] in COMPONENT_STATUSES
        assert c["page_id"] == summary["page"]["id"]
        assert_timestamp(c["created_at"])
        assert_timestamp(c["updated_at"])

    [inc] = summary["incidents"]
    assert set(inc) == INCIDENT_KEYS
    assert inc["id"] == str(incident.id)
    assert inc["name"] == "Elevated API errors"
    assert inc["status"] in INCIDENT_STATUSES and inc["impact"] in IMPACTS
    assert inc["impact"] == "major"
    assert inc["shortlink"] == f"{BASE_URL}/incidents/{incident.id}"
    assert inc["resolved_at"] is None and inc["monitoring_at"] is None
    for key in ("created_at", "updated_at", "started_at"):
        assert_timestamp(inc[key])
    assert [c["id"] for c in inc["components"]] == ["api", "db-eu"]
    assert all(set(c) == COMPONENT_KEYS for c in inc["components"])
    bodies = [u["body"] for u in inc["incident_updates"]]
    assert bodies == ["A failing database node was found.", "We are investigating elevated error rates."]
    for u in inc["incident_updates"]:
        assert set(u) == UPDATE_KEYS
        assert u["incident_id"] == inc["id"]
        assert u["status"] in INCIDENT_STATUSES
        assert isinstance(u["id"], str)
        for key in ("created_at", "updated_at", "display_at"):
            assert_timestamp(u[key])


async def test_status_json(site: SiteFactory, store: SqliteStore) -> None:
    await seed_outage(store)
    body = await (await site()).json("/api/v2/status.json")
    assert set(body) == {"page", "status"}
    assert set(body["page"]) == PAGE_KEYS
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}


async def test_components_json(site: SiteFactory, store: SqliteStore) -> None:
    await seed_outage(store)
    body = await (await site()).json("/api/v2/components.json")
    assert set(body) == {"page", "components"}
    by_id = {c["id"]: c for c in body["components"]}
    assert by_id["api"]["status"] == "partial_outage"
    assert by_id["api"]["description"] == "REST and GraphQL"
    assert by_id["web"]["description"] is None
    assert by_id["db-eu"]["status"] == "degraded_performance"


async def test_incidents_json_lists_recent_newest_first(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store)
    old = await add_incident(store, "Slow website", opened_at=NOW - timedelta(days=3),
                             resolved_at=NOW - timedelta(days=3) + timedelta(hours=1),
                             updates=[update("Pages load slowly.", NOW - timedelta(days=3))])
    new = await add_incident(store, "API errors", opened_at=NOW - timedelta(minutes=5))
    s = await site()

    recent = await s.json("/api/v2/incidents.json")
    assert set(recent) == {"page", "incidents"}
    assert [i["id"] for i in recent["incidents"]] == [str(new.id), str(old.id)]
    assert recent["incidents"][1]["status"] == "resolved"
    assert_timestamp(recent["incidents"][1]["resolved_at"])
    assert all(set(i) == INCIDENT_KEYS for i in recent["incidents"])

    unresolved = await s.json("/api/v2/incidents/unresolved.json")
    assert set(unresolved) == {"page", "incidents"}
    assert [i["id"] for i in unresolved["incidents"]] == [str(new.id)]


@pytest.mark.parametrize("path", [
    "/api/v2/scheduled-maintenances.json",
    "/api/v2/scheduled-maintenances/upcoming.json",
    "/api/v2/scheduled-maintenances/active.json",
], ids=["all", "upcoming", "active"])
async def test_scheduled_maintenances_are_empty_for_now(site: SiteFactory, store: SqliteStore, path: str) -> None:
    await set_components(store)
    body = await (await site()).json(path)
    assert set(body) == {"page", "scheduled_maintenances"}
    assert set(body["page"]) == PAGE_KEYS
    assert body["scheduled_maintenances"] == []


async def test_monitoring_at_comes_from_public_updates(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store)
    await add_incident(store, "Queue backlog", updates=[
        update("Investigating.", NOW - timedelta(minutes=20)),
        update("Fix deployed, watching.", NOW - timedelta(minutes=5), status=IncidentStatus.MONITORING),
    ], status=IncidentStatus.MONITORING)
    [inc] = (await (await site()).json("/api/v2/incidents/unresolved.json"))["incidents"]
    assert datetime.fromisoformat(inc["monitoring_at"]) == NOW - timedelta(minutes=5)


# --- overall indicator ------------------------------------------------------------------


@pytest.mark.parametrize(("statuses", "impacts", "expected"), [
    ({}, [], "none"),
    ({"web": ComponentStatus.DEGRADED_PERFORMANCE}, [], "minor"),
    ({"web": ComponentStatus.PARTIAL_OUTAGE}, [], "major"),
    ({"web": ComponentStatus.MAJOR_OUTAGE}, [], "critical"),
    ({"web": ComponentStatus.UNDER_MAINTENANCE}, [], "maintenance"),
    ({"web": ComponentStatus.UNDER_MAINTENANCE, "api": ComponentStatus.DEGRADED_PERFORMANCE}, [], "minor"),
    ({}, [Impact.MINOR], "minor"),
    ({}, [Impact.NONE], "none"),
    ({"web": ComponentStatus.DEGRADED_PERFORMANCE}, [Impact.CRITICAL], "critical"),
    ({"db-us": ComponentStatus.MAJOR_OUTAGE}, [Impact.MINOR, Impact.MAJOR], "critical"),
    ({}, [Impact.MINOR, Impact.MAJOR], "major"),
], ids=["all-operational", "degraded-is-minor", "partial-is-major", "major-outage-is-critical",
        "maintenance", "outage-beats-maintenance", "incident-impact-counts", "impact-none-incident",
        "incident-worse-than-components", "components-worse-than-incidents", "worst-of-two-incidents"])
async def test_overall_indicator(site: SiteFactory, store: SqliteStore, statuses: dict[str, ComponentStatus],
                                 impacts: list[Impact], expected: str) -> None:
    await set_components(store, statuses)
    for n, impact in enumerate(impacts):
        await add_incident(store, f"Incident {n}", impact=impact)
    # A resolved critical incident never counts.
    await add_incident(store, "Old outage", impact=Impact.CRITICAL, opened_at=NOW - timedelta(hours=5),
                       resolved_at=NOW - timedelta(hours=4))
    s = await site()

    status = (await s.json("/api/v2/status.json"))["status"]
    assert status == {"indicator": expected, "description": DESCRIPTIONS[expected]}
    _, html = await s.get("/")
    assert f'class="banner indicator-{expected}"' in html
    assert DESCRIPTIONS[expected] in html


# --- grouping ---------------------------------------------------------------------------


async def test_groups_are_components_with_children(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store, {"db-us": ComponentStatus.MAJOR_OUTAGE})
    s = await site()
    components = (await s.json("/api/v2/components.json"))["components"]

    assert [c["id"] for c in components] == ["api", "web", group_id("Databases"), "db-eu", "db-us"]
    group = components[2]
    assert group["group"] is True
    assert group["name"] == "Databases"
    assert group["components"] == ["db-eu", "db-us"]
    assert group["status"] == "major_outage"  # the worst of its members
    assert group["id"] == group_id("Databases") and re.fullmatch(r"[0-9a-f]{12}", group["id"])
    for c in components:
        if c["id"] in ("db-eu", "db-us"):
            assert c["group_id"] == group["id"]
        elif c["id"] in ("api", "web"):
            assert c["group_id"] is None and c["group"] is False

    _, html = await s.get("/")
    order = [html.index(name) for name in ("Public API", "Website", "Databases", "EU Database", "US Database")]
    assert order == sorted(order), "ungrouped components come first, then each group with its members"


async def test_ungrouped_come_first_even_when_positioned_later(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store, components=[
        Component("cdn", "CDN", group="Edge", position=1),
        Component("dns", "DNS", group="Edge", position=2),
        Component("billing", "Billing", position=3),
    ])
    s = await site()
    components = (await s.json("/api/v2/components.json"))["components"]
    assert [c["id"] for c in components] == ["billing", group_id("Edge"), "cdn", "dns"]
    _, html = await s.get("/")
    assert html.index("Billing") < html.index("Edge") < html.index("CDN") < html.index("DNS")


# --- what is public ---------------------------------------------------------------------


async def test_internal_entries_never_reach_public_responses(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store, {"api": ComponentStatus.MAJOR_OUTAGE})
    incident = await add_incident(store, "API down", updates=[
        update("We are looking into it.", NOW - timedelta(minutes=20)),
        update("SECRET-NOTE db password rotated", NOW - timedelta(minutes=19), kind=EntryKind.NOTE, public=False),
        update("SECRET-DRAFT not yet approved", NOW - timedelta(minutes=18), public=False),
        update("SECRET-SIGNAL probe http-api failed", NOW - timedelta(minutes=17), kind=EntryKind.SIGNAL,
               public=True),
        update("SECRET-ASSIGNED to dana", NOW - timedelta(minutes=16), kind=EntryKind.ASSIGNED, public=True),
    ])
    s = await site()
    for path in ("/", f"/incidents/{incident.id}", "/api/v2/summary.json", "/api/v2/incidents.json",
                 "/api/v2/incidents/unresolved.json"):
        status, body = await s.get(path)
        assert status == 200, path
        assert "We are looking into it." in body, path
        assert "SECRET" not in body, path


# --- history ----------------------------------------------------------------------------


async def test_resolved_incidents_within_history_days_only(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store)
    recent = await add_incident(store, "Recent blip", opened_at=NOW - timedelta(days=3),
                                resolved_at=NOW - timedelta(days=3, hours=-1),
                                updates=[update("Logins failed for some users.", NOW - timedelta(days=3))])
    await add_incident(store, "Ancient outage", opened_at=NOW - timedelta(days=20),
                       resolved_at=NOW - timedelta(days=20, hours=-2))
    s = await site(history_days=14)

    _, html = await s.get("/")
    assert "Recent blip" in html and "Logins failed for some users." in html
    assert f'href="/incidents/{recent.id}"' in html
    assert "Ancient outage" not in html
    assert "All Systems Operational" in html  # resolved incidents do not colour the banner
    names = [i["name"] for i in (await s.json("/api/v2/incidents.json"))["incidents"]]
    assert names == ["Recent blip"]


async def test_no_history_says_so(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store)
    _, html = await (await site(history_days=7)).get("/")
    assert "No incidents in the last 7 days." in html


# --- the HTML page ----------------------------------------------------------------------


async def test_page_is_complete_and_self_contained(site: SiteFactory, store: SqliteStore) -> None:
    incident = await seed_outage(store)
    s = await site()
    async with s.client.get("/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert resp.charset == "utf-8"
        html = await resp.text()

    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<title>Acme status</title>" in html
    assert "Live status of Acme services." in html
    assert "<script" not in html
    assert all(url.startswith(("/", "#")) for url in re.findall(r'(?:src|href)="([^"]+)"', html)), "no external assets"
    text = text_of(html)
    # Status is spelled out next to every colour dot.
    assert "Public API REST and GraphQL Partial outage" in text
    assert "Website Operational" in text
    assert "EU Database Degraded performance" in text
    assert "Elevated API errors" in text
    assert "Status Identified" in text and "Impact Major" in text
    assert "A failing database node was found." in text
    assert "— signed Dana (SRE)" in text
    assert '<time datetime="2026-01-05T08:50:00.000+00:00">5 Jan 2026, 08:50 UTC</time>' in html
    # Newest update first.
    assert html.index("A failing database node was found.") < html.index("We are investigating elevated")
    assert f'href="/incidents/{incident.id}"' in html

    css_url = re.search(r'<link rel="stylesheet" href="([^"]+)">', html)
    assert css_url is not None and css_url.group(1).startswith("/static/style.css")
    async with s.client.get(css_url.group(1)) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/css"
        assert "max-width: 760px" in await resp.text()


async def test_incident_page(site: SiteFactory, store: SqliteStore) -> None:
    incident = await seed_outage(store)
    status, html = await (await site()).get(f"/incidents/{incident.id}")
    assert status == 200
    assert "<title>Elevated API errors · Acme status</title>" in html
    text = text_of(html)
    assert "Affected Public API, EU Database" in text
    assert "Identified A failing database node was found. — signed Dana (SRE)" in text


@pytest.mark.parametrize("raw", ["999", "abc", "-1", "0", "1.5", "99999999999999999999999", "%2B1", "%D9%A5"],
                         ids=["unknown", "word", "negative", "zero", "fraction", "overflow", "plus-sign",
                              "arabic-digit"])
async def test_incident_page_404(site: SiteFactory, store: SqliteStore, raw: str) -> None:
    await seed_outage(store)
    s = await site()
    async with s.client.get(f"/incidents/{raw}") as resp:
        assert resp.status == 404
        assert resp.content_type == "text/html"
        html = await resp.text()
    assert "Page not found" in html and '<html lang="en">' in html


async def test_update_bodies_and_titles_are_escaped(site: SiteFactory, store: SqliteStore) -> None:
    await set_components(store)
    incident = await add_incident(store, "<b>bold</b> title", updates=[
        update("<script>alert('x')</script> & more", NOW - timedelta(minutes=1), author="<i>Eve</i>")])
    s = await site()
    for path in ("/", f"/incidents/{incident.id}"):
        _, html = await s.get(path)
        assert "<script>alert" not in html and "<b>bold</b>" not in html and "<i>Eve</i>" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
        assert "&lt;b&gt;bold&lt;/b&gt; title" in html
    # JSON carries the text as it was written; escaping is the reader's job there.
    [inc] = (await s.json("/api/v2/incidents/unresolved.json"))["incidents"]
    assert inc["incident_updates"][0]["body"] == "<script>alert('x')</script> & more"


# --- caching ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/v2/summary.json", "/api/v2/components.json"],
                         ids=["page", "summary", "components"])
async def test_cache_serves_the_same_body_until_invalidated_or_expired(
        site: SiteFactory, store: SqliteStore, clock: FakeClock, path: str) -> None:
    await set_components(store)
    s = await site(cache_s=5.0)
    _, first = await s.get(path)
    assert "operational" in first.lower()

    async with store.transaction() as tx:
        await tx.components.set_status("web", ComponentStatus.MAJOR_OUTAGE, NOW)
    await clock.advance(4.9)
    assert (await s.get(path))[1] == first, "still within cache_s"

    s.page.invalidate()
    _, fresh = await s.get(path)
    assert fresh != first and "major" in fresh.lower()

    async with store.transaction() as tx:
        await tx.components.set_status("web", ComponentStatus.OPERATIONAL, NOW)
    await clock.advance(4.9)
    assert (await s.get(path))[1] == fresh
    await clock.advance(0.2)
    assert (await s.get(path))[1] != fresh, "older than cache_s"


async def test_cache_control_header(site: SiteFactory, store: SqliteStore) -> None:
    incident = await seed_outage(store)
    s = await site(cache_s=30.0)
    for path in ("/", f"/incidents/{incident.id}", "/api/v2/summary.json", "/api/v2/status.json"):
        async with s.client.get(path) as resp:
            assert resp.headers["Cache-Control"] == "public, max-age=30", path
    async with s.client.get("/incidents/999") as resp:
        assert resp.headers["Cache-Control"] == "no-cache"


async def test_stampede_shares_one_store_read(site: SiteFactory, store: SqliteStore,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    await seed_outage(store)
    counting = CountingStore(store)
    counting.gate.clear()
    in_cache = 0
    real_get = RenderCache.get

    async def counting_get(self: RenderCache, key: str, render: Callable[[], Awaitable[Rendered]]) -> Rendered:
        nonlocal in_cache
        in_cache += 1  # then runs straight on into the render it leads or the one it joins
        return await real_get(self, key, render)

    monkeypatch.setattr(RenderCache, "get", counting_get)
    # cache_s=0: only coalescing, not the cache, can keep this to one read.
    s = await site(reader=counting, cache_s=0.0)
    visitors = [asyncio.create_task(s.get("/")) for _ in range(25)]
    for _ in range(500):  # requests cross real loopback sockets: wait until every one is waiting in the cache
        if in_cache == len(visitors):
            break
        await asyncio.sleep(0.01)
    assert in_cache == len(visitors)
    assert counting.reads == 1  # every visitor but the first joined its render, held at the gate
    counting.gate.set()
    results = await asyncio.gather(*visitors)

    assert counting.reads == 1
    assert {status for status, _ in results} == {200}
    assert len({body for _, body in results}) == 1

    # Without a cache, a later visitor reads again.
    await s.get("/")
    assert counting.reads == 2


async def test_cache_reads_once_per_period(site: SiteFactory, store: SqliteStore, clock: FakeClock) -> None:
    await seed_outage(store)
    counting = CountingStore(store)
    s = await site(reader=counting, cache_s=5.0)
    for _ in range(10):
        await s.get("/api/v2/summary.json")
    assert counting.reads == 1
    await clock.advance(5)
    await s.get("/api/v2/summary.json")
    assert counting.reads == 2


async def test_cancelled_leader_hands_the_render_to_a_waiter(clock: FakeClock) -> None:
    cache = RenderCache(clock, ttl_s=5)
    release = asyncio.Event()
    calls = 0

    async def render() -> Rendered:
        nonlocal calls
        calls += 1
        await release.wait()
        return Rendered(200, b"body", "text/plain")

    leader = asyncio.create_task(cache.get("k", render))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.get("k", render))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    release.set()
    assert (await waiter).body == b"body"
    assert leader.cancelled()
    assert calls == 2


async def test_a_render_started_before_invalidate_is_not_kept(clock: FakeClock) -> None:
    cache = RenderCache(clock, ttl_s=5)
    release = asyncio.Event()
    versions = iter([b"old", b"new"])

    async def render() -> Rendered:
        body = next(versions)
        if body == b"old":
            await release.wait()
        return Rendered(200, body, "text/plain")

    stale = asyncio.create_task(cache.get("k", render))
    await asyncio.sleep(0)
    cache.invalidate()
    # A request after the change must not join the render that read the old state.
    assert (await cache.get("k", render)).body == b"new"
    release.set()
    assert (await stale).body == b"old"
    assert (await cache.get("k", render)).body == b"new"


async def test_a_failing_render_is_not_cached(clock: FakeClock) -> None:
    cache = RenderCache(clock, ttl_s=5)
    attempts = 0

    async def render() -> Rendered:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("store unavailable")
        return Rendered(200, b"ok", "text/plain")

    with pytest.raises(RuntimeError):
        await cache.get("k", render)
    assert (await cache.get("k", render)).body == b"ok"
    assert (await cache.get("k", render)).body == b"ok"
    assert attempts == 2


# --- ETag -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/v2/summary.json", "/static/style.css"], ids=["page", "api", "css"])
async def test_etag_and_304(site: SiteFactory, store: SqliteStore, path: str) -> None:
    await seed_outage(store)
    s = await site()
    async with s.client.get(path) as resp:
        assert resp.status == 200
        etag = resp.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag)

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        async with s.client.get(path, headers={"If-None-Match": header}) as resp:
            assert resp.status == 304, header
            assert await resp.read() == b""
            assert resp.headers["ETag"] == etag
    async with s.client.get(path, headers={"If-None-Match": '"stale"'}) as resp:
        assert resp.status == 200


async def test_etag_changes_with_content(site: SiteFactory, store: SqliteStore) -> None:
    await seed_outage(store)
    s = await site()
    async with s.client.get("/") as resp:
        etag = resp.headers["ETag"]
    async with store.transaction() as tx:
        await tx.components.set_status("api", ComponentStatus.OPERATIONAL, NOW)
    s.page.invalidate()
    async with s.client.get("/", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] != etag


# --- a real browser, JavaScript off -----------------------------------------------------
#
# Chromium 156's `--dump-dom` serialises the page with a script, so together with
# `--blink-settings=scriptEnabled=false` it prints nothing at all. Instead the test drives
# headless Chromium over the DevTools protocol: scripts are switched off with
# `Emulation.setScriptExecutionDisabled` and the DOM is read with `DOM.getOuterHTML`,
# which needs no page script. A control page proves scripts really did not run.

SCRIPTED_CONTROL = "data:text/html,<p id=probe>scripts-off</p><script>probe.textContent='scripts-on'</script>"

@asynccontextmanager
async def page_in_chromium(store: SqliteStore, clock: FakeClock, tmp_path: Path) -> AsyncIterator[tuple[Page, str]]:
    """The status page on a loopback server, and a Chromium with scripts off to open it in."""
    status_page = StatusPage(store, make_config(), clock)
    app = web.Application()
    status_page.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with asyncio.timeout(90), chromium_page(tmp_path / "chromium-profile") as browser:
            yield browser, str(server.make_url("/"))
    finally:
        await server.close()


@pytest.mark.chromium
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt install chromium)")
async def test_page_renders_in_chromium_without_javascript(store: SqliteStore, clock: FakeClock,
                                                           tmp_path: Path) -> None:
    await seed_outage(store)
    async with page_in_chromium(store, clock, tmp_path) as (browser, url):
        control = await browser.dom(SCRIPTED_CONTROL)
        dom = await browser.dom(url)

    assert "scripts-off" in control and "scripts-on</p>" not in control, "scripts were not disabled"
    text = text_of(dom)
    for expected in ("Partial System Outage", "Public API", "Partial outage", "Website", "Operational",
                     "Databases", "EU Database", "Degraded performance", "Elevated API errors",
                     "A failing database node was found.", "— signed Dana (SRE)"):
        assert expected in text, expected


# --- 90-day uptime ---------------------------------------------------------------------------
#
# Served from the daily rollups that set_status keeps; the page shows one bar per day per
# component, coloured by the day's worst status, with the date and uptime in words on each bar.

from statusd.core.model import DayUptime  # noqa: E402  (appended section)

DAY_BAR = re.compile(r'<li class="uptime-day level-([a-z]+)"><span class="uptime-tip">([^<]+)</span></li>')


def day_bars(html: str, component: str) -> list[tuple[str, str]]:
    """(level, text) of every bar in `component`'s uptime list, oldest first."""
    start = html.index(f'aria-label="{component}: uptime per day')
    end = html.index("</ol>", start)
    return DAY_BAR.findall(html[start:end])


async def seed_history(store: SqliteStore) -> None:
    """Four components known for 120 days (US Database only for 10), with a few bad days behind them."""
    async with store.transaction() as tx:
        await tx.components.sync(COMPONENTS[:3], NOW - timedelta(days=120))
        await tx.components.sync(COMPONENTS, NOW - timedelta(days=9, hours=9))  # db-us arrives on 27 Dec
    changes = [
        # 20 Dec 2025: a 36-minute major outage of the API (1 h 20 min after midnight).
        ("api", ComponentStatus.MAJOR_OUTAGE, datetime(2025, 12, 20, 1, 20, tzinfo=UTC)),
        ("api", ComponentStatus.OPERATIONAL, datetime(2025, 12, 20, 1, 56, tzinfo=UTC)),
        # From 22:00 on 1 Jan to 02:00 on 2 Jan: a partial outage across midnight.
        ("api", ComponentStatus.PARTIAL_OUTAGE, datetime(2026, 1, 1, 22, 0, tzinfo=UTC)),
        ("api", ComponentStatus.OPERATIONAL, datetime(2026, 1, 2, 2, 0, tzinfo=UTC)),
        # 30 Dec: two hours of planned maintenance on the website.
        ("web", ComponentStatus.UNDER_MAINTENANCE, datetime(2025, 12, 30, 8, 0, tzinfo=UTC)),
        ("web", ComponentStatus.OPERATIONAL, datetime(2025, 12, 30, 10, 0, tzinfo=UTC)),
        # Still degraded: since 06:00 today.
        ("db-eu", ComponentStatus.DEGRADED_PERFORMANCE, NOW - timedelta(hours=3)),
    ]
    for cid, status, at in changes:
        async with store.transaction() as tx:
            assert await tx.components.set_status(cid, status, at)


async def test_page_shows_90_days_of_uptime_per_component(site: SiteFactory, store: SqliteStore) -> None:
    await seed_history(store)
    _, html = await (await site()).get("/")

    api = day_bars(html, "Public API")
    assert len(api) == 90
    assert api[0][1].startswith("8 Oct 2025: ") and api[-1][1].startswith("5 Jan 2026: ")
    by_date = {text.split(":")[0]: (level, text) for level, text in api}
    assert by_date["20 Dec 2025"] == ("major", "20 Dec 2025: 97.50 % uptime (major outage 36 min)")
    # The partial outage across midnight colours both days; 2 h at 30 % each.
    assert by_date["1 Jan 2026"] == ("partial", "1 Jan 2026: 97.50 % uptime (partial outage 2 h)")
    assert by_date["2 Jan 2026"] == ("partial", "2 Jan 2026: 97.50 % uptime (partial outage 2 h)")
    assert by_date["3 Jan 2026"] == ("operational", "3 Jan 2026: 100 % uptime")
    assert sum(level == "operational" for level, _ in api) == 87

    # Maintenance is coloured, but not counted against uptime.
    web = {text.split(":")[0]: (level, text) for level, text in day_bars(html, "Website")}
    assert web["30 Dec 2025"] == ("maintenance", "30 Dec 2025: 100 % uptime (under maintenance 2 h)")
    # Today's bar covers today so far: degraded for 3 of 9 hours, which costs no uptime.
    assert day_bars(html, "EU Database")[-1] == ("degraded",
                                                 "5 Jan 2026: 100 % uptime (degraded performance 3 h)")
    # A component added 10 days ago has no data before that.
    us = day_bars(html, "US Database")
    assert [level for level, _ in us[:80]] == ["none"] * 80 and us[0][1] == "8 Oct 2025: no data"
    assert [level for level, _ in us[80:]] == ["operational"] * 10

    text = text_of(html)
    # 0.6 h of major and 4 h of partial outage (1.8 h down) in 2,145 h observed: 99.916 %, rounded down.
    assert "90 days ago 99.91 % uptime Today" in text
    assert "Public API: 99.91 % uptime over the last 90 days." in text
    assert "Website: 100 % uptime over the last 90 days." in text
    # Status words still follow each name, before the bars.
    assert "Public API REST and GraphQL Operational" in text
    assert "EU Database Degraded performance" in text


async def test_each_day_is_described_in_words_once(site: SiteFactory, store: SqliteStore) -> None:
    await seed_history(store)
    s = await site()
    _, html = await s.get("/")
    # One sentence per bar, in the markup once: screen readers read it, CSS shows it on hover.
    assert len(DAY_BAR.findall(html)) == 4 * 90
    assert "title=" not in html.split('<section aria-labelledby="components-title">')[1]
    assert re.search(r'<ol class="uptime-bars" aria-label="Public API: uptime per day, last 90 days, oldest first">',
                     html)
    _, css = await s.get("/static/style.css")
    hidden = re.search(r"\.uptime-tip \{([^}]+)\}", css)
    assert hidden is not None and "clip: rect(0 0 0 0)" in hidden.group(1), "visually hidden, not display: none"
    assert ".uptime-day:hover .uptime-tip" in css and ".uptime-day.level-major" in css


async def test_statuspage_v2_shapes_carry_no_uptime(site: SiteFactory, store: SqliteStore) -> None:
    await seed_history(store)
    s = await site()
    for path in ("/api/v2/components.json", "/api/v2/summary.json"):
        body = await s.json(path)
        for c in body["components"]:
            assert set(c) == (GROUP_KEYS if c["group"] else COMPONENT_KEYS), path


async def test_api_v1_uptime(site: SiteFactory, store: SqliteStore) -> None:
    await seed_history(store)
    s = await site()
    async with s.client.get("/api/v1/uptime?days=7") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "public, max-age=5"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        body = await resp.json()
    assert set(body) == {"page", "days", "from", "to", "components"}
    assert set(body["page"]) == PAGE_KEYS
    assert (body["days"], body["from"], body["to"]) == (7, "2025-12-30", "2026-01-05")
    by_id = {c["id"]: c for c in body["components"]}
    assert list(by_id) == ["api", "web", "db-eu", "db-us"]
    api = by_id["api"]
    assert (api["name"], api["group"], api["status"]) == ("Public API", None, "operational")
    days = {d["date"]: d for d in api["uptime"]["days"]}
    assert list(days) == [f"2025-12-{d}" for d in (30, 31)] + [f"2026-01-0{d}" for d in range(1, 6)]
    assert days["2026-01-01"] == {"date": "2026-01-01", "uptime": pytest.approx(0.975),
                                  "worst_status": "partial_outage",
                                  "seconds": {"major_outage": 0.0, "partial_outage": 7200.0,
                                              "degraded_performance": 0.0, "under_maintenance": 0.0,
                                              "operational": 79200.0},
                                  "checks": 0, "failures": 0}
    assert days["2026-01-05"]["seconds"]["operational"] == 9 * 3600
    observed = 6 * 86400 + 9 * 3600
    assert api["uptime"]["ratio"] == pytest.approx(1 - 2 * 7200 * 0.3 / observed)
    assert api["uptime"]["percent"] == round(100 * api["uptime"]["ratio"], 4)
    assert by_id["db-eu"]["group"] == "Databases"

    default = await s.json("/api/v1/uptime")
    assert default["days"] == 90 and all(len(c["uptime"]["days"]) == 90 for c in default["components"])


@pytest.mark.parametrize("raw", ["0", "367", "abc", "-1", "1.5", "%D9%A5", "", "99999999"],
                         ids=["zero", "too-many", "word", "negative", "fraction", "arabic-digit", "empty", "huge"])
async def test_api_v1_uptime_refuses_bad_days_naming_the_field(site: SiteFactory, store: SqliteStore,
                                                              raw: str) -> None:
    await set_components(store)
    s = await site()
    async with s.client.get(f"/api/v1/uptime?days={raw}") as resp:
        assert resp.status == 400
        assert resp.headers["Cache-Control"] == "no-cache"
        body = await resp.json()
    assert body["error"]["field"] == "days"
    assert "1 to 366" in body["error"]["message"]


async def test_uptime_is_rendered_once_per_cache_period(site: SiteFactory, store: SqliteStore,
                                                       clock: FakeClock) -> None:
    await seed_history(store)
    counting = CountingStore(store)
    s = await site(reader=counting, cache_s=5.0)
    for _ in range(5):
        await s.get("/")
        await s.get("/api/v1/uptime?days=30")
    assert counting.reads == 2  # one for the page (uptime included), one for the API
    await clock.advance(5)
    await s.get("/")
    assert counting.reads == 3


async def test_uptime_follows_status_changes_after_invalidate(site: SiteFactory, store: SqliteStore,
                                                             clock: FakeClock) -> None:
    await seed_history(store)
    s = await site()
    _, before = await s.get("/")
    assert day_bars(before, "Website")[-1][0] == "operational"
    await clock.advance(600)
    async with store.transaction() as tx:
        await tx.components.set_status("web", ComponentStatus.MAJOR_OUTAGE, clock.now())
    s.page.invalidate()
    await clock.advance(300)
    _, after = await s.get("/")
    # 5 minutes of major outage in the 9 h 15 min of today so far.
    assert day_bars(after, "Website")[-1] == ("major", "5 Jan 2026: 99.09 % uptime (major outage 5 min)")


@pytest.mark.parametrize(("day", "uptime", "worst"), [
    pytest.param(DayUptime(NOW.date(), operational_s=86400), 1.0, ComponentStatus.OPERATIONAL, id="all-up"),
    pytest.param(DayUptime(NOW.date(), major_s=8640, operational_s=77760), 0.9, ComponentStatus.MAJOR_OUTAGE,
                 id="major-counts-fully"),
    pytest.param(DayUptime(NOW.date(), partial_s=86400), 0.7, ComponentStatus.PARTIAL_OUTAGE,
                 id="partial-counts-30-percent"),
    pytest.param(DayUptime(NOW.date(), degraded_s=86400), 1.0, ComponentStatus.DEGRADED_PERFORMANCE,
                 id="degraded-counts-nothing"),
    pytest.param(DayUptime(NOW.date(), maintenance_s=43200, major_s=4320, operational_s=38880), 0.9,
                 ComponentStatus.MAJOR_OUTAGE, id="maintenance-left-out"),
    pytest.param(DayUptime(NOW.date(), maintenance_s=86400), None, ComponentStatus.UNDER_MAINTENANCE,
                 id="all-maintenance-has-no-figure"),
    pytest.param(DayUptime(NOW.date()), None, None, id="unobserved"),
])
def test_day_uptime_the_statuspage_way(day: DayUptime, uptime: float | None,
                                       worst: ComponentStatus | None) -> None:
    assert day.uptime == (None if uptime is None else pytest.approx(uptime))
    assert day.worst is worst


@pytest.mark.parametrize(("ratio", "text"), [
    pytest.param(1.0, "100 %", id="all"), pytest.param(0.99999, "99.99 %", id="never-rounds-up-to-100"),
    pytest.param(0.9997, "99.97 %", id="two-decimals"), pytest.param(0.0, "0.00 %", id="nothing"),
    pytest.param(None, "No data", id="no-data"),
])
def test_uptime_percent_text(ratio: float | None, text: str) -> None:
    from status_page.uptime import percent

    assert percent(ratio) == text


@pytest.mark.chromium
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt install chromium)")
async def test_uptime_bars_render_in_chromium_without_javascript(store: SqliteStore, clock: FakeClock,
                                                                 tmp_path: Path) -> None:
    await seed_history(store)
    async with page_in_chromium(store, clock, tmp_path) as (browser, url):
        dom = await browser.dom(url)
    assert len(re.findall(r'class="uptime-day level-', dom)) == 4 * 90
    text = text_of(dom)
    assert "20 Dec 2025: 97.50 % uptime (major outage 36 min)" in text
    assert "90 days ago 99.91 % uptime Today" in text


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(0.2, "1 s", id="a-moment-is-a-second"), pytest.param(40, "40 s", id="seconds"),
    pytest.param(89, "1 min", id="minutes-rounded"), pytest.param(3600, "1 h", id="whole-hours"),
    pytest.param(3 * 3600 + 300, "3 h 5 min", id="hours-and-minutes"),
])
def test_uptime_duration_text(seconds: float, text: str) -> None:
    from status_page.uptime import duration

    assert duration(seconds) == text
