"""No customer's e-mail address in the delivery log lines (issue 18, Security 9), against SQLite in tmp_path."""

from __future__ import annotations

import logging
import random

import pytest

from statusd.core.clock import FakeClock
from statusd.core.model import OutboxMessage
from statusd.incidents.routing import client_key
from statusd.notify.failure import Failure, Reason
from statusd.notify.retry import RetryPolicy
from statusd.notify.settlement import Settlement
from statusd.store.sqlite import SqliteStore

ADDRESS = "ann.customer@example.org"


async def _claimed(store: SqliteStore, clock: FakeClock, n: int) -> list[OutboxMessage]:
    async with store.transaction() as tx:
        await tx.outbox.enqueue([OutboxMessage(key=client_key(i, "mail", ADDRESS), notifier="mail", recipient=ADDRESS,
                                               template="client_ack", context={}, created_at=clock.now())
                                 for i in range(1, n + 1)])
    async with store.transaction() as tx:
        return await tx.outbox.claim(clock.now(), n, 60)


async def test_sent_retried_and_dead_deliveries_are_logged_without_the_recipients_address(
        sqlite_store: SqliteStore, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="statusd")
    settlement = Settlement(sqlite_store, clock, RetryPolicy(max_attempts=3), random.Random(1))
    sent, retried, dead = await _claimed(sqlite_store, clock, 3)
    assert await settlement.sent(sent) == "sent"
    assert await settlement.failed(retried, Failure(Reason.INTERNAL, True, "a notifier bug")) == "retry"
    assert await settlement.failed(dead, Failure(Reason.HTTP_4XX, False, "400 Bad Request")) == "dead"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("statusd")]
    assert len(lines) == 3, lines
    for line in lines:
        assert "@" not in line and "example.org" not in line, line
    assert any(f"#{sent.id}" in line for line in lines)  # the outbox row, where the console shows the recipient
