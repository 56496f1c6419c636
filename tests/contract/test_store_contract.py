"""One contract suite for every store: SQLite in tmp_path and PostgreSQL on loopback.

Inputs use microseconds and non-UTC offsets on purpose: a store must hand back the same
instants, UTC-aware, and order by instant rather than by wall-clock text.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from statusd.core.model import (
    CustomerReport,
    Timer,
    Component,
    ComponentStatus,
    EntryKind,
    Impact,
    Incident,
    IncidentStatus,
    NewIncident,
    OutboxMessage,
    OutboxStatus,
    ProbeResult,
    Subscriber,
    TimelineEntry,
)
from statusd.core.protocols import Store
from statusd.store import migrations
from statusd.store.sqlite import SqliteStore
from tests.support.postgres import fresh_postgres_database

IST = timezone(timedelta(hours=5, minutes=30))
PDT = timezone(timedelta(hours=-7))
T0 = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=IST)


def t(seconds: float, tz: timezone = IST) -> datetime:
    """T0 plus `seconds`, written in the offset `tz`."""
    return (T0 + timedelta(seconds=seconds)).astimezone(tz)


def assert_utc(*values: datetime | None) -> None:
    for value in values:
        assert value is not None and value.utcoffset() == timedelta(0), value


@dataclass(frozen=True)
class Backend:
    """One database; `make` builds a new, unopened store over it (a restart or another replica)."""

    name: str
    dialect: str
    make: Callable[[], Store]


@asynccontextmanager
async def two_postgres_replicas(admin_dsn: str) -> AsyncIterator[tuple[str, Store, Store]]:
    """Two stores on one fresh database, as two statusd replicas would share it: (dsn, one, two)."""
    from statusd.store.postgres import PostgresStore

    async with fresh_postgres_database(admin_dsn) as dsn:
        one, two = PostgresStore(dsn, max_size=2), PostgresStore(dsn, max_size=2)
        await one.open()
        await two.open()
        try:
            yield dsn, one, two
        finally:
            await one.close()
            await two.close()


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", "sqlite", lambda: SqliteStore(tmp_path / "statusd.db"))
        return
    admin_dsn = request.getfixturevalue("postgres_server")
    from statusd.store.postgres import PostgresStore

    async with fresh_postgres_database(admin_dsn) as dsn:
        yield Backend("postgres", "postgres", lambda: PostgresStore(dsn, max_size=4))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.make()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def new_incident(title: str = "API errors", *, opened_at: datetime = T0, dedup_key: str | None = None,
                 **overrides: Any) -> NewIncident:
    return NewIncident(title=title, status=IncidentStatus.INVESTIGATING, impact=Impact.MAJOR,
                       components=("api", "web"), opened_at=opened_at, source="probe", dedup_key=dedup_key,
                       assignee="alice", **overrides)


def message(key: str, *, due: datetime | None = None, created_at: datetime = T0,
            context: dict[str, Any] | None = None) -> OutboxMessage:
    return OutboxMessage(key=key, notifier="email", recipient=f"{key}@example.com", template="incident_opened",
                         context={"incident": {"id": 1, "title": "API errors"}, "key": key} if context is None
                         else context, created_at=created_at, next_attempt_at=due)


async def create(store: Store, incident: NewIncident) -> Incident:
    async with store.transaction() as tx:
        return await tx.incidents.create(incident)


async def resolve(store: Store, incident: Incident, at: datetime) -> Incident:
    resolved = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=at, updated_at=at)
    async with store.transaction() as tx:
        await tx.incidents.save(resolved)
    return resolved


# --- migrations ------------------------------------------------------------------------


async def test_migrations_apply_once_and_reopening_applies_nothing(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    try:
        assert first.applied_migrations == [name for _, name, _ in migrations(backend.dialect)]
        async with first.transaction() as tx:
            await tx.components.sync([Component("api", "API")], T0)
    finally:
        await first.close()

    again = backend.make()
    await again.open()
    try:
        assert again.applied_migrations == []
        async with again.read() as r:
            assert [c.id for c in await r.components.list()] == ["api"]
    finally:
        await again.close()


@pytest.mark.postgres
async def test_replicas_opening_together_apply_each_migration_once(postgres_server: str) -> None:
    from statusd.store.postgres import PostgresStore

    async with fresh_postgres_database(postgres_server) as dsn:
        replicas = [PostgresStore(dsn, max_size=2) for _ in range(4)]
        await asyncio.gather(*(r.open() for r in replicas))
        try:
            applied = [name for r in replicas for name in r.applied_migrations]
            assert sorted(applied) == [name for _, name, _ in migrations("postgres")]
        finally:
            await asyncio.gather(*(r.close() for r in replicas))


# --- components ------------------------------------------------------------------------


async def test_component_sync_inserts_updates_deletes_and_keeps_status(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([
            Component("api", "API", description="REST", position=0),
            Component("web", "Website", position=1),
            Component("db", "Database", group="Data", position=2),
        ], t(0))
        assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, t(5, PDT))

    async with store.transaction() as tx:
        await tx.components.sync([
            Component("api", "Public API", description="REST and GraphQL", group="Edge", position=1),
            Component("db", "EU Database", group="Data", position=0),
            Component("queue", "Queue", status=ComponentStatus.UNDER_MAINTENANCE, position=2),
        ], t(10))

    async with store.read() as r:
        components = {c.id: c for c in await r.components.list()}
        assert set(components) == {"api", "db", "queue"}
        assert components["api"] == Component("api", "Public API", description="REST and GraphQL", group="Edge",
                                              position=1, status=ComponentStatus.MAJOR_OUTAGE, updated_at=t(5))
        assert components["db"] == Component("db", "EU Database", group="Data", position=0, updated_at=t(0))
        # A new component starts with the status it was given and the sync time.
        assert components["queue"].status is ComponentStatus.UNDER_MAINTENANCE
        assert components["queue"].updated_at == t(10)
        assert_utc(*(c.updated_at for c in components.values()))
        assert await r.components.get("web") is None
        assert await r.components.get("api") == components["api"]

    async with store.transaction() as tx:
        await tx.components.sync([], t(20))
    async with store.read() as r:
        assert await r.components.list() == []


async def test_components_list_by_group_position_then_position(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([
            Component("a", "A", group="Edge", position=0),
            Component("b", "B", position=1),
            Component("c", "C", group="Data", position=2),
            Component("d", "D", group="Edge", position=3),
            Component("e", "E", position=4),
            Component("f", "F", group="Data", position=5),
        ], T0)
    async with store.read() as r:
        # "Edge" sits at 0 and "Data" at 2, ungrouped components at their own positions.
        assert [c.id for c in await r.components.list()] == ["a", "d", "b", "c", "f", "e"]


async def test_set_status_returns_whether_it_changed(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], t(0))
        assert await tx.components.set_status("api", ComponentStatus.OPERATIONAL, t(1)) is False
        assert await tx.components.set_status("api", ComponentStatus.PARTIAL_OUTAGE, t(2, PDT)) is True
        assert await tx.components.set_status("api", ComponentStatus.PARTIAL_OUTAGE, t(3)) is False
        assert await tx.components.set_status("nope", ComponentStatus.MAJOR_OUTAGE, t(4)) is False
    async with store.read() as r:
        api = await r.components.get("api")
        assert api is not None and api.status is ComponentStatus.PARTIAL_OUTAGE
        assert api.updated_at == t(2)
        assert_utc(api.updated_at)
        assert await r.components.get("nope") is None


# --- incidents -------------------------------------------------------------------------


async def test_incident_create_and_get_round_trip(store: Store) -> None:
    opened = t(0, PDT)
    created = await create(store, new_incident("Checkout fails", opened_at=opened, dedup_key="probe:checkout"))
    assert created == Incident(id=created.id, title="Checkout fails", status=IncidentStatus.INVESTIGATING,
                               impact=Impact.MAJOR, components=("api", "web"), opened_at=opened,
                               updated_at=opened, source="probe", dedup_key="probe:checkout", assignee="alice")
    assert_utc(created.opened_at, created.updated_at)
    async with store.read() as r:
        assert await r.incidents.get(created.id) == created
        assert await r.incidents.get(created.id + 1000) is None


async def test_incident_save_round_trips_every_mutable_field(store: Store) -> None:
    created = await create(store, new_incident(dedup_key="k"))
    changed = replace(
        created, title="API errors in EU", status=IncidentStatus.MONITORING, impact=Impact.CRITICAL,
        components=("api", "db-eu", "queue"), assignee="bob", acknowledged_at=t(61.5, PDT),
        acknowledged_by="bob", first_public_update_at=t(120.000001), updated_at=t(300.25, UTC),
        resolved_at=t(400.75, PDT), commander="bob", comms="carol",
        escalation={"policy": "default", "levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 300}]},
        handoff={"from": "bob", "to": "carol", "note": "shift over", "at": "2026-03-01T10:00:00+00:00"},
        last_public_update_at=t(130, PDT), postmortem="# What happened\n\nA *bad* deploy.",
        postmortem_at=t(500), merged_into=None,
    )
    async with store.transaction() as tx:
        await tx.incidents.save(changed)
    async with store.read() as r:
        got = await r.incidents.get(created.id)
    assert got == changed
    assert got is not None
    assert_utc(got.opened_at, got.updated_at, got.acknowledged_at, got.first_public_update_at, got.resolved_at)

    # Clearing optional fields stores NULLs again.
    cleared = replace(changed, assignee=None, acknowledged_at=None, acknowledged_by=None,
                      first_public_update_at=None, resolved_at=None, components=(), commander=None, comms=None,
                      handoff=None, last_public_update_at=None, postmortem=None, postmortem_at=None)
    async with store.transaction() as tx:
        await tx.incidents.save(cleared)
    async with store.read() as r:
        assert await r.incidents.get(created.id) == cleared


async def test_second_open_incident_with_same_dedup_key_is_refused_until_resolved(store: Store) -> None:
    first = await create(store, new_incident(dedup_key="probe:api"))
    with pytest.raises(Exception):
        await create(store, new_incident(opened_at=t(10), dedup_key="probe:api"))
    async with store.read() as r:
        assert [i.id for i in await r.incidents.list_open()] == [first.id]

    await resolve(store, first, t(20))
    second = await create(store, new_incident(opened_at=t(30), dedup_key="probe:api"))
    assert second.id != first.id
    # Incidents without a dedup key never collide.
    await create(store, new_incident(opened_at=t(40)))
    await create(store, new_incident(opened_at=t(50)))
    async with store.read() as r:
        assert len(await r.incidents.list_open()) == 3
        keys = await r.incidents.open_keys()
    assert sorted(keys.values(), key=str) == [None, None, "probe:api"]
    assert second.id in keys and first.id not in keys  # the resolved one is gone


async def test_find_open_by_dedup_key(store: Store) -> None:
    old = await create(store, new_incident(dedup_key="surge:login"))
    await resolve(store, old, t(10))
    current = await create(store, new_incident(opened_at=t(20), dedup_key="surge:login"))
    other = await create(store, new_incident(opened_at=t(30), dedup_key="probe:api"))
    async with store.read() as r:
        assert await r.incidents.find_open_by_dedup_key("surge:login") == current
        assert await r.incidents.find_open_by_dedup_key("probe:api") == other
        assert await r.incidents.find_open_by_dedup_key("missing") is None
    await resolve(store, current, t(40))
    async with store.read() as r:
        assert await r.incidents.find_open_by_dedup_key("surge:login") is None


async def test_find_open_joined_finds_the_open_incident_a_signal_joined(store: Store) -> None:
    manual = await create(store, new_incident("Checkout down", opened_at=t(0)))
    async with store.transaction() as tx:
        await tx.incidents.add_entry(TimelineEntry(incident_id=manual.id, at=t(10), kind=EntryKind.SIGNAL,
                                                   body="Joined: api 5xx", data={"joined": "am:dup", "n": 1}))
        await tx.incidents.add_entry(TimelineEntry(incident_id=manual.id, at=t(20), kind=EntryKind.NOTE,
                                                   body="not a signal", data={"joined": "am:note"}))
    async with store.read() as r:
        assert (await r.incidents.find_open_joined("am:dup")).id == manual.id
        assert await r.incidents.find_open_joined("am:note") is None  # only signal entries count
        assert await r.incidents.find_open_joined("am:other") is None
        assert await r.incidents.find_open_by_dedup_key("am:dup") is None  # it is not the incident's own key
    await resolve(store, manual, t(30))
    async with store.read() as r:
        assert await r.incidents.find_open_joined("am:dup") is None


async def test_list_open_is_newest_first_by_instant(store: Store) -> None:
    # Local wall-clock text would sort these the other way round.
    older = await create(store, new_incident("older", opened_at=t(0, IST)))
    newer = await create(store, new_incident("newer", opened_at=t(60, PDT)))
    same_time = await create(store, new_incident("same instant, later id", opened_at=t(60, UTC)))
    closed = await create(store, new_incident("closed", opened_at=t(90)))
    await resolve(store, closed, t(100))
    async with store.read() as r:
        assert [i.title for i in await r.incidents.list_open()] == [same_time.title, newer.title, older.title]


async def test_list_recent_window_limit_and_order(store: Store) -> None:
    long_resolved = await create(store, new_incident("long resolved", opened_at=t(0)))
    await resolve(store, long_resolved, t(100))
    resolved_in_window = await create(store, new_incident("resolved in window", opened_at=t(50)))
    await resolve(store, resolved_in_window, t(1000, PDT))
    still_open = await create(store, new_incident("still open since long ago", opened_at=t(10)))
    opened_in_window = await create(store, new_incident("opened in window", opened_at=t(1000, UTC)))
    await resolve(store, opened_in_window, t(1100))
    newest = await create(store, new_incident("newest", opened_at=t(2000, PDT)))

    since = t(1000)  # boundaries are inclusive
    async with store.read() as r:
        recent = await r.incidents.list_recent(since)
        assert [i.title for i in recent] == [newest.title, opened_in_window.title, resolved_in_window.title,
                                             still_open.title]
        assert [i.title for i in await r.incidents.list_recent(since, limit=2)] == [newest.title,
                                                                                    opened_in_window.title]
        # Open incidents stay listed however old they are.
        assert [i.title for i in await r.incidents.list_recent(t(5000))] == [newest.title, still_open.title]


# --- timeline --------------------------------------------------------------------------


async def test_timeline_entries_oldest_first_with_public_filter_and_json_data(store: Store) -> None:
    a = await create(store, new_incident("a"))
    b = await create(store, new_incident("b"))
    data = {"evidence": {"reports": 42, "ratio": 0.25, "clients": ["c1", "c2"]}, "note": "Störung — 障害",
            "flag": True, "none": None}
    async with store.transaction() as tx:
        signal = await tx.incidents.add_entry(TimelineEntry(incident_id=a.id, at=t(0, PDT), kind=EntryKind.SIGNAL,
                                                            body="5xx ratio 40%", data=data))
        update = await tx.incidents.add_entry(TimelineEntry(
            incident_id=a.id, at=t(120.5), kind=EntryKind.UPDATE, body="We are investigating.", author="Alice",
            status=IncidentStatus.INVESTIGATING, public=True))
        # Written later but about an earlier moment: it still sorts by time.
        note = await tx.incidents.add_entry(TimelineEntry(incident_id=a.id, at=t(60, UTC), kind=EntryKind.NOTE,
                                                          body="internal"))
        other = await tx.incidents.add_entry(TimelineEntry(incident_id=b.id, at=t(5), kind=EntryKind.UPDATE,
                                                           body="b update", author="Bob", public=True))
    assert None not in (signal.id, update.id, note.id, other.id)
    assert signal == TimelineEntry(incident_id=a.id, at=t(0), kind=EntryKind.SIGNAL, body="5xx ratio 40%",
                                   data=data, id=signal.id)

    async with store.read() as r:
        everything = await r.incidents.entries([a.id, b.id, 999_999])
        assert everything == {a.id: [signal, note, update], b.id: [other], 999_999: []}
        assert_utc(*(e.at for entries in everything.values() for e in entries))
        assert everything[a.id][0].data == data
        assert await r.incidents.entries([a.id], public_only=True) == {a.id: [update]}
        assert await r.incidents.entries([]) == {}


# --- probe results ---------------------------------------------------------------------


async def test_probe_results_recent_newest_first_with_limit(store: Store) -> None:
    results = [ProbeResult(probe="api-http", component="api", at=t(i * 30, PDT if i % 2 else IST), ok=i != 2,
                           latency_s=0.125 * i, degraded=i == 3, error="timeout" if i == 2 else "",
                           detail={"status": 200 + i, "body": "ok"}) for i in range(5)]
    async with store.transaction() as tx:
        for result in reversed(results):  # insertion order must not matter
            await tx.probe_results.add(result)
        await tx.probe_results.add(ProbeResult(probe="db-tcp", component=None, at=t(500), ok=True, latency_s=0.001))

    async with store.read() as r:
        recent = await r.probe_results.recent("api-http")
        assert recent == results[::-1]
        assert_utc(*(p.at for p in recent))
        assert await r.probe_results.recent("api-http", limit=2) == [results[4], results[3]]
        assert [p.component for p in await r.probe_results.recent("db-tcp")] == [None]
        assert await r.probe_results.recent("missing") == []


async def test_probe_results_prune_deletes_older_and_counts(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(5):
            await tx.probe_results.add(ProbeResult(probe="p", component=None, at=t(i * 60), ok=True, latency_s=0.1))
    async with store.transaction() as tx:
        assert await tx.probe_results.prune(t(120, PDT)) == 2  # t(120) itself is kept
        assert await tx.probe_results.prune(t(120)) == 0
    async with store.read() as r:
        assert [p.at for p in await r.probe_results.recent("p")] == [t(240), t(180), t(120)]


# --- subscribers -----------------------------------------------------------------------


async def test_subscribers_add_is_idempotent_and_updates_components(store: Store) -> None:
    async with store.transaction() as tx:
        alice = await tx.subscribers.add(Subscriber("email", "alice@example.com", ("web", "api"),
                                                    created_at=t(0, PDT)))
        bob = await tx.subscribers.add(Subscriber("webhook", "https://hooks.example.com/x"))
        again = await tx.subscribers.add(Subscriber("email", "alice@example.com", ("db",), created_at=t(500)))
    assert alice.id is not None and bob.id is not None and alice.id != bob.id
    assert alice == Subscriber("email", "alice@example.com", ("api", "web"), id=alice.id, created_at=t(0))
    assert_utc(alice.created_at, bob.created_at)
    assert again == Subscriber("email", "alice@example.com", ("db",), id=alice.id, created_at=t(0))
    async with store.read() as r:
        assert await r.subscribers.list() == [again, bob]


async def test_subscribers_remove(store: Store) -> None:
    async with store.transaction() as tx:
        alice = await tx.subscribers.add(Subscriber("email", "alice@example.com", created_at=T0))
        bob = await tx.subscribers.add(Subscriber("email", "bob@example.com", created_at=T0))
    assert alice.id is not None
    async with store.transaction() as tx:
        assert await tx.subscribers.remove(alice.id) is True
        assert await tx.subscribers.remove(alice.id) is False
    async with store.read() as r:
        assert await r.subscribers.list() == [bob]


async def test_subscribers_for_components_include_subscribers_to_everything(store: Store) -> None:
    async with store.transaction() as tx:
        api = await tx.subscribers.add(Subscriber("email", "api@example.com", ("api",), created_at=T0))
        everything = await tx.subscribers.add(Subscriber("email", "all@example.com", created_at=T0))
        both = await tx.subscribers.add(Subscriber("slack", "#ops", ("db", "api"), created_at=T0))
        db = await tx.subscribers.add(Subscriber("email", "db@example.com", ("db",), created_at=T0))
    async with store.read() as r:
        assert await r.subscribers.for_components(["api"]) == [api, everything, both]
        assert await r.subscribers.for_components({"db", "web"}) == [everything, both, db]
        assert await r.subscribers.for_components(["web"]) == [everything]
        assert await r.subscribers.for_components([]) == [everything]


# --- outbox ----------------------------------------------------------------------------


async def test_outbox_enqueue_stores_each_key_once(store: Store) -> None:
    context = {"incident": {"id": 7, "title": "Störung — 障害", "components": ["api"]}, "ratio": 0.5,
               "ack": False, "assignee": None}
    first = message("m1", created_at=t(0, PDT), context=context)
    async with store.transaction() as tx:
        assert await tx.outbox.enqueue([first, message("m2", due=t(60)), message("m1")]) == 2
        assert await tx.outbox.enqueue([message("m2"), message("m3")]) == 1
        assert await tx.outbox.enqueue([]) == 0
    async with store.read() as r:
        listed = await r.outbox.list()
    assert [m.key for m in listed] == ["m3", "m2", "m1"]
    stored = listed[2]
    assert stored == replace(first, id=stored.id, next_attempt_at=t(0))  # due when created by default
    assert stored.context == context
    assert_utc(stored.created_at, stored.next_attempt_at)
    assert listed[1].next_attempt_at == t(60)
    assert all(m.status is OutboxStatus.PENDING and m.attempts == 0 for m in listed)
    async with store.read() as r:
        assert [m.key for m in await r.outbox.list(limit=2)] == ["m3", "m2"]


async def test_outbox_claim_takes_only_due_rows_earliest_first(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message("late", due=t(30)), message("early", due=t(10, PDT)),
                                 message("middle", due=t(20, UTC)), message("future", due=t(100))])
    async with store.transaction() as tx:
        claimed = await tx.outbox.claim(t(50, PDT), limit=2, lease_s=60)
    assert {m.key for m in claimed} == {"early", "middle"}
    assert all(m.status is OutboxStatus.SENDING and m.attempts == 1 for m in claimed)
    async with store.transaction() as tx:
        assert [m.key for m in await tx.outbox.claim(t(50), limit=10, lease_s=60)] == ["late"]
        assert await tx.outbox.claim(t(99.999999), limit=10, lease_s=60) == []
        assert [m.key for m in await tx.outbox.claim(t(100), limit=10, lease_s=60)] == ["future"]


async def test_outbox_claims_pages_before_a_backlog_of_other_messages(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message(f"ack{i}", due=t(i)) for i in range(20)])
        await tx.outbox.enqueue([replace(message("page", due=t(30)), template="alert"),
                                 replace(message("remind", due=t(31)), template="reminder")])
    async with store.transaction() as tx:
        claimed = await tx.outbox.claim(t(50), limit=3, lease_s=60)
    assert {m.key for m in claimed} == {"page", "remind", "ack0"}  # then the oldest of the rest


async def test_outbox_expired_lease_makes_sending_row_claimable_again(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message("m")])
        [claimed] = await tx.outbox.claim(t(0), limit=10, lease_s=30)
    assert claimed.attempts == 1
    async with store.read() as r:
        assert await r.outbox.next_due() == t(30)  # when the lease runs out
    async with store.transaction() as tx:
        assert await tx.outbox.claim(t(29.999), limit=10, lease_s=30) == []
        [reclaimed] = await tx.outbox.claim(t(30, PDT), limit=10, lease_s=30)
    assert (reclaimed.id, reclaimed.status, reclaimed.attempts) == (claimed.id, OutboxStatus.SENDING, 2)


async def test_outbox_claims_and_waits_per_notifier_lane(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([replace(message(f"{n}{i}", due=t(i)), notifier=n)
                                 for n in ("mail", "hooks", "gone") for i in range(3)])
    async with store.transaction() as tx:
        mail = await tx.outbox.claim(t(50), limit=10, lease_s=60, notifiers=["mail"])
        assert [m.key for m in mail] == ["mail0", "mail1", "mail2"]
        rest = await tx.outbox.claim(t(50), limit=1, lease_s=60, other_than=["mail", "hooks"])
        assert [m.key for m in rest] == ["gone0"]
        assert await tx.outbox.claim(t(50), limit=10, lease_s=60, notifiers=[]) == []
    async with store.read() as r:
        assert await r.outbox.next_due(notifiers=["mail"]) == t(110)  # only leases, running out at 50 + 60
        assert await r.outbox.next_due(notifiers=["hooks"]) == t(0)
        assert await r.outbox.next_due(other_than=["hooks"]) == t(1)  # gone1
        assert await r.outbox.next_due(notifiers=["hooks"], other_than=["hooks"]) is None


async def test_outbox_release_hands_a_message_back_without_counting_the_attempt(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message("m")])
        [claimed] = await tx.outbox.claim(t(0), limit=10, lease_s=60)
        assert claimed.id is not None and claimed.attempts == 1
        await tx.outbox.release(claimed.id, claimed.attempts, t(5))
    async with store.read() as r:
        [back] = await r.outbox.list()
        assert (back.status, back.attempts, back.next_attempt_at, back.last_error) == \
            (OutboxStatus.PENDING, 0, t(5), "interrupted by shutdown")
    async with store.transaction() as tx:
        [again] = await tx.outbox.claim(t(5), limit=10, lease_s=60)
        assert again.id is not None
        # Its lease ran out and another worker claimed it: the first claimant's late release must not undo that.
        [third] = await tx.outbox.claim(t(66), limit=10, lease_s=60)
        await tx.outbox.release(again.id, again.attempts, t(67))
    async with store.read() as r:
        [claimed_again] = await r.outbox.list()
        assert (claimed_again.status, claimed_again.attempts) == (OutboxStatus.SENDING, 2)
    async with store.transaction() as tx:
        await tx.outbox.mark_sent(again.id, t(68))
        await tx.outbox.release(third.id, third.attempts, t(69))  # settled meanwhile: a late release changes nothing
    async with store.read() as r:
        [sent] = await r.outbox.list()
        assert (sent.status, sent.attempts) == (OutboxStatus.SENT, 2)


async def test_outbox_mark_retry_sent_and_dead(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message("ok"), message("flaky"), message("broken")])
        ok, flaky, broken = await tx.outbox.claim(t(0), limit=10, lease_s=60)
        assert (ok.key, flaky.key, broken.key) == ("ok", "flaky", "broken")
        assert ok.id and flaky.id and broken.id
        await tx.outbox.mark_retry(ok.id, t(5), "HTTP 503")
        await tx.outbox.mark_retry(flaky.id, t(90, PDT), "x" * 5000)
        await tx.outbox.mark_dead(broken.id, t(1), "HTTP 404: no such chat")
    async with store.read() as r:
        by_key = {m.key: m for m in await r.outbox.list()}
        assert by_key["flaky"].status is OutboxStatus.PENDING
        assert by_key["flaky"].next_attempt_at == t(90)
        assert by_key["flaky"].last_error == "x" * 1000
        assert by_key["flaky"].attempts == 1
        assert by_key["broken"].status is OutboxStatus.DEAD
        assert by_key["broken"].last_error == "HTTP 404: no such chat"
        assert by_key["broken"].sent_at is None
        assert await r.outbox.next_due() == t(5)

    async with store.transaction() as tx:
        [again] = await tx.outbox.claim(t(5), limit=10, lease_s=60)
        assert again.key == "ok" and again.attempts == 2 and again.last_error == "HTTP 503"
        await tx.outbox.mark_sent(ok.id, t(6, PDT))
    async with store.read() as r:
        sent = {m.key: m for m in await r.outbox.list()}["ok"]
        assert (sent.status, sent.sent_at, sent.last_error, sent.attempts) == (OutboxStatus.SENT, t(6), "", 2)
        assert_utc(sent.sent_at)
        assert await r.outbox.next_due() == t(90)


async def test_outbox_next_due_and_counts(store: Store) -> None:
    async with store.read() as r:
        assert await r.outbox.next_due() is None
        assert await r.outbox.counts() == {"pending": 0, "sending": 0, "sent": 0, "dead": 0}
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message("a", due=t(40)), message("b", due=t(20, PDT)), message("c", due=t(30)),
                                 message("d", due=t(50))])
        claimed = await tx.outbox.claim(t(20), limit=1, lease_s=300)
        assert [m.key for m in claimed] == ["b"]
    async with store.read() as r:
        due = await r.outbox.next_due()
        assert due == t(30)
        assert_utc(due)
        assert await r.outbox.counts() == {"pending": 3, "sending": 1, "sent": 0, "dead": 0}

    async with store.transaction() as tx:
        [c, a, d] = await tx.outbox.claim(t(50), limit=3, lease_s=300)
        assert c.id and a.id and d.id and claimed[0].id
        await tx.outbox.mark_sent(a.id, t(51))
        await tx.outbox.mark_sent(c.id, t(51))
        await tx.outbox.mark_dead(d.id, t(51), "gone")
        await tx.outbox.mark_sent(claimed[0].id, t(51))
    async with store.read() as r:
        assert await r.outbox.next_due() is None
        assert await r.outbox.counts() == {"pending": 0, "sending": 0, "sent": 3, "dead": 1}


async def test_concurrent_claims_never_return_the_same_message(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([message(f"m{i}", due=t(i)) for i in range(6)])
    claimed_once = [asyncio.Event(), asyncio.Event()]

    async def worker(me: int) -> list[OutboxMessage]:
        async with store.transaction() as tx:
            batch = await tx.outbox.claim(t(60), limit=3, lease_s=60)
            claimed_once[me].set()
            # Hold the rows until the other worker has claimed too, so both transactions
            # overlap; a store that serialises transactions makes this wait time out.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await claimed_once[1 - me].wait()
            return batch

    first, second = await asyncio.gather(worker(0), worker(1))
    assert len(first) == len(second) == 3
    assert not {m.id for m in first} & {m.id for m in second}
    assert {m.key for m in first + second} == {f"m{i}" for i in range(6)}


@pytest.mark.postgres
async def test_postgres_claim_skips_rows_another_replica_holds(postgres_server: str) -> None:
    async with two_postgres_replicas(postgres_server) as (_, one, two):
        async with one.transaction() as tx:
            await tx.outbox.enqueue([message(f"m{i}", due=t(i)) for i in range(6)])
        async with one.transaction() as holder:
            held = await holder.outbox.claim(t(60), limit=3, lease_s=60)
            # Waiting for the holder to commit would deadlock here: the holder waits for us.
            async with asyncio.timeout(5), two.transaction() as tx:
                taken = await tx.outbox.claim(t(60), limit=10, lease_s=60)
        assert [m.key for m in held] == ["m0", "m1", "m2"]
        assert [m.key for m in taken] == ["m3", "m4", "m5"]


# --- units of work ---------------------------------------------------------------------


class Boom(Exception):
    pass


async def test_transaction_that_raises_rolls_back_everything(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], T0)
    incident_id = None
    with pytest.raises(Boom):
        async with store.transaction() as tx:
            incident = await tx.incidents.create(new_incident(dedup_key="probe:api"))
            incident_id = incident.id
            await tx.incidents.add_entry(TimelineEntry(incident_id=incident.id, at=T0, kind=EntryKind.SIGNAL))
            assert await tx.outbox.enqueue([message("m1"), message("m2")]) == 2
            assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, T0)
            await tx.subscribers.add(Subscriber("email", "a@example.com", created_at=T0))
            await tx.probe_results.add(ProbeResult(probe="p", component="api", at=T0, ok=False, latency_s=1.0))
            raise Boom()
    assert incident_id is not None
    async with store.read() as r:
        assert await r.incidents.get(incident_id) is None
        assert await r.incidents.list_open() == []
        assert await r.incidents.find_open_by_dedup_key("probe:api") is None
        assert await r.incidents.entries([incident_id]) == {incident_id: []}
        assert await r.outbox.list() == []
        assert await r.outbox.counts() == {"pending": 0, "sending": 0, "sent": 0, "dead": 0}
        api = await r.components.get("api")
        assert api is not None and api.status is ComponentStatus.OPERATIONAL
        assert await r.subscribers.list() == []
        assert await r.probe_results.recent("p") == []
    # The store is still usable after a rollback.
    assert (await create(store, new_incident(dedup_key="probe:api"))).dedup_key == "probe:api"


async def test_a_brief_transaction_commits_and_rolls_back_like_any_other(store: Store) -> None:
    with pytest.raises(Boom):
        async with store.transaction(brief=True) as tx:
            await tx.outbox.enqueue([message("m1")])
            raise Boom()
    async with store.transaction(brief=True) as tx:
        await tx.outbox.enqueue([message("m2")])
    async with store.read() as r:
        assert [m.key for m in await r.outbox.list()] == ["m2"]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "statusd.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_sqlite_transaction_holds_the_write_lock_from_its_first_statement(sqlite_store: SqliteStore) -> None:
    # BEGIN IMMEDIATE travels with the first statement: from there on, no other writer gets in.
    other = sqlite3.connect(sqlite_store.path, isolation_level=None, timeout=0)
    try:
        async with sqlite_store.transaction() as tx:
            await tx.outbox.enqueue([message("m1")])
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # committed: free again
        other.execute("ROLLBACK")
    finally:
        other.close()
    async with sqlite_store.read() as r:
        assert [m.key for m in await r.outbox.list()] == ["m1"]


def writer_hops(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions sent to the writer's thread from now on, one per hop."""
    writer = store._writer
    assert writer is not None
    hops: list[str] = []
    execute = type(writer)._execute

    async def counted(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self is writer:
            hops.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(type(writer), "_execute", counted)
    return hops


async def test_sqlite_transaction_costs_one_hop_per_statement_and_one_to_commit(
        sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every hop to the connection's thread waits for a turn of the event loop; under load that is the cost.
    hops = writer_hops(sqlite_store, monkeypatch)
    async with sqlite_store.transaction() as tx:
        await tx.outbox.enqueue([message("m1")])
    assert hops == ["_begun", "_commit"]
    hops.clear()
    async with sqlite_store.transaction() as tx:
        pass
    assert hops == []  # nothing to begin or commit


async def test_sqlite_brief_transaction_runs_on_the_loop_thread_and_the_wal_is_checkpointed_off_it(
        sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    hops = writer_hops(sqlite_store, monkeypatch)
    monkeypatch.setattr(sqlite_store, "checkpoint_interval_s", 0.0)
    big = {"text": "x" * 50_000}
    for i in range(200):  # 10 MB through the WAL
        async with sqlite_store.transaction(brief=True) as tx:
            await tx.outbox.enqueue([message(f"m{i}", context=big)])
        await asyncio.sleep(0)  # a server's loop turns between requests; the checkpoint starts in one
    assert hops == []  # no statement, BEGIN or COMMIT went to the writer's thread
    if sqlite_store._checkpointing is not None:
        await sqlite_store._checkpointing
    wal = sqlite_store.path.with_name(sqlite_store.path.name + "-wal")
    assert wal.stat().st_size < 4_000_000  # checkpointed as it went (the writer never checkpoints itself)
    async with sqlite_store.read() as r:
        assert len(await r.outbox.list(1000)) == 200


async def test_sqlite_a_commit_cancelled_on_the_thread_ends_before_a_brief_transaction_begins(
        sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # E.g. a probe's transaction cancelled by shutdown while its COMMIT waits on the writer's thread,
    # then the intake's group commit on the loop's thread: one connection, never used by both at once.
    import threading

    import statusd.store.sqlite as sqlite_module

    gate = threading.Event()
    commit = sqlite_module._commit

    def slow_commit(conn: sqlite3.Connection) -> None:
        gate.wait(5)
        commit(conn)
    monkeypatch.setattr(sqlite_module, "_commit", slow_commit)

    async def probe() -> None:
        async with sqlite_store.transaction() as tx:
            await tx.outbox.enqueue([message("probe")])
    task = asyncio.create_task(probe())
    await asyncio.sleep(0.05)  # the COMMIT is queued on the thread
    task.cancel()
    monkeypatch.setattr(sqlite_module, "_commit", commit)
    brief = asyncio.create_task(_brief_enqueue(sqlite_store, "intake"))
    await asyncio.sleep(0.05)
    assert not brief.done()  # waits for the lock the cancelled transaction still holds
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await brief
    async with sqlite_store.read() as r:
        assert sorted(m.key for m in await r.outbox.list()) == ["intake", "probe"]


async def test_sqlite_brief_transaction_waits_for_another_process_off_the_loop(sqlite_store: SqliteStore) -> None:
    # Another process holds the write lock (statusd migrate, a backup, the sqlite3 shell): the
    # brief transaction waits for it on the writer's thread, and the event loop goes on meanwhile.
    import threading

    other = sqlite3.connect(sqlite_store.path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0.01)
                turns += 1
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await _brief_enqueue(sqlite_store, "m1")
        waited_turns = turns
        tick.cancel()
        assert waited_turns > 5  # a BEGIN waiting on the loop's thread would have frozen it: 0
    finally:
        other.close()
    async with sqlite_store.read() as r:
        assert [m.key for m in await r.outbox.list()] == ["m1"]


async def test_sqlite_a_commit_while_closing_starts_no_checkpoint(
        sqlite_store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    sqlite_store.checkpoint_interval_s = 0.0
    closing = asyncio.create_task(sqlite_store.close())
    await asyncio.sleep(0)
    with contextlib.suppress(Exception):  # the store may already be closed for it: either way, no checkpoint
        await _brief_enqueue(sqlite_store, "late", brief=False)
    await closing
    assert sqlite_store._checkpointing is None or sqlite_store._checkpointing.done()
    assert not [r for r in caplog.records if "checkpoint" in r.getMessage()]


async def _brief_enqueue(store: SqliteStore, key: str, *, brief: bool = True) -> None:
    async with store.transaction(brief=brief) as tx:
        await tx.outbox.enqueue([message(key)])


async def test_sqlite_statement_after_a_failed_begin_still_runs_in_the_transaction(sqlite_store: SqliteStore) -> None:
    # The first statement's BEGIN finds the database locked by another writer. A body that carries
    # on must not write outside the transaction: the next statement begins it, so the rollback holds.
    writer = sqlite_store._writer
    assert writer is not None
    await writer.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(sqlite_store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Boom):
            async with sqlite_store.transaction() as tx:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    await tx.outbox.enqueue([message("m1")])
                other.execute("ROLLBACK")
                await tx.outbox.enqueue([message("m2")])
                raise Boom()
    finally:
        other.close()
    async with sqlite_store.read() as r:
        assert await r.outbox.list() == []


async def test_committed_work_is_visible_to_readers(store: Store) -> None:
    async with store.transaction() as tx:
        created = await tx.incidents.create(new_incident())
    async with store.read() as r:
        assert await r.incidents.list_open() == [created]


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        async with store.transaction() as tx:
            await tx.probe_results.add(ProbeResult(probe="p", component=None, at=datetime(2026, 1, 1),
                                                   ok=True, latency_s=0.1))
    async with store.read() as r:
        assert await r.probe_results.recent("p") == []


# --- timers and re-opening --------------------------------------------------------------

async def test_timers_schedule_due_take_once_and_cancel(store: Store) -> None:
    incident = await create(store, new_incident(escalation={"policy": "p", "levels": []}))
    assert incident.escalation == {"policy": "p", "levels": []}
    async with store.transaction() as tx:
        late = await tx.timers.schedule(Timer("escalate", incident.id, t(600), {"step": 2}, created_at=T0))
        early = await tx.timers.schedule(Timer("escalate", incident.id, t(300, PDT), {"step": 1}, created_at=T0))
        remind = await tx.timers.schedule(Timer("remind", incident.id, t(900), created_at=T0))
    assert early.id is not None and late.id is not None and remind.id is not None
    async with store.read() as r:
        assert await r.timers.next_due() == t(300)
        assert await r.timers.due(t(299), 10) == []
        due = await r.timers.due(t(600), 10)
        assert [(x.id, x.payload) for x in due] == [(early.id, {"step": 1}), (late.id, {"step": 2})]
        assert_utc(due[0].due_at, due[0].created_at)
        assert [x.id for x in await r.timers.pending(incident.id)] == [early.id, late.id, remind.id]
    async with store.transaction() as tx:
        taken = await tx.timers.take(early.id, t(301))
        again = await tx.timers.take(early.id, t(302))
    assert taken is not None and taken.fired_at == t(301) and again is None
    async with store.transaction() as tx:
        assert await tx.timers.cancel(incident.id, ["escalate"], t(310)) == 1  # only the pending one
        assert await tx.timers.take(late.id, t(601)) is None  # cancelled timers never fire
    async with store.read() as r:
        assert [x.kind for x in await r.timers.pending(incident.id)] == ["remind"]
        assert await r.timers.next_due() == t(900)


async def test_timers_scheduled_in_a_failed_transaction_do_not_exist(store: Store) -> None:
    incident = await create(store, new_incident())
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.timers.schedule(Timer("escalate", incident.id, t(60), created_at=T0))
            raise RuntimeError("boom")
    async with store.read() as r:
        assert await r.timers.pending(incident.id) == []
        assert await r.timers.next_due() is None


async def test_find_recent_by_dedup_key_for_reopening(store: Store) -> None:
    first = await create(store, new_incident(dedup_key="k", opened_at=t(0)))
    await resolve(store, first, t(100))
    async with store.read() as r:
        assert (await r.incidents.find_recent_by_dedup_key("k", t(50))).id == first.id
        assert await r.incidents.find_recent_by_dedup_key("k", t(101)) is None
        assert await r.incidents.find_recent_by_dedup_key("other", t(0)) is None


# --- uptime rollups ----------------------------------------------------------------------
#
# set_status accrues the interval a change closes into per-component, per-UTC-day rows;
# uptime() adds the still-open interval. Inputs keep using non-UTC offsets: days are UTC days.

from datetime import date  # noqa: E402  (appended section)

from statusd.core.model import DayUptime  # noqa: E402

H = 3600.0


def utc(day: int, hour: float, month: int = 3) -> datetime:
    """2026-<month>-<day> at `hour` UTC, written in IST so the store has to convert."""
    return (datetime(2026, month, day, tzinfo=UTC) + timedelta(hours=hour)).astimezone(IST)


def by_day(days: list[DayUptime]) -> dict[str, DayUptime]:
    return {d.day.isoformat(): d for d in days}


def seconds(day: DayUptime) -> dict[str, float]:
    """The non-zero status seconds of a day, rounded to the microsecond."""
    spent = {"operational": day.operational_s, "maintenance": day.maintenance_s, "degraded": day.degraded_s,
             "partial": day.partial_s, "major": day.major_s}
    return {k: round(v, 6) for k, v in spent.items() if v}


async def test_set_status_accrues_each_closed_interval_into_the_utc_days_it_covered(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API"), Component("web", "Web")], utc(1, 9))
    async with store.transaction() as tx:
        assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, utc(1, 22).astimezone(PDT))
    # Major outage across midnight, then a partial outage spanning two whole days.
    async with store.transaction() as tx:
        assert await tx.components.set_status("api", ComponentStatus.PARTIAL_OUTAGE, utc(2, 2.5))
    async with store.transaction() as tx:
        assert await tx.components.set_status("api", ComponentStatus.OPERATIONAL, utc(4, 6) + timedelta(microseconds=250))
        assert await tx.components.set_status("api", ComponentStatus.DEGRADED_PERFORMANCE, utc(4, 12))

    async with store.read() as r:
        # Read before the open interval began: only what closed intervals recorded.
        uptime = await r.components.uptime(["api"], 5, utc(4, 12))
    days = by_day(uptime["api"])
    assert list(days) == ["2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert seconds(days["2026-02-28"]) == {}
    assert days["2026-02-28"].uptime is None and days["2026-02-28"].worst is None
    assert seconds(days["2026-03-01"]) == {"operational": 13 * H, "major": 2 * H}
    assert seconds(days["2026-03-02"]) == {"major": 2.5 * H, "partial": 21.5 * H}
    assert seconds(days["2026-03-03"]) == {"partial": 24 * H}
    assert seconds(days["2026-03-04"]) == {"partial": 6 * H + 0.00025, "operational": 6 * H - 0.00025}
    assert days["2026-03-01"].worst is ComponentStatus.MAJOR_OUTAGE
    assert days["2026-03-03"].worst is ComponentStatus.PARTIAL_OUTAGE
    assert days["2026-03-01"].uptime == pytest.approx(1 - 2 / 15)
    assert days["2026-03-03"].uptime == pytest.approx(0.7)


async def test_uptime_adds_the_open_interval_up_to_now_across_midnights(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API"), Component("web", "Web")], utc(1, 0))
        assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, utc(2, 20))
    async with store.read() as r:
        uptime = await r.components.uptime(["api", "web"], 3, utc(4, 1.5).astimezone(PDT))
    api, web = by_day(uptime["api"]), by_day(uptime["web"])
    assert seconds(api["2026-03-02"]) == {"operational": 20 * H, "major": 4 * H}
    assert seconds(api["2026-03-03"]) == {"major": 24 * H}
    assert seconds(api["2026-03-04"]) == {"major": 1.5 * H}
    assert api["2026-03-03"].uptime == 0.0
    # A component that never changed is operational for all of its open interval.
    assert [seconds(d) for d in web.values()] == [{"operational": 24 * H}, {"operational": 24 * H},
                                                  {"operational": 1.5 * H}]
    # Reading does not write: the same read later sees the interval grow, nothing doubled.
    async with store.read() as r:
        later = by_day((await r.components.uptime(["api"], 1, utc(4, 3)))["api"])
    assert seconds(later["2026-03-04"]) == {"major": 3 * H}


async def test_uptime_window_ends_today_and_ignores_older_rollups(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], utc(1, 0, month=1))
        # 1 Jan .. 10 Jan operational, then major outage for a day, then operational again.
        assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, utc(10, 0, month=1))
        assert await tx.components.set_status("api", ComponentStatus.OPERATIONAL, utc(11, 0, month=1))
    async with store.read() as r:
        window = (await r.components.uptime(["api", "unknown"], 90, utc(31, 12, month=3)))
    assert len(window["api"]) == 90
    assert window["api"][0].day == date(2026, 1, 1) and window["api"][-1].day == date(2026, 3, 31)
    assert [d.day for d in window["api"]] == sorted(d.day for d in window["api"])
    days = by_day(window["api"])
    assert seconds(days["2026-01-10"]) == {"major": 24 * H}
    assert all(seconds(d) == {"operational": 24 * H} for k, d in days.items() if k not in ("2026-01-10", "2026-03-31"))
    # A component the store does not know has days, all without data.
    assert len(window["unknown"]) == 90 and all(d.observed_s == 0 for d in window["unknown"])

    async with store.read() as r:
        shifted = by_day((await r.components.uptime(["api"], 30, utc(31, 12, month=3)))["api"])
    assert min(shifted) == "2026-03-02" and "2026-01-10" not in shifted
    async with store.read() as r:
        assert await r.components.uptime([], 90, utc(31, 12, month=3)) == {}


async def test_unchanged_status_and_unknown_components_accrue_nothing(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], utc(1, 0))
        assert await tx.components.set_status("api", ComponentStatus.OPERATIONAL, utc(1, 6)) is False
        assert await tx.components.set_status("ghost", ComponentStatus.MAJOR_OUTAGE, utc(1, 6)) is False
        assert await tx.components.set_status("api", ComponentStatus.UNDER_MAINTENANCE, utc(1, 12)) is True
    async with store.read() as r:
        uptime = await r.components.uptime(["api", "ghost"], 1, utc(1, 18))
    [day] = uptime["api"]
    assert seconds(day) == {"operational": 12 * H, "maintenance": 6 * H}
    # Maintenance is left out of the denominator.
    assert day.counted_s == 12 * H and day.uptime == 1.0
    assert [seconds(d) for d in uptime["ghost"]] == [{}]


async def test_a_change_dated_before_the_interval_began_counts_no_time_twice(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], utc(1, 0))
        assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, utc(1, 10))
        assert await tx.components.set_status("api", ComponentStatus.OPERATIONAL, utc(1, 8))  # clock stepped back
    async with store.read() as r:
        [day] = (await r.components.uptime(["api"], 1, utc(1, 12)))["api"]
    assert seconds(day) == {"operational": 12 * H}
    assert day.observed_s == 12 * H


async def test_rollups_roll_back_with_their_transaction(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], utc(1, 0))
    with pytest.raises(Boom):
        async with store.transaction() as tx:
            assert await tx.components.set_status("api", ComponentStatus.MAJOR_OUTAGE, utc(1, 6))
            await tx.probe_results.add(ProbeResult(probe="p", component="api", at=utc(1, 6), ok=False,
                                                   latency_s=1.0))
            raise Boom()
    async with store.read() as r:
        [day] = (await r.components.uptime(["api"], 1, utc(1, 12)))["api"]
    assert seconds(day) == {"operational": 12 * H}
    assert (day.checks, day.failures) == (0, 0)


async def test_probe_results_count_checks_and_failures_per_component_and_utc_day(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], utc(1, 0))
        await tx.probe_results.add(ProbeResult(probe="a", component="api", at=utc(1, 23.5), ok=False, latency_s=1))
        # 23:30 PDT on 1 March is 06:30 UTC on 2 March: counted on the UTC day.
        late_evening = datetime(2026, 3, 1, 23, 30, tzinfo=PDT)
        await tx.probe_results.add_many([
            ProbeResult(probe="a", component="api", at=late_evening, ok=True, latency_s=0.1),
            ProbeResult(probe="b", component="api", at=utc(1, 12), ok=True, latency_s=0.1, degraded=True),
            ProbeResult(probe="b", component="api", at=utc(1, 13), ok=False, latency_s=0.1),
            ProbeResult(probe="c", component=None, at=utc(1, 13), ok=False, latency_s=0.1),
        ])
        await tx.probe_results.add_many([])
    async with store.transaction() as tx:
        await tx.probe_results.add_many([ProbeResult(probe="a", component="api", at=utc(2, 7), ok=True,
                                                     latency_s=0.1)])
    async with store.read() as r:
        days = by_day((await r.components.uptime(["api"], 2, utc(2, 12)))["api"])
        # Raw rows are stored as before, including the one without a component.
        assert [p.at for p in await r.probe_results.recent("a")] == [utc(2, 7), late_evening, utc(1, 23.5)]
        assert len(await r.probe_results.recent("c")) == 1
    assert (days["2026-03-01"].checks, days["2026-03-01"].failures) == (3, 2)
    assert (days["2026-03-02"].checks, days["2026-03-02"].failures) == (2, 0)
    # Counting checks does not touch the status seconds.
    assert seconds(days["2026-03-01"]) == {"operational": 24 * H}


async def test_probe_results_oldest(store: Store) -> None:
    async with store.read() as r:
        assert await r.probe_results.oldest() is None
    async with store.transaction() as tx:
        await tx.probe_results.add_many([ProbeResult(probe="p", component=None, at=t(i * 60, PDT), ok=True,
                                                     latency_s=0.1) for i in (3, 1, 2)])
    async with store.read() as r:
        oldest = await r.probe_results.oldest()
    assert oldest == t(60)
    assert_utc(oldest)


async def test_upgrade_to_rollups_starts_open_intervals_at_the_last_change(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    import statusd.store.postgres as postgres_store
    import statusd.store.sqlite as sqlite_store

    module = sqlite_store if backend.dialect == "sqlite" else postgres_store
    everything = module.migrations
    monkeypatch.setattr(module, "migrations", lambda dialect: [m for m in everything(dialect) if m[0] <= 2])
    old = backend.make()
    await old.open()
    await old.close()
    # Rows as the 0002 code wrote them: the status and the time of its last change.
    rows = [("api", "API", "partial_outage", utc(1, 10)), ("web", "Web", "operational", utc(1, 0))]
    if backend.dialect == "sqlite":
        from statusd.store.dialect import ts

        assert isinstance(old, SqliteStore)
        with contextlib.closing(sqlite3.connect(old.path)) as db:
            db.executemany("INSERT INTO components (id, name, status, updated_at) VALUES (?, ?, ?, ?)",
                           [(cid, name, status, ts(at)) for cid, name, status, at in rows])
            db.commit()
    else:
        import asyncpg

        conn = await asyncpg.connect(old.dsn)  # type: ignore[attr-defined]
        try:
            await conn.executemany("INSERT INTO components (id, name, status, updated_at) VALUES ($1, $2, $3, $4)",
                                   rows)
        finally:
            await conn.close()

    monkeypatch.setattr(module, "migrations", everything)
    upgraded = backend.make()
    await upgraded.open()
    try:
        applied = [name.split("_", 1)[0] for name in upgraded.applied_migrations]
        assert applied[0] == "0003" and applied == sorted(applied)  # later migrations may follow
        async with upgraded.transaction() as tx:
            assert await tx.components.set_status("api", ComponentStatus.OPERATIONAL, utc(1, 16))
        async with upgraded.read() as r:
            uptime = await r.components.uptime(["api", "web"], 1, utc(1, 20))
    finally:
        await upgraded.close()
    [api], [web] = uptime["api"], uptime["web"]
    # Time before the upgrade is known from the last change; earlier history was never recorded.
    assert seconds(api) == {"partial": 6 * H, "operational": 4 * H}
    assert seconds(web) == {"operational": 20 * H}


# --- customer reports ---------------------------------------------------------------------

def customer_report(client: str, *, external_id: str | None = None, at: datetime = T0, source: str = "api:helpdesk",
                    contact: tuple[str, str] | None = None) -> CustomerReport:
    return CustomerReport(source=source, client_id=client, text=f"card payments fail for {client} — не работает",
                          received_at=at, channel="chat", tags={"component": "payments"}, contact=contact,
                          external_id=external_id, ticket_url="https://help.example.com/t/1", created_at=at)


async def test_reports_add_is_idempotent_on_source_and_external_id(store: Store) -> None:
    async with store.transaction() as tx:
        first, created = await tx.reports.add(customer_report("c1", external_id="T-1",
                                                              contact=("mail", "c1@example.com")))
        again, created_again = await tx.reports.add(customer_report("c1", external_id="T-1"))
        other_source, created_other = await tx.reports.add(customer_report("c1", external_id="T-1", source="form"))
        no_id_1, _ = await tx.reports.add(customer_report("c2"))
        no_id_2, _ = await tx.reports.add(customer_report("c2"))
    assert created and not created_again and created_other
    assert again.id == first.id and other_source.id != first.id
    assert no_id_1.id != no_id_2.id  # without an external id every report is new
    assert first.contact == ("mail", "c1@example.com") and first.tags == {"component": "payments"}
    assert "не работает" in first.text
    assert_utc(first.received_at, first.created_at)


async def test_reports_add_many_keeps_input_order_and_marks_repeats(store: Store) -> None:
    async with store.transaction() as tx:
        earlier, _ = await tx.reports.add(customer_report("c0", external_id="T-0"))
    batch = [customer_report("c1"), customer_report("c0", external_id="T-0"), customer_report("c2", external_id="T-2"),
             customer_report("c3", external_id="T-2"), customer_report("c4", external_id="T-2", source="form"),
             customer_report("c5"), customer_report("c5"), customer_report("c6", external_id="T-0"),
             customer_report("c7", external_id="T-7", at=t(60, PDT), contact=("mail", "c7@example.com"))]
    async with store.transaction() as tx:
        results = await tx.reports.add_many(batch)
        assert await tx.reports.add_many([]) == []
    assert [created for _, created in results] == [True, False, True, False, True, True, True, False, True]
    # A repeat, of a stored report or of one earlier in the batch, returns the stored one.
    assert [r.client_id for r, _ in results] == ["c1", "c0", "c2", "c2", "c4", "c5", "c5", "c0", "c7"]
    assert results[1][0] == results[7][0] == earlier and results[3][0] == results[2][0]
    new = [r for r, created in results if created]
    new_ids = [r.id for r in new]
    assert len(set(new_ids)) == 6 and earlier.id not in new_ids
    assert new_ids == sorted(new_ids)  # in the batch's order, as adding one by one would give
    assert new[-1].contact == ("mail", "c7@example.com") and new[-1].tags == {"component": "payments"}
    assert new[-1].received_at == t(60) and new[-1].external_id == "T-7" and new[0].external_id is None
    assert_utc(*(r.received_at for r in new), *(r.created_at for r in new))
    async with store.read() as r:
        assert await r.reports.recent(T0 - timedelta(days=1)) == [earlier, *new]  # nothing else stored


@pytest.mark.postgres
async def test_postgres_add_many_waits_for_a_replica_storing_the_same_reports(postgres_server: str) -> None:
    import asyncpg

    async with two_postgres_replicas(postgres_server) as (dsn, one, two):
        watcher = await asyncpg.connect(dsn)

        async def store_on_two() -> list[tuple[CustomerReport, bool]]:
            async with two.transaction() as tx:
                return await tx.reports.add_many([customer_report("b3", external_id="T-3"),
                                                  customer_report("b1", external_id="T-1"),
                                                  customer_report("b9", external_id="T-9")])

        try:
            async with one.transaction() as holder:
                held = await holder.reports.add_many([customer_report(f"a{i}", external_id=f"T-{i}")
                                                      for i in (1, 2, 3)])
                waiting = asyncio.create_task(store_on_two())
                try:
                    # Until the holder commits, the other replica's insert waits on its rows.
                    async with asyncio.timeout(5):
                        while not await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE"
                                                         " datname = current_database() AND wait_event_type = 'Lock'"):
                            await asyncio.sleep(0.01)
                except BaseException:
                    waiting.cancel()
                    raise
            stored = await waiting
            # Repeats of rows committed after the waiting statement began are found all the same.
            assert [(r.client_id, created) for r, created in stored] == [("a3", False), ("a1", False), ("b9", True)]
            assert [r.id for r, _ in stored[:2]] == [held[2][0].id, held[0][0].id]
        finally:
            await watcher.close()


async def test_reports_link_once_list_recent_and_move(store: Store) -> None:
    incident = await create(store, new_incident())
    other = await create(store, new_incident("Other", dedup_key="other"))
    async with store.transaction() as tx:
        reports = [(await tx.reports.add(customer_report(f"c{i}", at=t(60 * i, PDT))))[0] for i in range(4)]
        ids = [r.id for r in reports]
        linked = await tx.reports.link(ids[:3], incident.id)
        relinked = await tx.reports.link(ids, other.id)  # only the one not yet linked
    assert [r.id for r in linked] == ids[:3] and all(r.incident_id == incident.id for r in linked)
    assert [r.id for r in relinked] == ids[3:]
    async with store.read() as r:
        assert [x.id for x in await r.reports.for_incident(incident.id)] == ids[:3]
        assert [x.id for x in await r.reports.recent(t(60))] == ids[1:]
    async with store.transaction() as tx:
        assert await tx.reports.move(incident.id, other.id) == 3
    async with store.read() as r:
        assert await r.reports.for_incident(incident.id) == []
        assert [x.id for x in await r.reports.for_incident(other.id)] == ids
