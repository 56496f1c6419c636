"""The outbox worker delivers every committed message once, retries with backoff, isolates failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest

from notifiers.webhook import WebhookConfig, WebhookNotifier
from statusd.core.clock import FakeClock
from statusd.core.model import OutboxMessage, OutboxStatus, Rendered
from statusd.core.protocols import Notifier
from statusd.core.schema import Secret
from statusd.notify.outbox import OutboxWorker, _Lane
from statusd.notify.retry import RetryPolicy
from statusd.notify.templates import Templates
from statusd.store.sqlite import SqliteStore
from tests.support.fakes import WebhookReceiver

SECRET = "outbox-test-secret-0123"
CONTEXT = {
    "incident": {"id": 1, "title": "API down", "status": "investigating", "impact": "critical",
                 "components": ["API"], "component_ids": ["api"], "source": "probe",
                 "opened_at": "2026-03-02T09:00:00+00:00", "assignee": "Ann", "url": "http://s/incidents/1"},
    "page": {"title": "Example", "url": "http://s"},
}


class WatchedClock(FakeClock):
    """A fake clock that knows how many tasks sleep on it right now: each lane idle is one sleeper."""

    def __init__(self) -> None:
        super().__init__()
        self.asleep = 0

    async def sleep(self, seconds: float) -> None:
        self.asleep += 1
        try:
            await super().sleep(seconds)
        finally:
            self.asleep -= 1


class Counted:
    """A notifier that records each send as it starts, before any I/O, then hands it on."""

    def __init__(self, inner: Notifier) -> None:
        self.name = inner.name
        self.inner = inner
        self.started: list[str] = []

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        self.started.append(key)
        await self.inner.send(recipient, message, key=key)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (real time, 5 s at most) until `check()` holds: only for things that must happen, never for absence."""
    for _ in range(250):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within 5 s: {what}")


@pytest.fixture
async def good() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver(secret=SECRET).start()
    yield receiver
    await receiver.close()


@pytest.fixture
async def bad() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver(secret=SECRET, fail_with=503).start()
    yield receiver
    await receiver.close()


def worker(store: SqliteStore, http: aiohttp.ClientSession, clock: FakeClock, **kw) -> OutboxWorker:
    hooks = WebhookNotifier(WebhookConfig(name="hooks", type="webhook", secret=Secret(SECRET)), http, clock=clock)
    return OutboxWorker(store, {"hooks": hooks}, Templates(), clock, rng=random.Random(1),
                        retry=RetryPolicy(max_attempts=3, initial_s=10, max_s=60, jitter=0.0), **kw)


async def enqueue(store: SqliteStore, clock: FakeClock, *targets: tuple[str, str], template: str = "alert") -> None:
    async with store.transaction() as tx:
        await tx.outbox.enqueue(OutboxMessage(key=f"k:{notifier}:{url}", notifier=notifier, recipient=url,
                                              template=template, context=CONTEXT, created_at=clock.now())
                                for notifier, url in targets)


async def statuses(store: SqliteStore) -> dict[str, tuple[str, int]]:
    async with store.read() as r:
        return {m.recipient: (m.status.value, m.attempts) for m in await r.outbox.list()}


async def test_delivers_signed_rendered_payload_once(sqlite_store, http, clock, good) -> None:
    await enqueue(sqlite_store, clock, ("hooks", good.url()))
    await enqueue(sqlite_store, clock, ("hooks", good.url()))  # same key again: stored once
    w = worker(sqlite_store, http, clock)
    assert await w.drain_once() == 1
    assert await w.drain_once() == 0
    assert len(good.hooks) == 1 and good.rejected == 0
    payload = good.hooks[0].json
    assert payload["event"] == "alert" and payload["incident"]["title"] == "API down"
    assert good.hooks[0].headers["X-Statusd-Delivery"] == f"k:hooks:{good.url()}"
    assert (await statuses(sqlite_store))[good.url()] == ("sent", 1)


async def test_a_failing_receiver_is_retried_with_backoff_and_never_blocks_others(sqlite_store, http, clock, good,
                                                                                   bad) -> None:
    await enqueue(sqlite_store, clock, ("hooks", bad.url()), ("hooks", good.url()))
    w = worker(sqlite_store, http, clock)
    assert await w.drain_once() == 2
    assert len(good.hooks) == 1 and bad.rejected == 1
    assert await w.drain_once() == 0  # the retry is not due yet
    await clock.advance(9)
    assert await w.drain_once() == 0
    await clock.advance(1)  # initial_s = 10
    assert await w.drain_once() == 1 and bad.rejected == 2
    await clock.advance(19)
    assert await w.drain_once() == 0  # second retry waits 20 s
    bad.fail_with = None  # the receiver comes back
    await clock.advance(1)
    assert await w.drain_once() == 1
    assert len(bad.hooks) == 1 and len(good.hooks) == 1
    assert await statuses(sqlite_store) == {bad.url(): ("sent", 3), good.url(): ("sent", 1)}


async def test_gives_up_after_max_attempts(sqlite_store, http, clock, bad) -> None:
    await enqueue(sqlite_store, clock, ("hooks", bad.url()))
    w = worker(sqlite_store, http, clock)
    for _ in range(5):
        await w.drain_once()
        await clock.advance(3600)
    assert bad.rejected == 3
    async with sqlite_store.read() as r:
        [message] = await r.outbox.list()
    assert message.status is OutboxStatus.DEAD and "503" in message.last_error


@pytest.mark.parametrize("status", [400, 404, 410])
async def test_a_permanent_failure_is_not_retried(sqlite_store, http, clock, bad, status) -> None:
    bad.fail_with = status
    await enqueue(sqlite_store, clock, ("hooks", bad.url()))
    w = worker(sqlite_store, http, clock)
    await w.drain_once()
    await clock.advance(3600)
    await w.drain_once()
    assert bad.rejected == 1
    assert (await statuses(sqlite_store))[bad.url()] == ("dead", 1)


async def test_unknown_notifier_and_broken_template_are_dead_not_crashes(sqlite_store, http, clock, good) -> None:
    await enqueue(sqlite_store, clock, ("removed-notifier", "http://x"))
    await enqueue(sqlite_store, clock, ("hooks", good.url("/t")), template="no-such-template")
    await enqueue(sqlite_store, clock, ("hooks", good.url("/ok")))
    w = worker(sqlite_store, http, clock)
    assert await w.drain_once() == 3
    st = await statuses(sqlite_store)
    assert st["http://x"][0] == "dead" and st[good.url("/t")][0] == "dead"
    assert st[good.url("/ok")][0] == "sent"


async def test_a_crash_mid_send_is_retried_after_the_lease(sqlite_store, http, clock, good) -> None:
    await enqueue(sqlite_store, clock, ("hooks", good.url()))
    async with sqlite_store.transaction() as tx:  # a worker claims it and dies before settling
        assert len(await tx.outbox.claim(clock.now(), 10, lease_s=120)) == 1
    w = worker(sqlite_store, http, clock, lease_s=120)
    assert await w.drain_once() == 0
    await clock.advance(121)
    assert await w.drain_once() == 1
    assert len(good.hooks) == 1
    assert (await statuses(sqlite_store))[good.url()] == ("sent", 2)


async def test_run_loop_wakes_on_commit_and_on_due_retries(sqlite_store, http, good, bad) -> None:
    clock = WatchedClock()
    w = worker(sqlite_store, http, clock)
    task = asyncio.create_task(w.run())
    try:
        await enqueue(sqlite_store, clock, ("hooks", good.url()), ("hooks", bad.url()))
        w.wake()
        await asyncio.wait_for(good.arrived.wait(), 5)

        async def retry_scheduled_and_lanes_asleep() -> bool:
            # Both lanes back asleep on the clock: the retry can only come due by the clock moving.
            return (await statuses(sqlite_store)).get(bad.url()) == ("pending", 1) and clock.asleep == 2

        await eventually(retry_scheduled_and_lanes_asleep, "the failure settled as a retry, the lanes idle")
        assert bad.rejected == 1
        bad.fail_with = None
        await clock.advance(11)  # the retry comes due while the loop sleeps on the clock

        async def retried() -> bool:
            return bool(bad.hooks)

        await eventually(retried, "the retry delivered")
        assert len(bad.hooks) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, initial_s=5, max_s=60, jitter=0.0)
    rng = random.Random(0)
    assert [policy.delay_s(n, rng) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    jittered = RetryPolicy(initial_s=10, jitter=0.2)
    assert all(10 <= jittered.delay_s(1, rng) <= 12 for _ in range(100))
    assert timedelta(seconds=policy.delay_s(3, rng)) == timedelta(seconds=20)
    capped = RetryPolicy(initial_s=2, max_s=8, jitter=0.2)  # jitter must not carry a wait past the cap
    assert all(capped.delay_s(n, rng) <= 8 for n in range(1, 200) for _ in range(5))


async def test_shutdown_mid_send_hands_the_message_back_at_once(sqlite_store, http, clock) -> None:
    import asyncio as aio

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    started = aio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await aio.sleep(30)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await enqueue(sqlite_store, clock, ("hooks", str(server.make_url("/slow"))))
        w = worker(sqlite_store, http, clock)
        task = aio.create_task(w.drain_once())
        await aio.wait_for(started.wait(), 5)
        task.cancel()
        await aio.gather(task, return_exceptions=True)
        async with sqlite_store.read() as r:
            [message] = await r.outbox.list()
            assert message.status is OutboxStatus.PENDING and message.last_error == "interrupted by shutdown"
            assert message.attempts == 0  # a shutdown is not a failed attempt
            assert await r.outbox.next_due() == clock.now()  # due again now, not after the lease
    finally:
        await server.close()


async def test_a_page_that_ends_undelivered_is_noted_in_its_incident_timeline(sqlite_store, http, clock, bad) -> None:
    from statusd.core.model import EntryKind, IncidentStatus, Impact, NewIncident

    async with sqlite_store.transaction() as tx:
        incident = await tx.incidents.create(NewIncident(title="API down", status=IncidentStatus.INVESTIGATING,
                                                         impact=Impact.CRITICAL, components=(), opened_at=clock.now()))
    assert incident.id == CONTEXT["incident"]["id"]
    bad.fail_with = 410
    await enqueue(sqlite_store, clock, ("hooks", bad.url()))  # a page (template "alert")
    await enqueue(sqlite_store, clock, ("hooks", bad.url("/subscriber")), template="update")  # not a page
    await worker(sqlite_store, http, clock).drain_once()
    async with sqlite_store.read() as r:
        entries = (await r.incidents.entries([incident.id]))[incident.id]
    notes = [e for e in entries if e.kind is EntryKind.NOTE]
    assert len(notes) == 1 and "Could not deliver the alert" in notes[0].body and "410" in notes[0].body
    assert notes[0].public is False


@pytest.fixture
async def hanging() -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver that never answers (until the test ends): a mail server or webhook gone silent.

    Yields its URL and the delivery key of every request it got.
    """
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    hits: list[str] = []
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        hits.append(request.headers.get("X-Statusd-Delivery", ""))
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hang)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/hang")), hits
    release.set()
    await server.close()


async def run_until(w: OutboxWorker, done: Callable[[], Awaitable[bool]]) -> None:
    task = asyncio.create_task(w.run())
    try:
        await eventually(done, "delivered")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_hanging_channel_holds_up_only_its_own_lane(sqlite_store, http, clock, good, hanging) -> None:
    """A backlog for a silent receiver fills its own notifier's slots; the other notifier's messages still go."""
    url, _ = hanging
    slow = WebhookNotifier(WebhookConfig(name="slow", type="webhook", secret=Secret(SECRET)), http, clock=clock)
    hooks = WebhookNotifier(WebhookConfig(name="hooks", type="webhook", secret=Secret(SECRET)), http, clock=clock)
    w = OutboxWorker(sqlite_store, {"slow": slow, "hooks": hooks}, Templates(), clock, concurrency=4, batch_size=50)
    await enqueue(sqlite_store, clock, *[("slow", f"{url}/{i}") for i in range(20)])
    await enqueue(sqlite_store, clock, *[("hooks", good.url(f"/{i}")) for i in range(5)])

    async def all_good_arrived() -> bool:
        return len(good.hooks) == 5

    await run_until(w, all_good_arrived)
    stuck = {m.recipient: m for m in await listed(sqlite_store) if m.notifier == "slow"}
    assert all(m.status is OutboxStatus.PENDING and m.attempts == 0 for m in stuck.values())  # handed back


async def test_one_hanging_recipient_does_not_hold_up_the_rest_of_its_lane(sqlite_store, http, clock, good,
                                                                          hanging) -> None:
    """Slots are topped up as deliveries finish, not once a whole claimed batch is settled."""
    url, hits = hanging
    w = worker(sqlite_store, http, clock, concurrency=4, batch_size=4)
    await enqueue(sqlite_store, clock, ("hooks", url))
    await enqueue(sqlite_store, clock, *[("hooks", good.url(f"/{i}")) for i in range(12)])

    async def all_good_arrived() -> bool:
        return len(good.hooks) == 12

    await run_until(w, all_good_arrived)
    assert len(hits) == 1


async def listed(store: SqliteStore) -> list[OutboxMessage]:
    async with store.read() as r:
        return await r.outbox.list()


@pytest.mark.parametrize("broken", [False, True], ids=["as-built", "without-the-under-way-check"])
async def test_a_send_that_outlasts_its_lease_is_not_sent_again_while_under_way(sqlite_store, http, hanging,
                                                                               monkeypatch, broken) -> None:
    """The check that no second send starts holds behind a barrier, and catches a lane that would start one."""
    if broken:  # proves the test can fail: a lane that forgets which sends are under way repeats this one
        monkeypatch.setattr(_Lane, "_under_way", lambda lane, message: False)
    url, hits = hanging
    clock = WatchedClock()
    slow = Counted(WebhookNotifier(WebhookConfig(name="hooks", type="webhook", secret=Secret(SECRET), timeout_s=60),
                                   http, clock=clock))
    w = OutboxWorker(sqlite_store, {"hooks": slow}, Templates(), clock, concurrency=4, lease_s=5)
    await enqueue(sqlite_store, clock, ("hooks", url))
    task = asyncio.create_task(w.run())
    try:
        async def under_way() -> bool:
            return bool(hits)

        await eventually(under_way, "the send reached the receiver")
        await clock.advance(6)  # the lease runs out while the send is still under way
        # The lane may have computed its sleep just before the fake clock moved, and then sleeps past
        # it (real time has no such gap): wake it, so that it looks at the new time.
        w.wake()

        async def claimed_again_and_idle() -> bool:
            # The barrier: the lane claimed it again (the new lease covers the send under way) and went back
            # to sleep on the clock. A send it started from that claim began before that sleep: a delivery
            # reaches `send` in its first step, and the lane awaits the store in between.
            return [m.attempts for m in await listed(sqlite_store)] == [2] and clock.asleep == 2

        await eventually(claimed_again_and_idle, "the lane claimed the message again and went idle")
        if broken:
            assert len(slow.started) == 2
        else:
            assert slow.started == [f"k:hooks:{url}"] and len(hits) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
