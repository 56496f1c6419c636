"""A template overridden in `notifications.templates_dir` that raises a plain Python error is dead at once, not retried."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from notifiers.webhook import WebhookConfig, WebhookNotifier
from statusd.config import load_config
from statusd.core.clock import FakeClock
from statusd.core.model import OutboxMessage, OutboxStatus
from statusd.core.schema import Secret
from statusd.metrics import Metrics
from statusd.notify.delivery import Delivery
from statusd.notify.retry import RetryPolicy
from statusd.notify.settlement import Settlement
from statusd.notify.templates import Templates
from statusd.store.sqlite import SqliteStore

RETRY = RetryPolicy(max_attempts=3, initial_s=10, max_s=60, jitter=0.0)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A webhook receiver on loopback that records every body it is sent."""
    received: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/hook")), received
    await server.close()


async def test_a_template_raising_a_python_error_is_dead_after_one_attempt(
        tmp_path: Path, sqlite_store: SqliteStore, clock: FakeClock, http: aiohttp.ClientSession,
        receiver: tuple[str, list[bytes]]) -> None:
    url, received = receiver
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "alert.subject.txt").write_text("Down: {{ 1 // 0 }}\n", encoding="utf-8")
    config_file = tmp_path / "statusd.toml"
    config_file.write_text('[notifications]\ntemplates_dir = "templates"\n', encoding="utf-8")
    templates = Templates(load_config(config_file, env={}).notifications.templates_dir)
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    hooks = WebhookNotifier(WebhookConfig(name="hooks", type="webhook", secret=Secret("template-test-secret")),
                            http, clock=clock)
    delivery = Delivery({"hooks": hooks}, templates, Settlement(sqlite_store, clock, RETRY, random.Random(1), metrics))
    async with sqlite_store.transaction() as tx:
        await tx.outbox.enqueue([OutboxMessage(key="k:alert", notifier="hooks", recipient=url, template="alert",
                                               context={}, created_at=clock.now())])

    outcomes = []
    for _ in range(RETRY.max_attempts + 2):  # every attempt the outbox would make, and more
        async with sqlite_store.transaction() as tx:
            claimed = await tx.outbox.claim(clock.now(), 10, 60)
        for message in claimed:
            outcomes.append(await delivery(message))
        await clock.advance(3600)

    assert outcomes == ["dead"]
    async with sqlite_store.read() as r:
        [row] = await r.outbox.list()
    assert row.status is OutboxStatus.DEAD and row.attempts == 1
    assert row.last_error == "render: template alert.subject.txt line 1 failed: ZeroDivisionError"
    assert metrics.registry.get_sample_value("statusd_notification_failures_total",
                                             {"notifier": "hooks", "reason": "render"}) == 1
    assert received == []
