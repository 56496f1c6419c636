"""The TLS probe against real asyncio TLS servers on loopback, with certificates made in the test.

OpenSSL checks validity against the real clock, so certificates are dated relative to the
real time and the probe is given that same time as `now`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from probes.tls import TlsConfig, TlsProbe
from statusd.core.schema import load_section
from tests.conftest import free_port

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Issuer:
    """A CA (or, for self-signed certificates, nobody: key and name of the leaf itself)."""

    key: ec.EllipticCurvePrivateKey
    name: x509.Name


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca() -> tuple[Issuer, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("statusd test CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - 365 * DAY).not_valid_after(NOW + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return Issuer(key, name), cert.public_bytes(serialization.Encoding.PEM)


def make_leaf(issuer: Issuer | None, *, not_before: datetime = NOW - 30 * DAY,
              not_after: datetime = NOW + 90 * DAY + HOUR,
              names: tuple[str, ...] = ("localhost",)) -> tuple[bytes, bytes]:
    """A server certificate (PEM) and its key (PEM); self-signed when `issuer` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(names[0])
    signer = issuer or Issuer(key, subject)
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()), critical=False)
            .sign(signer.key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> tuple[Issuer, Path]:
    issuer, pem = make_ca()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(pem)
    return issuer, path


Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve(tmp_path) -> AsyncIterator[Serve]:
    """Start a loopback server; with a certificate it speaks TLS, with `reply` it answers in plain text."""
    servers: list[asyncio.Server] = []

    async def start(leaf: tuple[bytes, bytes] | None = None, *, reply: bytes | None = None) -> int:
        context = None
        if leaf is not None:
            cert_file, key_file = tmp_path / f"leaf{len(servers)}.pem", tmp_path / f"leaf{len(servers)}.key"
            cert_file.write_bytes(leaf[0])
            key_file.write_bytes(leaf[1])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
                await reader.read()
            except (OSError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def probe(port: int, **kw) -> TlsProbe:
    kw.setdefault("timeout_s", 2.0)
    return TlsProbe(TlsConfig(name="c", type="tls", component="api", host="127.0.0.1", port=port, **kw), None)


@pytest.mark.parametrize(("leaf_kw", "probe_kw", "ok", "degraded", "days_left", "error"), [
    pytest.param({}, {}, True, False, 90, "", id="valid"),
    pytest.param({"not_after": NOW + 3 * DAY + HOUR}, {}, True, True, 3, "", id="expires-in-3-days-degraded"),
    pytest.param({"not_after": NOW + 3 * DAY + HOUR}, {"warn_days": 2}, True, False, 3, "", id="outside-warn-days"),
    pytest.param({"not_after": NOW - 2 * DAY + HOUR}, {}, False, False, -2,
                 "certificate rejected: certificate has expired", id="expired"),
    pytest.param({}, {"server_name": "wrong.example.test"}, False, False, 90,
                 "certificate rejected: Hostname mismatch, certificate is not valid for 'wrong.example.test'.",
                 id="hostname-mismatch"),
    pytest.param({"names": ("status.example.test",)}, {"server_name": "status.example.test"}, True, False, 90, "",
                 id="sni-server-name"),
])
async def test_ca_signed_certificates(ca, serve, leaf_kw, probe_kw, ok, degraded, days_left, error) -> None:
    issuer, ca_file = ca
    port = await serve(make_leaf(issuer, **leaf_kw))
    result = await probe(port, ca_file=str(ca_file), **probe_kw).check(NOW)
    assert (result.ok, result.degraded, result.error) == (ok, degraded, error)
    assert result.detail["days_left"] == days_left
    expected_end = NOW + days_left * DAY + HOUR
    assert datetime.fromisoformat(result.detail["not_after"]) == expected_end
    assert result.detail["issuer"] == "statusd test CA"
    assert result.probe == "c" and result.component == "api" and result.at == NOW


@pytest.mark.parametrize(("leaf_kw", "ok", "days_left", "error"), [
    pytest.param({"not_after": NOW + 30 * DAY + HOUR}, True, 30, "", id="self-signed-accepted"),
    pytest.param({"not_after": NOW - 2 * DAY + HOUR}, False, -2,
                 f"certificate expired on {(NOW - 2 * DAY + HOUR).isoformat()}", id="expired-still-caught"),
    pytest.param({"not_before": NOW + DAY, "not_after": NOW + 30 * DAY + HOUR}, False, 30,
                 f"certificate is not valid before {(NOW + DAY).isoformat()}", id="not-yet-valid"),
    pytest.param({"not_after": NOW + DAY + HOUR}, True, 1, "", id="self-signed-expiring-degraded"),
])
async def test_without_verification_dates_still_count(serve, leaf_kw, ok, days_left, error) -> None:
    port = await serve(make_leaf(None, **leaf_kw))
    result = await probe(port, verify=False).check(NOW)
    assert (result.ok, result.error) == (ok, error)
    assert result.detail["days_left"] == days_left
    assert result.degraded is (ok and days_left <= 14)


@pytest.mark.parametrize(("signed_by_ca", "error"), [
    pytest.param(False, "certificate rejected: self-signed certificate", id="self-signed"),
    pytest.param(True, "certificate rejected: unable to get local issuer certificate", id="unknown-ca"),
])
async def test_untrusted_certificates_fail_but_report_their_dates(ca, serve, tmp_path, signed_by_ca, error) -> None:
    issuer, _ = ca
    port = await serve(make_leaf(issuer if signed_by_ca else None))
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(make_ca()[1])
    result = await probe(port, ca_file=str(other_ca)).check(NOW)
    assert (result.ok, result.error) == (False, error)
    assert result.detail["days_left"] == 90


async def test_silent_server_times_out(serve) -> None:
    port = await serve()
    result = await probe(port, timeout_s=0.3).check(NOW)
    assert (result.ok, result.error) == (False, f"timed out after 0.3s connecting to 127.0.0.1:{port}")
    assert 0.2 < result.latency_s < 2 and "days_left" not in result.detail


async def test_plain_text_server_fails_the_handshake(serve) -> None:
    port = await serve(reply=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    result = await probe(port).check(NOW)
    assert not result.ok and result.error.startswith("TLS handshake failed: "), result.error


async def test_closed_port_is_refused() -> None:
    port = free_port()
    result = await probe(port).check(NOW)
    assert (result.ok, result.error) == (False, f"cannot connect to 127.0.0.1:{port}: connection refused")


async def test_cancellation_propagates(serve) -> None:
    port = await serve()
    task = asyncio.create_task(probe(port, timeout_s=5).check(NOW))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(("table", "path"), [
    pytest.param({}, "probes.c.host", id="host-required"),
    pytest.param({"host": ""}, "probes.c.host", id="blank-host"),
    pytest.param({"host": "x", "port": 0}, "probes.c.port", id="port-range"),
    pytest.param({"host": "x", "warn_days": -1}, "probes.c.warn_days", id="negative-warn-days"),
    pytest.param({"host": "x", "server_name": ""}, "probes.c.server_name", id="empty-server-name"),
    pytest.param({"host": "x", "ca_file": "/nonexistent/ca.pem"}, "probes.c.ca_file", id="ca-file-missing"),
    pytest.param({"host": "x", "ca_file": "GARBAGE"}, "probes.c.ca_file", id="ca-file-not-pem"),
    pytest.param({"host": "x", "ca_file": "CA", "verify": False}, "probes.c.ca_file", id="ca-file-without-verify"),
    pytest.param({"host": "x", "verify": "no"}, "probes.c.verify", id="verify-type"),
    pytest.param({"host": "x", "sni": "y"}, "probes.c.sni", id="unknown-key"),
])
def test_config_problems_name_the_key(ca, tmp_path, table, path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    files = {"GARBAGE": str(garbage), "CA": str(ca[1])}
    table = {k: files.get(v, v) if isinstance(v, str) else v for k, v in table.items()}
    problems: list[tuple[str, str]] = []
    load_section(TlsConfig, {"type": "tls", **table}, "probes.c", problems, extra={"name": "c"})
    assert path in [p for p, _ in problems], problems


def test_valid_config_loads(ca) -> None:
    problems: list[tuple[str, str]] = []
    cfg = load_section(TlsConfig, {"type": "tls", "host": "status.example.com", "ca_file": str(ca[1])}, "probes.c",
                       problems, extra={"name": "c"})
    assert problems == [] and (cfg.port, cfg.warn_days, cfg.verify) == (443, 14, True)
