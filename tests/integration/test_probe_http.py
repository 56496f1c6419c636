"""The HTTP probe against a real aiohttp target on loopback: every outcome is a result."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probes.http import HttpConfig, HttpProbe, json_equal, parse_json_path
from statusd.core.schema import load_section
from tests.conftest import free_port

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEXT = "All systems operational. version 1.2.3"
DOCUMENT = {
    "status": "ok",
    "checks": {"db": {"ok": True, "latency_ms": 12}},
    "items": [{"state": "up"}, {"state": "down"}],
    "count": 2,
    "ratio": 0.5,
    "version": "2",
    "note": None,
}


@pytest.fixture
async def target() -> AsyncIterator[TestServer]:
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="hello")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "x": request.headers.get("X-Probe"),
                                  "body": await request.text()})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/status/200")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text=TEXT)

    async def document(request: web.Request) -> web.Response:
        return web.json_response(DOCUMENT)

    async def listing(request: web.Request) -> web.Response:
        return web.json_response([{"id": 7}])

    async def padded(request: web.Request) -> web.Response:
        """2000 bytes of padding, then a marker: only a large enough max_body_bytes sees it."""
        if request.query.get("json"):
            return web.json_response({"padding": "." * 2000, "status": "ok"})
        return web.Response(text="start " + "." * 2000 + " marker")

    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/text", text)
    app.router.add_get("/json", document)
    app.router.add_get("/list", listing)
    app.router.add_get("/padded", padded)
    app.router.add_get("/slow", slow)
    app.router.add_post("/echo", echo)
    app.router.add_get("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def probe(http: aiohttp.ClientSession, url: str, **kw) -> HttpProbe:
    return HttpProbe(HttpConfig(name="p", type="http", component="api", url=url, **kw), http)


@pytest.mark.parametrize(("path", "expected", "ok", "error"), [
    pytest.param("/status/200", [], True, "", id="2xx-by-default"),
    pytest.param("/status/204", [], True, "", id="204-is-2xx"),
    pytest.param("/status/503", [], False, "HTTP 503", id="503-fails"),
    pytest.param("/status/404", [404], True, "", id="expected-404"),
    pytest.param("/status/200", [201], False, "HTTP 200", id="unexpected-200"),
])
async def test_status_codes(target, http, path, expected, ok, error) -> None:
    result = await probe(http, str(target.make_url(path)), expected_status=expected).check(NOW)
    assert result.ok is ok and result.error == error
    assert result.probe == "p" and result.component == "api" and result.at == NOW
    assert result.detail["status_code"] == int(path.rsplit("/", 1)[1])


async def test_timeout_is_a_failed_result(target, http) -> None:
    result = await probe(http, str(target.make_url("/slow?s=5")), timeout_s=0.2).check(NOW)
    assert not result.ok and "timed out" in result.error
    assert 0.15 < result.latency_s < 2


async def test_connection_refused_is_a_failed_result(http) -> None:
    result = await probe(http, f"http://127.0.0.1:{free_port()}/", timeout_s=2).check(NOW)
    assert not result.ok and "cannot connect" in result.error


async def test_slow_success_is_degraded(target, http) -> None:
    result = await probe(http, str(target.make_url("/slow?s=0.3")), timeout_s=2,
                         degraded_latency_s=0.1).check(NOW)
    assert result.ok and result.degraded


async def test_method_headers_body_and_redirects(target, http) -> None:
    result = await probe(http, str(target.make_url("/echo")), method="POST", headers={"X-Probe": "1"},
                         body="ping").check(NOW)
    assert result.ok
    not_followed = await probe(http, str(target.make_url("/moved")), follow_redirects=False).check(NOW)
    assert not not_followed.ok and not_followed.error == "HTTP 302"
    followed = await probe(http, str(target.make_url("/moved"))).check(NOW)
    assert followed.ok


LONG = "x" * 150


@pytest.mark.parametrize(("checks", "error"), [
    pytest.param({"body_contains": "operational"}, "", id="contains-present"),
    pytest.param({"body_contains": "degraded"}, "body does not contain 'degraded'", id="contains-missing"),
    pytest.param({"body_absent": "error"}, "", id="absent-absent"),
    pytest.param({"body_absent": "version"}, "body contains 'version'", id="absent-present"),
    pytest.param({"body_regex": r"version \d+\.\d+\.\d+$"}, "", id="regex-matches"),
    pytest.param({"body_regex": r"^version"}, "body does not match '^version'", id="regex-search-not-match"),
    pytest.param({"body_contains": LONG}, f"body does not contain '{'x' * 97}...'", id="long-text-cut-to-100"),
    pytest.param({"body_contains": "All", "body_absent": "All", "body_regex": "nope"},
                 "body contains 'All'; body does not match 'nope'", id="every-failure-reported"),
])
async def test_body_text_checks(target, http, checks, error) -> None:
    result = await probe(http, str(target.make_url("/text")), **checks).check(NOW)
    assert (result.ok, result.error, result.degraded) == (error == "", error, False)
    assert result.detail == {"status_code": 200}


@pytest.mark.parametrize(("path", "json_path", "equals", "error"), [
    pytest.param("/json", "status", "ok", "", id="string"),
    pytest.param("/json", "status", "down", 'JSON path status is "ok", expected "down"', id="string-differs"),
    pytest.param("/json", "checks.db.ok", True, "", id="nested-bool"),
    pytest.param("/json", "checks.db.ok", 1, "JSON path checks.db.ok is true, expected 1", id="true-is-not-1"),
    pytest.param("/json", "count", 2, "", id="int"),
    pytest.param("/json", "count", 2.0, "", id="int-equals-float"),
    pytest.param("/json", "ratio", 0.5, "", id="float"),
    pytest.param("/json", "version", 2, 'JSON path version is "2", expected 2', id="string-is-not-number"),
    pytest.param("/json", "count", "2", 'JSON path count is 2, expected "2"', id="number-is-not-string"),
    pytest.param("/json", "note", "null", 'JSON path note is null, expected "null"', id="null-is-not-string"),
    pytest.param("/json", "items[0].state", "up", "", id="list-index"),
    pytest.param("/json", "items[1].state", "up", 'JSON path items[1].state is "down", expected "up"',
                 id="list-index-differs"),
    pytest.param("/json", "items[2].state", "up", "JSON path items[2].state not found: items has 2 items",
                 id="index-out-of-range"),
    pytest.param("/json", "checks.cache.ok", True, "JSON path checks.cache.ok not found: checks has no key 'cache'",
                 id="missing-key"),
    pytest.param("/json", "status.code", 200, "JSON path status.code not found: status is a string, not an object",
                 id="key-into-string"),
    pytest.param("/json", "checks[0]", 1, "JSON path checks[0] not found: checks is an object, not a list",
                 id="index-into-object"),
    pytest.param("/list", "[0].id", 7, "", id="top-level-list"),
    pytest.param("/list", "id", 7, "JSON path id not found: the document is a list, not an object",
                 id="key-into-top-level-list"),
    pytest.param("/text", "status", "ok", "body is not JSON: Expecting value: line 1 column 1 (char 0)",
                 id="not-json"),
])
async def test_json_path_checks(target, http, path, json_path, equals, error) -> None:
    result = await probe(http, str(target.make_url(path)), json_path=json_path, json_equals=equals).check(NOW)
    assert (result.ok, result.error) == (error == "", error)
    assert result.detail == {"status_code": 200}


@pytest.mark.parametrize(("query", "checks", "limit", "error"), [
    pytest.param("", {"body_contains": "marker"}, 10_000, "", id="marker-within-limit"),
    pytest.param("", {"body_contains": "marker"}, 100,
                 "body does not contain 'marker'; only the first 100 bytes were read (max_body_bytes)",
                 id="marker-beyond-limit"),
    pytest.param("", {"body_contains": "start"}, 100, "", id="prefix-within-limit-passes"),
    pytest.param("", {"body_absent": "marker"}, 100, "", id="absent-only-judges-the-prefix"),
    pytest.param("?json=1", {"json_path": "status", "json_equals": "ok"}, 10_000, "", id="json-within-limit"),
    pytest.param("?json=1", {"json_path": "status", "json_equals": "ok"}, 100,
                 "body is not JSON: Unterminated string starting at: line 1 column 13 (char 12); "
                 "only the first 100 bytes were read (max_body_bytes)", id="json-cut-short"),
])
async def test_max_body_bytes_limits_what_body_checks_see(target, http, query, checks, limit, error) -> None:
    result = await probe(http, str(target.make_url(f"/padded{query}")), max_body_bytes=limit, **checks).check(NOW)
    assert (result.ok, result.error) == (error == "", error)
    assert result.detail.get("body_truncated", False) is (limit < 2000)


async def test_failed_status_is_reported_before_body_checks(target, http) -> None:
    result = await probe(http, str(target.make_url("/status/503")), body_contains="nope",
                         json_path="status", json_equals="ok").check(NOW)
    assert (result.ok, result.error) == (False, "HTTP 503")


@pytest.mark.parametrize(("path", "steps"), [
    pytest.param("status", ("status",), id="key"),
    pytest.param("checks.db.ok", ("checks", "db", "ok"), id="dotted"),
    pytest.param("items[0].state", ("items", 0, "state"), id="index-then-key"),
    pytest.param("[0].id", (0, "id"), id="top-level-index"),
    pytest.param("grid[1][12]", ("grid", 1, 12), id="nested-indexes"),
    pytest.param("x-request_id.$ref", ("x-request_id", "$ref"), id="punctuation-in-keys"),
    pytest.param("a..b", None, id="empty-key"),
    pytest.param(".a", None, id="leading-dot"),
    pytest.param("a.", None, id="trailing-dot"),
    pytest.param("a[x]", None, id="non-numeric-index"),
    pytest.param("a[-1]", None, id="negative-index"),
    pytest.param("a.[0]", None, id="dot-before-index"),
    pytest.param("a b", None, id="space"),
    pytest.param("a[0", None, id="unclosed-bracket"),
])
def test_json_path_syntax(path, steps) -> None:
    assert parse_json_path(path) == steps


@pytest.mark.parametrize(("actual", "expected", "equal"), [
    pytest.param("ok", "ok", True, id="same-string"),
    pytest.param(1, 1.0, True, id="int-float"),
    pytest.param(True, True, True, id="same-bool"),
    pytest.param(True, 1, False, id="true-vs-1"),
    pytest.param(0, False, False, id="0-vs-false"),
    pytest.param("1", 1, False, id="string-vs-number"),
    pytest.param(None, "null", False, id="null-vs-string"),
    pytest.param({"a": 1}, "a", False, id="object-vs-string"),
])
def test_json_equality(actual, expected, equal) -> None:
    assert json_equal(actual, expected) is equal


@pytest.mark.parametrize(("table", "path"), [
    pytest.param({"url": "ftp://x"}, "probes.p.url", id="scheme"),
    pytest.param({"url": "http://x", "expected_status": [700]}, "probes.p.expected_status[0]", id="status-code"),
    pytest.param({"url": "http://x", "timeout_s": 0}, "probes.p.timeout_s", id="zero-timeout"),
    pytest.param({"url": "http://x", "timeout_s": 60, "interval_s": 30}, "probes.p.timeout_s", id="timeout-gt-interval"),
    pytest.param({"url": "http://x", "degraded_latency_s": 20}, "probes.p.degraded_latency_s", id="degraded-gt-timeout"),
    pytest.param({"url": "http://x", "method": "BREW"}, "probes.p.method", id="method"),
    pytest.param({"url": "http://x", "severity": "meh"}, "probes.p.severity", id="severity"),
    pytest.param({}, "probes.p.url", id="url-required"),
    pytest.param({"url": "http://x", "body_contains": ""}, "probes.p.body_contains", id="empty-body-contains"),
    pytest.param({"url": "http://x", "method": "HEAD", "body_absent": "error"}, "probes.p.body_absent",
                 id="head-has-no-body"),
    pytest.param({"url": "http://x", "body_regex": "ok("}, "probes.p.body_regex", id="bad-regex"),
    pytest.param({"url": "http://x", "max_body_bytes": 0}, "probes.p.max_body_bytes", id="zero-max-body-bytes"),
    pytest.param({"url": "http://x", "json_path": "items[x]", "json_equals": 1}, "probes.p.json_path",
                 id="bad-json-path"),
    pytest.param({"url": "http://x", "json_equals": "ok"}, "probes.p.json_path", id="equals-without-path"),
    pytest.param({"url": "http://x", "json_path": "status"}, "probes.p.json_equals", id="path-without-equals"),
    pytest.param({"url": "http://x", "json_path": "status", "json_equals": ["ok"]}, "probes.p.json_equals",
                 id="equals-not-scalar"),
    pytest.param({"url": "http://x", "cert_expiry_warn_days": 14}, "probes.p.cert_expiry_warn_days",
                 id="cert-warn-on-http"),
    pytest.param({"url": "https://x", "cert_expiry_warn_days": 0}, "probes.p.cert_expiry_warn_days",
                 id="cert-warn-zero"),
])
def test_config_problems_name_the_key(table, path) -> None:
    problems: list[tuple[str, str]] = []
    load_section(HttpConfig, {"type": "http", **table}, "probes.p", problems, extra={"name": "p"})
    assert path in [p for p, _ in problems], problems


@pytest.mark.parametrize(("value", "kind"), [
    pytest.param("ok", str, id="string"),
    pytest.param(1, int, id="integer"),
    pytest.param(0.5, float, id="float"),
    pytest.param(True, bool, id="boolean"),
])
def test_every_new_key_loads(value, kind) -> None:
    problems: list[tuple[str, str]] = []
    cfg = load_section(HttpConfig, {
        "type": "http", "url": "https://status.example.test/healthz", "body_contains": "ok", "body_absent": "error",
        "body_regex": r"\bup\b", "max_body_bytes": 4096, "json_path": "checks.db[0].ok", "json_equals": value,
        "cert_expiry_warn_days": 14,
    }, "probes.p", problems, extra={"name": "p"})
    assert problems == []
    assert type(cfg.json_equals) is kind and cfg.json_equals == value


# --- https: the certificate's expiry, read from the connection the response came over -----------------

REAL_NOW = datetime.now(UTC).replace(microsecond=0)  # OpenSSL judges validity by the real clock
DAY = timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificates(tmp_path: Path, *, not_after: datetime) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A test CA and a 127.0.0.1 certificate it signed: (server context, client context trusting the CA)."""
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("statusd http test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(REAL_NOW - DAY).not_valid_after(REAL_NOW + 365 * DAY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(REAL_NOW - DAY).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def https_target(server_context: ssl.SSLContext) -> TestServer:
    async def small(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def large(request: web.Request) -> web.Response:
        return web.Response(text="." * 3_000_000)

    async def closing(request: web.Request) -> web.Response:
        response = web.Response(text="bye")
        response.force_close()
        return response

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/large", large)
    app.router.add_get("/closing", closing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_context)
    return server


@pytest.fixture
async def five_day_https(tmp_path) -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    """An https target whose certificate expires in 5 days (and an hour), and a session trusting its CA."""
    server_context, client_context = make_certificates(tmp_path, not_after=REAL_NOW + 5 * DAY + timedelta(hours=1))
    server = await https_target(server_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context)) as session:
        yield server, session
    await server.close()


@pytest.mark.parametrize("path", [
    pytest.param("/small", id="body-arrived-with-headers"),
    pytest.param("/large", id="body-still-streaming"),
    pytest.param("/closing", id="server-closed-the-connection"),
])
@pytest.mark.parametrize(("warn_days", "degraded"), [
    pytest.param(14, True, id="warn-14-degraded"),
    pytest.param(2, False, id="warn-2-fine"),
])
async def test_certificate_expiring_soon_is_degraded(five_day_https, path, warn_days, degraded) -> None:
    server, session = five_day_https
    result = await probe(session, str(server.make_url(path)), cert_expiry_warn_days=warn_days).check(REAL_NOW)
    assert (result.ok, result.degraded, result.error) == (True, degraded, "")
    assert result.detail["cert_days_left"] == 5 and "cert_error" not in result.detail


async def test_certificate_is_only_read_when_asked(five_day_https) -> None:
    server, session = five_day_https
    result = await probe(session, str(server.make_url("/small"))).check(REAL_NOW)
    assert result.ok and not result.degraded and result.detail == {"status_code": 200}


async def test_failed_https_check_still_reports_the_certificate(five_day_https) -> None:
    server, session = five_day_https
    result = await probe(session, str(server.make_url("/small")), cert_expiry_warn_days=14,
                         body_contains="nope").check(REAL_NOW)
    assert (result.ok, result.degraded, result.error) == (False, False, "body does not contain 'nope'")
    assert result.detail["cert_days_left"] == 5


async def test_expired_certificate_fails_the_handshake(tmp_path) -> None:
    server_context, client_context = make_certificates(tmp_path, not_after=REAL_NOW - DAY)
    server = await https_target(server_context)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context)) as session:
            result = await probe(session, str(server.make_url("/small")), cert_expiry_warn_days=14).check(REAL_NOW)
    finally:
        await server.close()
    assert not result.ok and "certificate has expired" in result.error, result.error
    assert result.detail == {}
