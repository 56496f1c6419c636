"""The DNS probe against a tiny real DNS server on loopback (UDP and TCP) built with dnspython."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from probes.dns import DnsConfig, DnsProbe
from statusd.core.schema import load_section

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ZONE: dict[tuple[str, str], list[str]] = {
    ("example.test.", "A"): ["192.0.2.1", "192.0.2.2"],
    ("example.test.", "TXT"): ['"v=spf1 -all"', '"hello" " world"'],
    ("example.test.", "MX"): ["10 mail.example.test.", "20 backup.example.test."],
    ("v6.example.test.", "AAAA"): ["2001:db8::1"],
    ("1.2.0.192.in-addr.arpa.", "PTR"): ["host.example.test."],
}
SERVFAIL = {"broken.example.test."}


@dataclass
class DnsServer:
    """A loopback DNS server answering from ZONE over UDP and TCP on one port; `seen` logs queries."""

    port: int = 0
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def answer(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.seen.append((transport, name, rdtype))
        if name in SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in ZONE:
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", rdtype, *ZONE[name, rdtype]))
        elif name not in {n for n, _ in ZONE}:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()  # a known name without that type: NOERROR with no answer


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer | None) -> None:
        self.server = server  # None: a silent server that never answers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.server is not None:
            self.transport.sendto(self.server.answer(data, "udp"), addr)  # type: ignore[attr-defined]


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = DnsServer()
    loop = asyncio.get_running_loop()

    async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                reply = server.answer(await reader.readexactly(size), "tcp")
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    # UDP and TCP share one port number, as a real server's do; a port free for TCP may be
    # taken for UDP, so try a few.
    for _ in range(20):
        tcp = await asyncio.start_server(tcp_client, "127.0.0.1", 0)
        server.port = tcp.sockets[0].getsockname()[1]
        try:
            udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(server), local_addr=("127.0.0.1", server.port))
            break
        except OSError:
            tcp.close()
            await tcp.wait_closed()
    else:
        pytest.fail("no port free for both UDP and TCP")
    yield server
    tcp.close()
    await tcp.wait_closed()
    udp.close()


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Udp(None), local_addr=("127.0.0.1", 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()


def probe(port: int, query_name: str, record_type: str = "A", **kw) -> DnsProbe:
    kw.setdefault("timeout_s", 2.0)
    cfg = DnsConfig(name="d", type="dns", component="api", query_name=query_name, record_type=record_type,
                    resolver=f"127.0.0.1:{port}", **kw)
    return DnsProbe(cfg, None)


@pytest.mark.parametrize(("name", "rdtype", "expected", "error"), [
    pytest.param("example.test", "A", [], "", id="any-answer"),
    pytest.param("example.test", "A", ["192.0.2.2"], "", id="a-subset"),
    pytest.param("EXAMPLE.test.", "A", ["192.0.2.1", "192.0.2.2"], "", id="a-all-case-and-dot"),
    pytest.param("example.test", "A", ["192.0.2.1", "192.0.2.9"],
                 "A example.test: missing 192.0.2.9; the answer was 192.0.2.1, 192.0.2.2", id="a-mismatch"),
    pytest.param("v6.example.test", "AAAA", ["2001:DB8:0::1"], "", id="aaaa-normalised"),
    pytest.param("example.test", "TXT", ["v=spf1 -all", "hello world"], "", id="txt-joined-strings"),
    pytest.param("example.test", "TXT", ["V=SPF1 -ALL"],
                 "TXT example.test: missing V=SPF1 -ALL; the answer was hello world, v=spf1 -all", id="txt-case-matters"),
    pytest.param("example.test", "MX", ["10 mail.example.test", "backup.example.test."], "", id="mx-full-or-exchange"),
    pytest.param("example.test", "MX", ["30 mail.example.test"],
                 "MX example.test: missing 30 mail.example.test; the answer was 10 mail.example.test., "
                 "20 backup.example.test.", id="mx-preference-mismatch"),
    pytest.param("192.0.2.1", "PTR", ["host.example.test"], "", id="ptr-by-address"),
    pytest.param("gone.example.test", "A", [], "A gone.example.test: the name does not exist (NXDOMAIN)",
                 id="nxdomain"),
    pytest.param("example.test", "AAAA", [], "AAAA example.test: the name exists but has no AAAA records",
                 id="no-answer"),
])
async def test_answers(dns_server, name, rdtype, expected, error) -> None:
    result = await probe(dns_server.port, name, rdtype, expected=expected).check(NOW)
    assert (result.ok, result.error) == (error == "", error)
    assert result.probe == "d" and result.component == "api" and result.at == NOW
    assert result.detail["resolver"] == f"127.0.0.1:{dns_server.port}"
    assert [t for t, _, _ in dns_server.seen] == ["udp"]


async def test_answers_are_in_the_detail(dns_server) -> None:
    result = await probe(dns_server.port, "example.test", "TXT").check(NOW)
    assert result.ok and result.detail["answers"] == ["hello world", "v=spf1 -all"]


async def test_servfail_is_a_failed_result(dns_server) -> None:
    result = await probe(dns_server.port, "broken.example.test").check(NOW)
    assert not result.ok and "SERVFAIL" in result.error and result.error.startswith("A broken.example.test: ")


async def test_tcp_protocol_asks_over_tcp(dns_server) -> None:
    result = await probe(dns_server.port, "example.test", "MX", protocol="tcp",
                         expected=["mail.example.test"]).check(NOW)
    assert result.ok, result.error
    assert dns_server.seen == [("tcp", "example.test.", "MX")]


async def test_silent_server_times_out(silent_port) -> None:
    result = await probe(silent_port, "example.test", timeout_s=0.3).check(NOW)
    assert not result.ok
    assert result.error == f"A example.test: no answer from 127.0.0.1:{silent_port} within 0.3s"
    assert 0.2 < result.latency_s < 2


async def test_cancellation_propagates(silent_port) -> None:
    task = asyncio.create_task(probe(silent_port, "example.test", timeout_s=5).check(NOW))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("resolver", ["127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353", "[2001:db8::53]"])
def test_resolver_forms(resolver) -> None:
    problems: list[tuple[str, str]] = []
    load_section(DnsConfig, {"type": "dns", "query_name": "example.com", "resolver": resolver}, "probes.d",
                 problems, extra={"name": "d"})
    assert problems == []


@pytest.mark.parametrize(("table", "path"), [
    pytest.param({}, "probes.d.query_name", id="name-required"),
    pytest.param({"query_name": " "}, "probes.d.query_name", id="blank-name"),
    pytest.param({"query_name": "a..example.com"}, "probes.d.query_name", id="empty-label"),
    pytest.param({"query_name": "x" * 64 + ".com"}, "probes.d.query_name", id="label-too-long"),
    pytest.param({"query_name": "example.com", "record_type": "ANY"}, "probes.d.record_type", id="record-type"),
    pytest.param({"query_name": "example.com", "resolver": "dns.google"}, "probes.d.resolver", id="resolver-name"),
    pytest.param({"query_name": "example.com", "resolver": "1.1.1.1:99999"}, "probes.d.resolver", id="resolver-port"),
    pytest.param({"query_name": "example.com", "resolver": "[::1"}, "probes.d.resolver", id="resolver-bracket"),
    pytest.param({"query_name": "example.com", "expected": ["mail"]}, "probes.d.expected[0]", id="a-not-an-ip"),
    pytest.param({"query_name": "example.com", "record_type": "AAAA", "expected": ["::1", "192.0.2.1"]},
                 "probes.d.expected[1]", id="aaaa-given-v4"),
    pytest.param({"query_name": "example.com", "record_type": "TXT", "expected": [""]}, "probes.d.expected[0]",
                 id="empty-expected"),
    pytest.param({"query_name": "example.com", "protocol": "quic"}, "probes.d.protocol", id="protocol"),
    pytest.param({"query_name": "example.com", "server": "1.1.1.1"}, "probes.d.server", id="unknown-key"),
])
def test_config_problems_name_the_key(table, path) -> None:
    problems: list[tuple[str, str]] = []
    load_section(DnsConfig, {"type": "dns", **table}, "probes.d", problems, extra={"name": "d"})
    assert path in [p for p, _ in problems], problems
