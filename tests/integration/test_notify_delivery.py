"""Each delivery stage against real peers on loopback, on a fake clock: the reason reaches the row and the metric."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry

from notifiers.email import EmailConfig, EmailNotifier
from notifiers.webhook import WebhookConfig, WebhookNotifier
from statusd.core.clock import FakeClock
from statusd.core.model import (EntryKind, Impact, IncidentStatus, NewIncident, OutboxMessage, OutboxStatus,
                                Rendered)
from statusd.core.protocols import Notifier
from statusd.core.schema import Secret
from statusd.metrics import Metrics
from statusd.notify.delivery import Delivery
from statusd.notify.failure import Failure, Reason, classify
from statusd.notify.outbox import OutboxWorker
from statusd.notify.retry import RetryPolicy
from statusd.notify.settlement import Settlement
from statusd.notify.templates import Templates
from statusd.store.sqlite import SqliteStore
from tests.conftest import free_port

SECRET = "stage-test-secret-77"
TOKEN = "T0KEN-in-the-path"
RETRY = RetryPolicy(max_attempts=3, initial_s=10, max_s=60, jitter=0.0)
CONTEXT: dict[str, Any] = {
    "incident": {"id": 1, "title": "API down", "status": "investigating", "impact": "critical",
                 "components": ["API"], "component_ids": ["api"], "source": "probe",
                 "opened_at": "2026-03-02T09:00:00+00:00", "assignee": "Ann", "url": "http://s/incidents/1"},
    "page": {"title": "Example", "url": "http://s"},
}


@pytest.fixture
async def peer() -> AsyncIterator[str]:
    """A webhook receiver whose path says how to answer: /status/<n>, /hang, or anything else for 204."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        if tail.startswith("hang"):
            await release.wait()
        if tail.startswith("status/"):
            return web.Response(status=int(tail.split("/")[1]), text="receiver says no")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/"))
    release.set()
    await server.close()


class _Refusing:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802 (aiosmtpd)
                          rcpt_options: list[str]) -> str:
        return "550 no such user"


@pytest.fixture
def refusing_smtp() -> Iterator[int]:
    """A real SMTP server on loopback that refuses every recipient for good."""
    port = free_port()
    controller = Controller(_Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


class Stages:
    """The stages wired as the worker wires them, on a fake clock, with real metrics on their own registry."""

    def __init__(self, store: SqliteStore, clock: FakeClock, notifiers: dict[str, Notifier], **kw: Any) -> None:
        self.store = store
        self.clock = clock
        self.metrics = Metrics(CollectorRegistry(auto_describe=True))
        self.metrics.notifiers_configured(list(notifiers))
        self.settlement = Settlement(store, clock, RETRY, random.Random(1), self.metrics)
        self.delivery = Delivery(notifiers, Templates(), self.settlement, **kw)

    async def deliver(self, notifier: str, recipient: str, template: str = "alert") -> OutboxMessage:
        """Enqueue one message, claim it and run it through the stages; returns its row afterwards."""
        async with self.store.transaction() as tx:
            await tx.outbox.enqueue([OutboxMessage(key=f"k:{notifier}:{recipient}", notifier=notifier,
                                                   recipient=recipient, template=template, context=CONTEXT,
                                                   created_at=self.clock.now())])
            [claimed] = await tx.outbox.claim(self.clock.now(), 10, 60)
        await self.delivery(claimed)
        async with self.store.read() as r:
            [row] = [m for m in await r.outbox.list() if m.id == claimed.id]
        return row

    def failures(self, notifier: str, reason: str) -> float | None:
        return self.metrics.registry.get_sample_value("statusd_notification_failures_total",
                                                      {"notifier": notifier, "reason": reason})

    def deliveries(self, notifier: str, outcome: str) -> float | None:
        return self.metrics.registry.get_sample_value("statusd_notification_deliveries_total",
                                                      {"notifier": notifier, "outcome": outcome})


def webhook(http: aiohttp.ClientSession, clock: FakeClock, **kw: Any) -> WebhookNotifier:
    return WebhookNotifier(WebhookConfig(name="hooks", type="webhook", secret=Secret(SECRET), **kw), http, clock=clock)


CASES = [  # path on the peer, reason, outcome
    pytest.param("status/503", "http_5xx", "retry", id="503-retried"),
    pytest.param("status/429", "rate_limited", "retry", id="429-retried"),
    pytest.param("status/408", "timeout", "retry", id="408-retried"),
    pytest.param("status/410", "http_4xx", "dead", id="410-dead"),
    pytest.param("status/302", "http_3xx", "dead", id="302-dead"),
    pytest.param("hang", "timeout", "retry", id="no-answer-retried"),
]


async def check_reason_reaches_row_and_metric(stages: Stages, peer: str, path: str, reason: str, outcome: str) -> None:
    url = f"{peer}{path}/{TOKEN}"
    row = await stages.deliver("hooks", url)
    assert row.last_error.startswith(f"{reason}: webhook http://127.0.0.1:")
    assert TOKEN not in row.last_error and SECRET not in row.last_error
    assert stages.failures("hooks", reason) == 1
    assert sum(stages.failures("hooks", r.value) or 0 for r in Reason) == 1
    assert stages.deliveries("hooks", outcome) == 1
    if outcome == "retry":  # due again after the first backoff on the fake clock, not before
        assert (row.status, row.next_attempt_at) == (OutboxStatus.PENDING, stages.clock.now() + timedelta(seconds=10))
    else:
        assert row.status is OutboxStatus.DEAD
    exposition = stages.metrics.exposition().decode()
    assert TOKEN not in exposition and "127.0.0.1" not in exposition  # label values never an address


@pytest.mark.parametrize(("path", "reason", "outcome"), CASES)
async def test_a_webhook_failure_is_recorded_and_counted_by_its_reason(sqlite_store, http, clock, peer, path, reason,
                                                                       outcome) -> None:
    stages = Stages(sqlite_store, clock, {"hooks": webhook(http, clock, timeout_s=0.2)})
    await check_reason_reaches_row_and_metric(stages, peer, path, reason, outcome)


async def test_the_reason_check_fails_when_classify_forgets_the_reason(sqlite_store, http, clock, peer) -> None:
    """The check above can fail: with a classify stage that drops the reason, it does."""
    def careless(exc: Exception) -> Failure:
        return Failure(Reason.UNKNOWN, classify(exc).retryable, str(exc))

    stages = Stages(sqlite_store, clock, {"hooks": webhook(http, clock)}, classify=careless)
    with pytest.raises(AssertionError):
        await check_reason_reaches_row_and_metric(stages, peer, "status/503", "http_5xx", "retry")


async def test_a_closed_port_is_a_connect_failure(sqlite_store, http, clock) -> None:
    stages = Stages(sqlite_store, clock, {"hooks": webhook(http, clock)})
    row = await stages.deliver("hooks", f"http://127.0.0.1:{free_port()}/{TOKEN}")
    assert row.status is OutboxStatus.PENDING and row.last_error.startswith("connect: ")
    assert stages.failures("hooks", "connect") == 1 and stages.deliveries("hooks", "retry") == 1


async def test_an_smtp_refusal_is_rejected_and_dead(sqlite_store, http, clock, refusing_smtp) -> None:
    mail = EmailNotifier(EmailConfig(name="mail", type="email", port=refusing_smtp, timeout_s=5), http, clock=clock)
    stages = Stages(sqlite_store, clock, {"mail": mail})
    row = await stages.deliver("mail", "ops@example.com")
    assert row.status is OutboxStatus.DEAD and row.last_error.startswith("rejected: smtp 127.0.0.1:")
    assert "550" in row.last_error
    assert stages.failures("mail", "rejected") == 1 and stages.deliveries("mail", "dead") == 1


async def test_render_and_unconfigured_fail_before_anything_is_sent(sqlite_store, http, clock, peer) -> None:
    stages = Stages(sqlite_store, clock, {"hooks": webhook(http, clock)})
    broken = await stages.deliver("hooks", f"{peer}status/204", template="no-such-template")
    gone = await stages.deliver("removed", f"{peer}x")
    assert broken.status is OutboxStatus.DEAD and broken.last_error.startswith("render: template 'no-such-template'")
    assert gone.status is OutboxStatus.DEAD
    assert gone.last_error == "unconfigured: no notifier named 'removed' is configured"
    assert stages.failures("hooks", "render") == 1 and stages.failures("removed", "unconfigured") == 1


class Crashing:
    """A notifier with a bug (no real peer can stand in for that)."""

    name = "buggy"

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        raise KeyError(SECRET)


async def test_a_notifier_crash_is_internal_and_dead_after_the_last_attempt(sqlite_store, clock) -> None:
    stages = Stages(sqlite_store, clock, {"buggy": Crashing()})
    assert (await stages.deliver("buggy", "anyone")).status is OutboxStatus.PENDING
    outcomes = []
    for _ in range(RETRY.max_attempts - 1):
        await clock.advance(3600)
        async with sqlite_store.transaction() as tx:
            [claimed] = await tx.outbox.claim(clock.now(), 10, 60)
        outcomes.append(await stages.delivery(claimed))
    assert outcomes == ["retry"] * (RETRY.max_attempts - 2) + ["dead"]
    async with sqlite_store.read() as r:
        [row] = await r.outbox.list()
    assert row.status is OutboxStatus.DEAD and row.attempts == RETRY.max_attempts
    assert row.last_error == "internal: internal error: KeyError"  # the exception's text may hold anything
    assert stages.failures("buggy", "internal") == RETRY.max_attempts


async def test_a_page_that_ends_undelivered_carries_the_reason_in_its_timeline_note(sqlite_store, http, clock,
                                                                                    peer) -> None:
    async with sqlite_store.transaction() as tx:
        incident = await tx.incidents.create(NewIncident(title="API down", status=IncidentStatus.INVESTIGATING,
                                                         impact=Impact.CRITICAL, components=(), opened_at=clock.now()))
    stages = Stages(sqlite_store, clock, {"hooks": webhook(http, clock)})
    await stages.deliver("hooks", f"{peer}status/404", template="alert")
    async with sqlite_store.read() as r:
        [note] = [e for e in (await r.incidents.entries([incident.id]))[incident.id] if e.kind is EntryKind.NOTE]
    assert note.data["reason"] == "http_4xx" and note.data["notifier"] == "hooks"
    assert "HTTP 404" in note.body and not note.body.startswith("http_4xx")


async def test_a_shutdown_mid_send_is_no_failure(sqlite_store, http, clock, peer) -> None:
    stages = Stages(sqlite_store, clock, {"hooks": webhook(http, clock, timeout_s=30)})
    sending = asyncio.create_task(stages.deliver("hooks", f"{peer}hang"))

    async def claimed() -> bool:
        async with sqlite_store.read() as r:
            return [m.status for m in await r.outbox.list()] == [OutboxStatus.SENDING]

    for _ in range(250):
        if await claimed():
            break
        await asyncio.sleep(0.02)
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    async with sqlite_store.read() as r:
        [row] = await r.outbox.list()
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
    assert sum(stages.failures("hooks", r.value) or 0 for r in Reason) == 0
    assert all(stages.deliveries("hooks", o) == 0 for o in ("sent", "retry", "dead"))


def test_every_configured_notifiers_series_start_at_zero(sqlite_store, clock) -> None:
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    OutboxWorker(sqlite_store, {"buggy": Crashing()}, Templates(), clock, observer=metrics)
    text = metrics.exposition().decode()
    for outcome in ("sent", "retry", "dead"):
        assert f'statusd_notification_deliveries_total{{notifier="buggy",outcome="{outcome}"}} 0.0' in text
    for reason in Reason:
        assert f'statusd_notification_failures_total{{notifier="buggy",reason="{reason.value}"}} 0.0' in text
