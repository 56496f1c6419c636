"""TCP probe: a connection, optionally a line sent and a substring expected in what comes back."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from probes.base import ProbeSettings, close_quietly
from statusd.core.model import ProbeResult
from statusd.core.schema import Problems, positive

_MAX_READ_LIMIT_BYTES = 1024 * 1024
_CLOSE_TIMEOUT_S = 1.0


@dataclass(frozen=True, kw_only=True)
class TcpConfig(ProbeSettings):
    """A TCP check. Without `expect` a completed connection is success."""

    host: str
    port: int
    send: str | None = None  # written (UTF-8) right after connecting, e.g. "PING\r\n"
    expect: str | None = None  # must occur in the first `read_limit_bytes` the peer sends, e.g. "SSH-"
    read_limit_bytes: int = 4096

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = super().check()
        if not self.host.strip():
            problems.append(("host", "required (a host name or IP address)"))
        if not 1 <= self.port <= 65535:
            problems.append(("port", "expected a TCP port (1-65535)"))
        if self.send == "":
            problems.append(("send", "must not be empty (leave it out to send nothing)"))
        if self.expect == "":
            problems.append(("expect", "must not be empty (leave it out to only connect)"))
        problems += positive(self.read_limit_bytes, "read_limit_bytes")
        if self.read_limit_bytes > _MAX_READ_LIMIT_BYTES:
            problems.append(("read_limit_bytes", f"must not exceed {_MAX_READ_LIMIT_BYTES}"))
        if self.expect is not None and len(self.expect.encode()) > self.read_limit_bytes:
            problems.append(("expect", "is longer than read_limit_bytes, so it could never match"))
        return problems


class TcpProbe:
    """Connects to one host:port; every outcome, timeouts included, is a ProbeResult."""

    def __init__(self, config: TcpConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.component = config.component

    async def check(self, now: datetime) -> ProbeResult:
        """Connect, send, read until `expect` shows up; a peer that is down is a failed result."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = bytearray()
        writer: asyncio.StreamWriter | None = None
        closed_by_peer = False
        try:
            async with asyncio.timeout(cfg.timeout_s):
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
                if cfg.send is not None:
                    writer.write(cfg.send.encode())
                    await writer.drain()
                if cfg.expect is not None:
                    closed_by_peer = await _read_until(reader, cfg.expect.encode(), cfg.read_limit_bytes, received)
        # TimeoutError is an OSError: it must be caught first.
        except TimeoutError:
            if writer is None:
                error = f"timed out connecting to {cfg.host}:{cfg.port} after {cfg.timeout_s:g}s"
            else:
                error = f"timed out after {cfg.timeout_s:g}s waiting for {cfg.expect!r}, got {_preview(received)}"
            return self._result(now, loop.time() - started, ok=False, error=error, received=received)
        except OSError as exc:
            return self._result(now, loop.time() - started, ok=False, error=self._describe(exc, writer is not None),
                                received=received)
        finally:
            if writer is not None:
                await close_quietly(writer, _CLOSE_TIMEOUT_S)
        latency = loop.time() - started
        if cfg.expect is not None and cfg.expect.encode() not in received:
            why = "before the peer closed the connection" if closed_by_peer else f"in the first {len(received)} bytes"
            error = f"expected {cfg.expect!r} {why}, got {_preview(received)}"
            return self._result(now, latency, ok=False, error=error, received=received)
        return self._result(now, latency, ok=True, received=received)

    def _describe(self, exc: OSError, connected: bool) -> str:
        where = f"{self.config.host}:{self.config.port}"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve {self.config.host}: {exc.strerror or exc}"
        if connected:
            return f"connection to {where} lost: {exc.strerror or exc}"[:300]
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot connect to {where}: connection refused"
        return f"cannot connect to {where}: {exc.strerror or exc}"[:300]

    def _result(self, now: datetime, latency: float, *, ok: bool, received: bytearray, error: str = "") -> ProbeResult:
        detail: dict[str, Any] = {"received": _text(received)} if self.config.expect is not None else {}
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=ok, latency_s=latency,
                           error=error, detail=detail)


async def _read_until(reader: asyncio.StreamReader, needle: bytes, limit: int, into: bytearray) -> bool:
    """Read into `into` until `needle` appears or `limit` bytes came; True when the peer closed first."""
    while needle not in into and len(into) < limit:
        chunk = await reader.read(limit - len(into))
        if not chunk:
            return True
        into += chunk
    return False


def _text(data: bytearray, limit: int = 200) -> str:
    text = bytes(data[:limit]).decode("utf-8", "replace")
    return text + "..." if len(data) > limit else text


def _preview(data: bytearray) -> str:
    return repr(_text(data, 120)) if data else "nothing"
