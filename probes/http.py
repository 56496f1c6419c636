"""HTTP probe: a request whose status, body and certificate (and optionally latency) say whether the target is up."""

from __future__ import annotations

import asyncio
import json
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from yarl import URL

from probes.base import ProbeSettings
from statusd.core.model import ProbeResult
from statusd.core.schema import Problems, header_problems, http_url, positive

if TYPE_CHECKING:
    from cryptography import x509

_SHOWN_CHARS = 100  # configured text and JSON values are cut to this length in errors
_CLOSE_TIMEOUT_S = 1.0

JsonStep = str | int  # an object key or a list index

_KEY = r"[^.\[\]\s]+"
_INDEX = r"\[[0-9]+\]"
_JSON_PATH_RE = re.compile(rf"(?:{_KEY}|{_INDEX})(?:\.{_KEY}|{_INDEX})*")
_JSON_STEP_RE = re.compile(rf"\[([0-9]+)\]|\.?({_KEY})")


@dataclass(frozen=True, kw_only=True)
class HttpConfig(ProbeSettings):
    """An HTTP check. An empty `expected_status` accepts any 2xx; body checks all have to pass."""

    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    expected_status: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    degraded_latency_s: float | None = None  # slower than this counts as degraded, not down
    body_contains: str | None = None  # the response body must contain this text
    body_absent: str | None = None  # the response body must not contain this text
    body_regex: str | None = None  # `re.search` must find this in the response body
    max_body_bytes: int = 1_048_576  # body checks see at most this many bytes of the body
    json_path: str | None = None  # `status`, `checks.db.ok`, `items[0].state`: where json_equals is looked up
    json_equals: str | int | float | bool | None = None  # the JSON value json_path must hold
    cert_expiry_warn_days: int | None = None  # https: a certificate expiring sooner makes the result degraded

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = super().check()
        if not http_url(self.url):
            problems.append(("url", "expected an absolute http:// or https:// URL"))
        problems += header_problems(self.headers)
        for i, code in enumerate(self.expected_status):
            if not 100 <= code <= 599:
                problems.append((f"expected_status[{i}]", "expected an HTTP status code (100-599)"))
        if self.degraded_latency_s is not None and not 0 < self.degraded_latency_s < self.timeout_s:
            problems.append(("degraded_latency_s", "must be greater than 0 and less than timeout_s"))
        for key in ("body_contains", "body_absent", "body_regex", "json_path"):
            value = getattr(self, key)
            if value == "":
                problems.append((key, "must not be empty (leave it out to skip this check)"))
            elif value is not None and self.method == "HEAD":
                problems.append((key, "HEAD responses have no body; use GET or remove this check"))
        if self.body_regex:
            try:
                re.compile(self.body_regex)
            except re.error as exc:
                problems.append(("body_regex", f"not a valid Python regular expression: {exc}"))
        problems += positive(self.max_body_bytes, "max_body_bytes")
        if self.json_path and parse_json_path(self.json_path) is None:
            problems.append(("json_path", "expected a dotted path with list indexes, e.g. status, checks.db.ok "
                                          "or items[0].state"))
        if self.json_path is not None and self.json_equals is None:
            problems.append(("json_equals", "required when json_path is set (the value the path must hold)"))
        if self.json_equals is not None and self.json_path is None:
            problems.append(("json_path", "required when json_equals is set (where to find the value)"))
        if self.cert_expiry_warn_days is not None:
            problems += positive(self.cert_expiry_warn_days, "cert_expiry_warn_days")
            if http_url(self.url) and URL(self.url).scheme == "http":
                problems.append(("cert_expiry_warn_days", "only applies to https:// URLs; remove it or use https"))
            else:
                try:
                    certificate_parser()  # a missing library fails here, when the config is read, not at a check
                except ImportError as exc:
                    problems.append(("cert_expiry_warn_days", f"needs the cryptography package: {exc}"))
        return problems


class HttpProbe:
    """Checks one URL; every outcome, timeouts and failed body checks included, is a ProbeResult."""

    def __init__(self, config: HttpConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.component = config.component
        self.http = http
        self._body_regex = re.compile(config.body_regex) if config.body_regex else None
        self._json_steps = parse_json_path(config.json_path) if config.json_path else None
        self._checks_body = any(v is not None for v in (config.body_contains, config.body_absent,
                                                        config.body_regex, config.json_path))
        self._checks_cert = config.cert_expiry_warn_days is not None and URL(config.url).scheme == "https"
        self._parse_certificate = certificate_parser() if self._checks_cert else None

    async def check(self, now: datetime) -> ProbeResult:
        """Request, then judge status, body and certificate; a target that is down is a failed result."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        status: int | None = None
        cert: x509.Certificate | None = None
        try:
            async with self.http.request(
                cfg.method, cfg.url, headers=cfg.headers, data=cfg.body, allow_redirects=cfg.follow_redirects,
                timeout=aiohttp.ClientTimeout(total=cfg.timeout_s),
            ) as response:
                status = response.status
                final_url = response.url
                # Before the body is read: reading to the end hands the connection back to the pool.
                cert = self._peer_certificate(_transport(response)) if self._checks_cert else None
                body, truncated = await _read_at_most(response.content, cfg.max_body_bytes)
                charset = response.charset
        except TimeoutError:
            return self._result(now, loop.time() - started, ok=False, error=f"timed out after {cfg.timeout_s:g}s")
        except aiohttp.ClientError as exc:
            return self._result(now, loop.time() - started, ok=False, error=_describe(exc))
        latency = loop.time() - started
        detail: dict[str, Any] = {"status_code": status}
        if self._checks_cert:
            if cert is None and final_url.scheme == "https":
                cert = await self._fetch_certificate(final_url, cfg.timeout_s - latency)
            if final_url.scheme != "https":
                detail["cert_error"] = f"redirected to {final_url.scheme}://, which has no certificate"
            elif cert is None:
                detail["cert_error"] = "the server's certificate could not be read"
            else:
                detail["cert_days_left"] = math.floor((cert.not_valid_after_utc - now) / timedelta(days=1))
        accepted = status in cfg.expected_status if cfg.expected_status else 200 <= status < 300
        if not accepted:
            return self._result(now, latency, ok=False, error=f"HTTP {status}", detail=detail)
        if self._checks_body:
            if truncated:
                detail["body_truncated"] = True
            failures = self._body_failures(body, charset)
            if failures:
                if truncated:
                    failures.append(f"only the first {cfg.max_body_bytes} bytes were read (max_body_bytes)")
                return self._result(now, latency, ok=False, error="; ".join(failures), detail=detail)
        degraded = cfg.degraded_latency_s is not None and latency > cfg.degraded_latency_s
        if cert is not None and cfg.cert_expiry_warn_days is not None:
            degraded |= cert.not_valid_after_utc - now < timedelta(days=cfg.cert_expiry_warn_days)
        return self._result(now, latency, ok=True, degraded=degraded, detail=detail)

    def _body_failures(self, body: bytes, charset: str | None) -> list[str]:
        cfg = self.config
        failures: list[str] = []
        text = _decode(body, charset)
        if cfg.body_contains is not None and cfg.body_contains not in text:
            failures.append(f"body does not contain {_quote(cfg.body_contains)}")
        if cfg.body_absent is not None and cfg.body_absent in text:
            failures.append(f"body contains {_quote(cfg.body_absent)}")
        if self._body_regex is not None and not self._body_regex.search(text):
            failures.append(f"body does not match {_quote(self._body_regex.pattern)}")
        if self._json_steps is not None:
            failure = _json_failure(body, self._json_steps, cfg.json_equals)
            if failure:
                failures.append(failure)
        return failures

    async def _fetch_certificate(self, url: URL, budget_s: float) -> x509.Certificate | None:
        # The response's connection is gone when the server closed it after a short answer; a second
        # handshake with the same host only reads the dates (trust was judged by the request itself).
        if budget_s <= 0 or not url.host:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            async with asyncio.timeout(budget_s):
                _, writer = await asyncio.open_connection(url.host, url.port, ssl=context, server_hostname=url.host)
        except (OSError, ssl.SSLError):  # includes TimeoutError
            return None
        try:
            return self._peer_certificate(writer.transport)
        finally:
            await _close(writer)

    def _peer_certificate(self, transport: asyncio.BaseTransport | None) -> x509.Certificate | None:
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None or self._parse_certificate is None:
            return None
        # binary_form: the parsed dict is empty whenever the session does not verify certificates.
        der = ssl_object.getpeercert(binary_form=True)
        try:
            return self._parse_certificate(der) if der else None
        except ValueError:
            return None

    def _result(self, now: datetime, latency: float, *, ok: bool, error: str = "", degraded: bool = False,
                detail: dict[str, Any] | None = None) -> ProbeResult:
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=ok, latency_s=latency,
                           degraded=degraded, error=error, detail=detail or {})


def parse_json_path(path: str) -> tuple[JsonStep, ...] | None:
    """The keys and indexes of a path like `items[0].state`, or None when it is not one."""
    if not _JSON_PATH_RE.fullmatch(path):
        return None
    return tuple(int(m[1]) if m[1] is not None else m[2] for m in _JSON_STEP_RE.finditer(path))


def walk_json(document: Any, steps: tuple[JsonStep, ...]) -> Any:
    """The value at `steps` in a parsed JSON document; LookupError says where the path stopped."""
    value = document
    for i, step in enumerate(steps):
        where = _format_path(steps[:i])
        if isinstance(step, int):
            if not isinstance(value, list):
                raise LookupError(f"{where} is {_json_kind(value)}, not a list")
            if step >= len(value):
                raise LookupError(f"{where} has {len(value)} item{'' if len(value) == 1 else 's'}")
        else:
            if not isinstance(value, dict):
                raise LookupError(f"{where} is {_json_kind(value)}, not an object")
            if step not in value:
                raise LookupError(f"{where} has no key {_quote(step)}")
        value = value[step]
    return value


def json_equal(actual: Any, expected: str | int | float | bool) -> bool:
    """JSON equality: a string only equals a string, true is not 1, and 1 equals 1.0."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return isinstance(actual, (int, float)) and actual == expected


def _json_failure(body: bytes, steps: tuple[JsonStep, ...], expected: Any) -> str:
    path = _format_path(steps)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8 as well as bad JSON
        return f"body is not JSON: {_clip(str(exc) or type(exc).__name__)}"
    try:
        actual = walk_json(document, steps)
    except LookupError as exc:
        return f"JSON path {path} not found: {exc}"
    if not json_equal(actual, expected):
        return f"JSON path {path} is {_json_text(actual)}, expected {_json_text(expected)}"
    return ""


def _format_path(steps: tuple[JsonStep, ...]) -> str:
    if not steps:
        return "the document"
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _json_text(value: Any) -> str:
    return _clip(json.dumps(value, ensure_ascii=False))


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."


def _quote(text: str) -> str:
    return repr(_clip(text))


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name in Content-Type
        return body.decode("utf-8", errors="replace")


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether the body went on beyond them."""
    data = bytearray()
    while len(data) <= limit:
        chunk = await content.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data[:limit]), len(data) > limit


def _transport(response: aiohttp.ClientResponse) -> asyncio.BaseTransport | None:
    if response.connection is not None:
        return response.connection.transport
    # A body that arrived with the headers has already handed the connection back to the pool;
    # the protocol it came over still holds the (kept-alive) transport.
    protocol = getattr(response, "_protocol", None)
    return getattr(protocol, "transport", None)


def certificate_parser() -> Callable[[bytes], x509.Certificate]:
    """cryptography's DER certificate parser; ImportError when the library is not installed."""
    # Imported here, not with the module: only probes that check certificate expiry need cryptography,
    # which would add ~8.9 MiB to every server's RSS.
    from cryptography import x509

    return x509.load_der_x509_certificate


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except (OSError, ssl.SSLError):  # includes TimeoutError: the certificate is known, a slow goodbye changes nothing
        pass


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
