"""TLS probe: a handshake whose certificate must be trusted, match the name and not expire soon."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from probes.base import ProbeSettings, close_quietly
from statusd.core.model import ProbeResult
from statusd.core.schema import Problems, non_negative

_CLOSE_TIMEOUT_S = 1.0


@dataclass(frozen=True, kw_only=True)
class TlsConfig(ProbeSettings):
    """A TLS certificate check. With `ca_file`, only that CA bundle is trusted (not the system's)."""

    host: str
    port: int = 443
    server_name: str | None = None  # SNI and the name the certificate must match; defaults to host
    warn_days: int = 14  # a certificate expiring within this many days makes the result degraded
    verify: bool = True  # false: accept any certificate, still report (and fail on) its dates
    ca_file: str | None = None  # PEM bundle of a private CA

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = super().check()
        if not self.host.strip():
            problems.append(("host", "required (a host name or IP address)"))
        if not 1 <= self.port <= 65535:
            problems.append(("port", "expected a TCP port (1-65535)"))
        if self.server_name is not None and not self.server_name.strip():
            problems.append(("server_name", "must not be empty (leave it out to use host)"))
        problems += non_negative(self.warn_days, "warn_days")
        if self.ca_file is not None:
            if not self.verify:
                problems.append(("ca_file", "has no effect with verify = false; remove one of them"))
            else:
                try:
                    ssl.create_default_context(cafile=self.ca_file)
                except FileNotFoundError:
                    problems.append(("ca_file", f"no such file: {self.ca_file}"))
                except (OSError, ssl.SSLError) as exc:
                    problems.append(("ca_file", f"cannot load a PEM CA bundle from it: {exc}"))
        return problems


class TlsProbe:
    """Checks one TLS endpoint's certificate; every outcome is a ProbeResult with the expiry in `detail`."""

    def __init__(self, config: TlsConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.component = config.component
        self.server_name = config.server_name or config.host
        # Contexts are built once: loading CA bundles is the costly part of a check.
        self._verifying = _context(verify=True, ca_file=config.ca_file) if config.verify else None
        self._accepting = _context(verify=False, ca_file=None)

    async def check(self, now: datetime) -> ProbeResult:
        """Handshake, then judge trust, name and dates; a bad certificate is a failed result."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        rejected: str | None = None
        cert: x509.Certificate | None = None
        try:
            async with asyncio.timeout(cfg.timeout_s):
                try:
                    cert = await self._handshake(self._verifying or self._accepting)
                except ssl.SSLCertVerificationError as exc:
                    rejected = f"certificate rejected: {exc.verify_message or _reason(exc)}"
                latency = loop.time() - started
                if rejected is not None:
                    # Fetched again without verification only to report the rejected certificate's dates.
                    cert = await self._fetch_unverified()
        except TimeoutError:
            error = rejected or f"timed out after {cfg.timeout_s:g}s connecting to {self._where}"
            return self._result(now, loop.time() - started, ok=False, error=error)
        except ssl.SSLError as exc:
            return self._result(now, loop.time() - started, ok=False, error=f"TLS handshake failed: {_reason(exc)}")
        except OSError as exc:
            return self._result(now, loop.time() - started, ok=False, error=self._describe(exc))
        except ValueError as exc:  # ssl's own ValueErrors are SSLErrors, caught above: this is the parser's
            return self._result(now, loop.time() - started, ok=False, error=f"cannot parse the certificate: {exc}")
        if rejected is not None:
            return self._result(now, latency, ok=False, error=rejected, cert=cert)
        if cert is None:
            return self._result(now, latency, ok=False, error="the server sent no certificate")
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        if now > not_after:
            return self._result(now, latency, ok=False, cert=cert,
                                error=f"certificate expired on {not_after.isoformat()}")
        if now < not_before:
            return self._result(now, latency, ok=False, cert=cert,
                                error=f"certificate is not valid before {not_before.isoformat()}")
        degraded = not_after - now <= timedelta(days=cfg.warn_days)
        return self._result(now, latency, ok=True, degraded=degraded, cert=cert)

    async def _fetch_unverified(self) -> x509.Certificate | None:
        try:
            return await self._handshake(self._accepting)
        except (ssl.SSLError, OSError):
            return None

    async def _handshake(self, context: ssl.SSLContext) -> x509.Certificate | None:
        _, writer = await asyncio.open_connection(self.config.host, self.config.port, ssl=context,
                                                  server_hostname=self.server_name)
        try:
            ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
            # binary_form: the parsed dict is empty whenever verification is off.
            der = ssl_object.getpeercert(binary_form=True)
        finally:
            await close_quietly(writer, _CLOSE_TIMEOUT_S)
        return x509.load_der_x509_certificate(der) if der else None

    @property
    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _describe(self, exc: OSError) -> str:
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve {self.config.host}: {exc.strerror or exc}"
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot connect to {self._where}: connection refused"
        return f"cannot connect to {self._where}: {exc.strerror or exc}"[:300]

    def _result(self, now: datetime, latency: float, *, ok: bool, error: str = "", degraded: bool = False,
                cert: x509.Certificate | None = None) -> ProbeResult:
        detail: dict[str, Any] = {"server_name": self.server_name}
        if cert is not None:
            not_after = cert.not_valid_after_utc
            detail |= {
                "days_left": math.floor((not_after - now) / timedelta(days=1)),
                "not_after": not_after.isoformat(),
                "not_before": cert.not_valid_before_utc.isoformat(),
                "subject": _common_name(cert.subject),
                "issuer": _common_name(cert.issuer),
            }
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=ok, latency_s=latency,
                           degraded=degraded, error=error[:300], detail=detail)


def _context(*, verify: bool, ca_file: str | None) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc)


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()
