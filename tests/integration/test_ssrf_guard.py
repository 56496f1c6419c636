"""The guarded session against a real receiver on loopback: refused unless allowed, DNS rebinding included."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from notifiers.base import DeliveryError
from notifiers.guard import GuardedResolver, OutsiderTargets, RefusedAddress, guarded_connector
from notifiers.webhook import WebhookConfig, WebhookNotifier
from statusd.core.addresses import AddressPolicy
from statusd.core.clock import FakeClock
from statusd.core.model import Rendered
from tests.support.fakes import WebhookReceiver

MESSAGE = Rendered(subject="s", text="t", payload={"event": "update"})
CONFIG = WebhookConfig(name="hooks", type="webhook", timeout_s=5)
LOOPBACK = AddressPolicy.from_cidrs(["127.0.0.0/8"])


class FixedResolver(AbstractResolver):
    """A DNS server under an attacker's control: every name resolves to the addresses it was given."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for a in self.addresses]

    async def close(self) -> None:
        pass


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    rec = await WebhookReceiver().start()
    try:
        yield rec
    finally:
        await rec.close()


async def send(policy: AddressPolicy, url: str, *, resolver: AbstractResolver | None = None) -> None:
    async with aiohttp.ClientSession(connector=guarded_connector(policy, resolver=resolver)) as http:
        notifier = WebhookNotifier(CONFIG, http, clock=FakeClock(datetime(2026, 1, 5, tzinfo=UTC)))
        await notifier.send(url, MESSAGE, key="k1")


async def test_the_guarded_session_refuses_a_loopback_receiver_for_good(receiver: WebhookReceiver) -> None:
    with pytest.raises(DeliveryError) as caught:
        await send(AddressPolicy(), receiver.url("/hook"))
    assert (caught.value.reason, caught.value.retryable) == ("invalid", False)
    assert "127.0.0.1 is not a public address (loopback)" in str(caught.value)
    # The send raised before any connection was made: nothing can still be on its way to the receiver.
    assert receiver.hooks == []


async def test_the_allow_list_lets_the_same_receiver_through(receiver: WebhookReceiver) -> None:
    await send(LOOPBACK, receiver.url("/hook"))
    assert [h.path for h in receiver.hooks] == ["/hook"]


async def test_a_name_that_rebinds_to_loopback_is_refused_at_connect_time(receiver: WebhookReceiver) -> None:
    assert receiver.server is not None
    url = f"http://hooks.example.com:{receiver.server.port}/hook"
    # It passed the subscribe-time check: a public-looking name...
    assert OutsiderTargets(CONFIG, AddressPolicy()).check_recipient(url) is None
    # ...whose DNS now answers 127.0.0.1.
    with pytest.raises(DeliveryError) as caught:
        await send(AddressPolicy(), url, resolver=FixedResolver("127.0.0.1"))
    assert (caught.value.reason, caught.value.retryable) == ("invalid", False)
    assert "hooks.example.com resolves to no public address" in str(caught.value)
    assert receiver.hooks == []
    # The same answer reaches the receiver when loopback is allowed on purpose.
    await send(LOOPBACK, url, resolver=FixedResolver("127.0.0.1"))
    assert len(receiver.hooks) == 1


async def test_the_resolver_keeps_only_the_public_addresses_of_a_mixed_answer() -> None:
    resolver = GuardedResolver(AddressPolicy(), FixedResolver("10.0.0.7", "93.184.216.34", "::ffff:127.0.0.1"))
    assert [r["host"] for r in await resolver.resolve("mixed.example.com", 443)] == ["93.184.216.34"]
    with pytest.raises(RefusedAddress):
        await GuardedResolver(AddressPolicy(), FixedResolver("169.254.169.254")).resolve("meta.example.com", 80)


@pytest.mark.parametrize("host", [
    pytest.param("[::ffff:127.0.0.1]", id="v4-mapped"),
    pytest.param("[::1]", id="v6-loopback"),
    pytest.param("127.0.0.2", id="another-loopback"),
])
async def test_ip_literals_are_refused_by_the_socket_factory(receiver: WebhookReceiver, host: str) -> None:
    assert receiver.server is not None
    with pytest.raises(DeliveryError) as caught:
        await send(AddressPolicy(), f"http://{host}:{receiver.server.port}/hook")
    assert (caught.value.reason, caught.value.retryable) == ("invalid", False)
    assert receiver.hooks == []


async def test_a_failed_answer_is_recorded_by_its_status_line_never_its_body(receiver: WebhookReceiver) -> None:
    receiver.fail_with = 500  # answers "receiver says no" in the body
    assert receiver.server is not None
    url = f"http://ops:hunter2@127.0.0.1:{receiver.server.port}/hook?token=abc"
    with pytest.raises(DeliveryError) as caught:
        await send(LOOPBACK, url)
    error = str(caught.value)
    assert error == f"webhook http://127.0.0.1:{receiver.server.port} answered HTTP 500: Internal Server Error"
    assert "receiver says no" not in error and "hunter2" not in error and "token" not in error
