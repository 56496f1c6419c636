"""DNS probe: a query whose answer set must exist and contain the expected records."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rdtypes.ANY.CAA
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

from probes.base import ProbeSettings
from statusd.core.model import ProbeResult
from statusd.core.schema import Problems

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR", "CAA"]


@dataclass(frozen=True, kw_only=True)
class DnsConfig(ProbeSettings):
    """A DNS check. An empty `expected` accepts any non-empty answer.

    `expected` values are written as in a zone file, compared without case and trailing
    dots for names: A/AAAA addresses, CNAME/NS/PTR names, MX "10 mail.example.com" or just
    the exchange, SRV "10 5 5060 sip.example.com" or just the target, TXT the text itself
    (case-sensitive, strings joined), SOA/CAA the record's text (CAA also without flags).
    """

    query_name: str
    record_type: RecordType = "A"
    expected: list[str] = field(default_factory=list)
    resolver: str | None = None  # "ip" or "ip:port" ("[v6]:port"); None = the system's resolvers
    protocol: Literal["udp", "tcp"] = "udp"

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = super().check()
        try:
            _to_qname(self.query_name, self.record_type)
        except ValueError as exc:
            problems.append(("query_name", str(exc)))
        if self.resolver is not None:
            try:
                _parse_resolver(self.resolver)
            except ValueError as exc:
                problems.append(("resolver", str(exc)))
        for i, value in enumerate(self.expected):
            try:
                _expected_form(self.record_type, value)
            except ValueError as exc:
                problems.append((f"expected[{i}]", str(exc)))
        return problems


def _to_qname(text: str, record_type: str) -> dns.name.Name:
    """The absolute name to ask for; a PTR query may name an IP address instead of its reverse name."""
    if not text.strip():
        raise ValueError("required (a DNS name such as 'example.com')")
    if record_type == "PTR":
        try:
            return dns.reversename.from_address(text)
        except (ValueError, dns.exception.SyntaxError):
            pass  # not an address: a reverse name written out, e.g. 1.2.0.192.in-addr.arpa
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ValueError(f"not a valid DNS name: {exc}") from None


def _parse_resolver(text: str) -> tuple[str, int]:
    """(address, port) from "ip", "ip:port" or "[ipv6]:port"; ValueError says what is wrong."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("expected 'ip', 'ip:port' or '[ipv6]:port'")
        port_text = rest[1:] if rest else "53"
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    else:
        port_text = "53"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"expected an IP address (optionally with :port), got {text!r}") from None
    if not port_text.isdigit() or not 1 <= (port := int(port_text)) <= 65535:
        raise ValueError(f"expected a port 1-65535 after the address, got {port_text!r}")
    return host, port


def _expected_form(record_type: str, value: str) -> str:
    """The comparable form of one `expected` value; ValueError when it cannot be such a record."""
    if not value.strip():
        raise ValueError("must not be empty")
    if record_type == "A":
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise ValueError(f"expected an IPv4 address, got {value!r}") from None
    if record_type == "AAAA":
        try:
            return str(ipaddress.IPv6Address(value.strip()))
        except ValueError:
            raise ValueError(f"expected an IPv6 address, got {value!r}") from None
    if record_type == "TXT":
        return value
    return _tokens(value)


def _answer_forms(rdata: dns.rdata.Rdata) -> set[str]:
    """Every form of one answer record that an `expected` value may take."""
    if isinstance(rdata, (dns.rdtypes.IN.A.A, dns.rdtypes.IN.AAAA.AAAA)):
        return {str(ipaddress.ip_address(rdata.address))}
    if rdata.rdtype == dns.rdatatype.TXT:
        return {_txt(rdata)}
    forms = {_tokens(rdata.to_text())}
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        forms.add(_tokens(rdata.exchange.to_text()))
    elif isinstance(rdata, dns.rdtypes.IN.SRV.SRV):
        forms.add(_tokens(rdata.target.to_text()))
    elif isinstance(rdata, dns.rdtypes.ANY.CAA.CAA):
        forms.add(_tokens(f"{rdata.tag.decode()} {rdata.value.decode()}"))
    return forms


def _tokens(text: str) -> str:
    return " ".join(t.strip('"').rstrip(".").lower() for t in text.split())


def _txt(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", "replace")


def _display(rdata: dns.rdata.Rdata) -> str:
    return _txt(rdata) if rdata.rdtype == dns.rdatatype.TXT else rdata.to_text()


class DnsProbe:
    """Resolves one name; NXDOMAIN, empty answers, timeouts and mismatches are failed results."""

    def __init__(self, config: DnsConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.component = config.component
        self._qname = _to_qname(config.query_name, config.record_type)
        self._expected = {_expected_form(config.record_type, v): v for v in config.expected}
        self._server = _parse_resolver(config.resolver) if config.resolver is not None else None
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _make_resolver(self) -> dns.asyncresolver.Resolver:
        # Built on first use, not in __init__: reading the system configuration may fail, and
        # that must be a failed result, not a crash at start-up.
        resolver = dns.asyncresolver.Resolver(configure=self._server is None)
        if self._server is not None:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(*self._server)]
        resolver.cache = None  # a probe must see what the servers say now
        resolver.lifetime = self.config.timeout_s
        return resolver

    @property
    def _resolver_label(self) -> str:
        if self._server is None:
            return "the system resolver"
        host, port = self._server
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def check(self, now: datetime) -> ProbeResult:
        """Ask once; every outcome is a ProbeResult whose detail lists the answers found."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        what = f"{cfg.record_type} {self._qname.to_text(omit_final_dot=True)}"
        try:
            if self._resolver is None:
                self._resolver = self._make_resolver()
            async with asyncio.timeout(cfg.timeout_s):
                answer = await self._resolver.resolve(self._qname, cfg.record_type, tcp=cfg.protocol == "tcp",
                                                      search=False)
        except (TimeoutError, dns.exception.Timeout):
            error = f"{what}: no answer from {self._resolver_label} within {cfg.timeout_s:g}s"
            return self._result(now, loop.time() - started, ok=False, error=error)
        except dns.resolver.NXDOMAIN:
            error = f"{what}: the name does not exist (NXDOMAIN)"
            return self._result(now, loop.time() - started, ok=False, error=error)
        except dns.resolver.NoAnswer:
            error = f"{what}: the name exists but has no {cfg.record_type} records"
            return self._result(now, loop.time() - started, ok=False, error=error)
        except dns.resolver.NoResolverConfiguration:
            error = "no system resolver is configured (set `resolver` to a server address)"
            return self._result(now, loop.time() - started, ok=False, error=error)
        except (dns.exception.DNSException, OSError) as exc:
            error = f"{what}: {exc}"[:300]
            return self._result(now, loop.time() - started, ok=False, error=error)
        latency = loop.time() - started
        records = list(answer)
        found = sorted(_display(r) for r in records)  # an RRset has no order; keep errors stable
        forms = set().union(*(_answer_forms(r) for r in records))
        missing = [original for form, original in self._expected.items() if form not in forms]
        if missing:
            error = f"{what}: missing {', '.join(missing)}; the answer was {', '.join(found)}"[:300]
            return self._result(now, latency, ok=False, error=error, answers=found)
        return self._result(now, latency, ok=True, answers=found)

    def _result(self, now: datetime, latency: float, *, ok: bool, error: str = "",
                answers: list[str] | None = None) -> ProbeResult:
        detail: dict[str, Any] = {"answers": answers or [], "resolver": self._resolver_label}
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=ok, latency_s=latency,
                           error=error, detail=detail)
