"""The TCP probe against real asyncio peers on loopback: banners, echoes, silence and closed ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from probes.tcp import TcpConfig, TcpProbe
from statusd.core.schema import load_section
from tests.conftest import free_port

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep the connection open until the client leaves."""
    try:
        await reader.read()
    finally:
        writer.close()


async def banner_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    await _hold(reader, writer)


async def smtp_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 mail.example.test ESMTP\r\n")
    await writer.drain()
    await _hold(reader, writer)


async def split_banner_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The expected text arrives in a second packet: the probe must keep reading.
    writer.write(b"220-welcome\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"220 ready\r\n")
    await writer.drain()
    await _hold(reader, writer)


async def greet_and_close_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"-ERR go away\r\n")
    await writer.drain()
    writer.close()


async def echo_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def chatty_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"x" * 10_000)
    await writer.drain()
    await _hold(reader, writer)


PEERS: dict[str, Handler] = {
    "banner": banner_peer, "smtp": smtp_peer, "split": split_banner_peer, "greet-close": greet_and_close_peer,
    "echo": echo_peer, "silent": _hold, "chatty": chatty_peer,
}


@pytest.fixture
async def peers() -> AsyncIterator[dict[str, int]]:
    """Every peer listening on its own loopback port, by name."""
    servers = {name: await asyncio.start_server(handler, "127.0.0.1", 0) for name, handler in PEERS.items()}
    yield {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    for s in servers.values():
        s.close()
        await s.wait_closed()


def probe(port: int, **kw) -> TcpProbe:
    kw.setdefault("timeout_s", 2.0)
    return TcpProbe(TcpConfig(name="t", type="tcp", component="api", host="127.0.0.1", port=port, **kw), None)


@pytest.mark.parametrize(("peer", "kw", "ok", "error"), [
    pytest.param("silent", {}, True, "", id="connect-only"),
    pytest.param("banner", {"expect": "SSH-"}, True, "", id="ssh-banner"),
    pytest.param("smtp", {"expect": "220 "}, True, "", id="smtp-banner"),
    pytest.param("split", {"expect": "220 ready"}, True, "", id="banner-in-second-packet"),
    pytest.param("echo", {"send": "PING\r\n", "expect": "PING"}, True, "", id="echo"),
    pytest.param("echo", {"send": "PING\r\n"}, True, "", id="send-without-expect"),
    pytest.param("greet-close", {"expect": "+OK"}, False,
                 "expected '+OK' before the peer closed the connection, got '-ERR go away\\r\\n'", id="closed-mismatch"),
    pytest.param("chatty", {"expect": "SSH-", "read_limit_bytes": 64}, False,
                 f"expected 'SSH-' in the first 64 bytes, got {'x' * 64!r}", id="read-limit"),
])
async def test_outcomes(peers, peer, kw, ok, error) -> None:
    result = await probe(peers[peer], **kw).check(NOW)
    assert (result.ok, result.error) == (ok, error)
    assert result.probe == "t" and result.component == "api" and result.at == NOW
    assert result.latency_s < 2


async def test_banner_mismatch_on_an_open_connection_shows_what_came(peers) -> None:
    result = await probe(peers["smtp"], expect="SSH-", timeout_s=0.3).check(NOW)
    assert not result.ok
    assert result.error == "timed out after 0.3s waiting for 'SSH-', got '220 mail.example.test ESMTP\\r\\n'"
    assert result.detail == {"received": "220 mail.example.test ESMTP\r\n"}


async def test_silent_peer_times_out_reading(peers) -> None:
    result = await probe(peers["silent"], expect="SSH-", timeout_s=0.2).check(NOW)
    assert not result.ok and result.error == "timed out after 0.2s waiting for 'SSH-', got nothing"
    assert 0.15 < result.latency_s < 2


async def test_closed_port_is_refused() -> None:
    port = free_port()
    result = await probe(port).check(NOW)
    assert not result.ok and result.error == f"cannot connect to 127.0.0.1:{port}: connection refused"


async def test_unresolvable_host_is_a_failed_result() -> None:
    cfg = TcpConfig(name="t", type="tcp", host="no-such-host.invalid", port=22, timeout_s=5)
    result = await TcpProbe(cfg, None).check(NOW)
    assert not result.ok and result.error.startswith("cannot resolve no-such-host.invalid")


async def test_cancellation_propagates(peers) -> None:
    task = asyncio.create_task(probe(peers["silent"], expect="SSH-", timeout_s=5).check(NOW))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(("table", "path"), [
    pytest.param({"port": 22}, "probes.t.host", id="host-required"),
    pytest.param({"host": "db"}, "probes.t.port", id="port-required"),
    pytest.param({"host": " ", "port": 22}, "probes.t.host", id="blank-host"),
    pytest.param({"host": "db", "port": 70000}, "probes.t.port", id="port-range"),
    pytest.param({"host": "db", "port": "22"}, "probes.t.port", id="port-type"),
    pytest.param({"host": "db", "port": 22, "expect": ""}, "probes.t.expect", id="empty-expect"),
    pytest.param({"host": "db", "port": 22, "send": ""}, "probes.t.send", id="empty-send"),
    pytest.param({"host": "db", "port": 22, "read_limit_bytes": 0}, "probes.t.read_limit_bytes", id="zero-limit"),
    pytest.param({"host": "db", "port": 22, "read_limit_bytes": 2, "expect": "SSH-"}, "probes.t.expect",
                 id="expect-longer-than-limit"),
    pytest.param({"host": "db", "port": 22, "banner": "SSH-"}, "probes.t.banner", id="unknown-key"),
])
def test_config_problems_name_the_key(table, path) -> None:
    problems: list[tuple[str, str]] = []
    load_section(TcpConfig, {"type": "tcp", **table}, "probes.t", problems, extra={"name": "t"})
    assert path in [p for p, _ in problems], problems


def test_valid_config_loads() -> None:
    problems: list[tuple[str, str]] = []
    cfg = load_section(TcpConfig, {"type": "tcp", "host": "db", "port": 5432, "send": "PING\r\n", "expect": "+PONG"},
                       "probes.t", problems, extra={"name": "t"})
    assert problems == [] and cfg.read_limit_bytes == 4096
