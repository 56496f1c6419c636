"""HTTP probe: a request whose status (and optionally latency) says whether the target is up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import aiohttp
from yarl import URL

from probes.base import ProbeSettings
from statusd.core.model import ProbeResult
from statusd.core.schema import Problems


@dataclass(frozen=True, kw_only=True)
class HttpConfig(ProbeSettings):
    """An HTTP check. An empty `expected_status` accepts any 2xx."""

    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    expected_status: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    degraded_latency_s: float | None = None  # slower than this counts as degraded, not down

    def check(self) -> Problems:
        problems = super().check()
        url = URL(self.url)
        if url.scheme not in ("http", "https") or not url.host:
            problems.append(("url", "expected an absolute http:// or https:// URL"))
        for i, code in enumerate(self.expected_status):
            if not 100 <= code <= 599:
                problems.append((f"expected_status[{i}]", "expected an HTTP status code (100-599)"))
        if self.degraded_latency_s is not None and not 0 < self.degraded_latency_s < self.timeout_s:
            problems.append(("degraded_latency_s", "must be greater than 0 and less than timeout_s"))
        return problems


class HttpProbe:
    """Checks one URL; every outcome, timeouts included, is a ProbeResult."""

    def __init__(self, config: HttpConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.component = config.component
        self.http = http

    async def check(self, now: datetime) -> ProbeResult:
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        status: int | None = None
        try:
            async with self.http.request(
                cfg.method, cfg.url, headers=cfg.headers, data=cfg.body, allow_redirects=cfg.follow_redirects,
                timeout=aiohttp.ClientTimeout(total=cfg.timeout_s),
            ) as response:
                status = response.status
                await response.read()
        except TimeoutError:
            return self._result(now, loop.time() - started, ok=False, error=f"timed out after {cfg.timeout_s:g}s")
        except aiohttp.ClientError as exc:
            return self._result(now, loop.time() - started, ok=False, error=_describe(exc))
        latency = loop.time() - started
        accepted = status in cfg.expected_status if cfg.expected_status else 200 <= status < 300
        if not accepted:
            return self._result(now, latency, ok=False, error=f"HTTP {status}", status=status)
        degraded = cfg.degraded_latency_s is not None and latency > cfg.degraded_latency_s
        return self._result(now, latency, ok=True, degraded=degraded, status=status)

    def _result(self, now: datetime, latency: float, *, ok: bool, error: str = "", degraded: bool = False,
                status: int | None = None) -> ProbeResult:
        detail = {"status_code": status} if status is not None else {}
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=ok, latency_s=latency,
                           degraded=degraded, error=error, detail=detail)


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return f"{type(exc).__name__}: {exc}"[:300]
