"""What every probe kind shares: common settings and the registry entry."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any, NamedTuple

from statusd.core.schema import Problems, positive


@dataclass(frozen=True, kw_only=True)
class ProbeSettings:
    """Settings every probe has. `name` is the probe's table key in config."""

    name: str
    type: str
    component: str | None = None
    interval_s: float = 30.0
    timeout_s: float = 10.0
    failure_threshold: int = 2  # consecutive failures before a Signal fires
    success_threshold: int = 2  # consecutive successes before the Signal recovers
    severity: str = "major_outage"  # component status while failing

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = positive(self.interval_s, "interval_s") + positive(self.timeout_s, "timeout_s")
        if 0 < self.interval_s < 0.1:  # (timers that fine only spin the event loop)
            problems.append(("interval_s", "must be at least 0.1 seconds"))
        problems += positive(self.failure_threshold, "failure_threshold")
        problems += positive(self.success_threshold, "success_threshold")
        if self.timeout_s > self.interval_s:
            problems.append(("timeout_s", "must not exceed interval_s"))
        if self.severity not in ("degraded_performance", "partial_outage", "major_outage"):
            problems.append(("severity", "expected 'degraded_performance', 'partial_outage' or 'major_outage'"))
        return problems


class ProbeKind(NamedTuple):
    """A registry entry: the config dataclass and the probe class built from it."""

    config: type[Any]
    probe: type[Any]


async def close_quietly(writer: asyncio.StreamWriter, timeout_s: float = 1.0) -> None:
    """Close a connection a probe is done with; a slow or failed goodbye does not change the result."""
    writer.close()
    try:
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()
    except (OSError, ssl.SSLError):  # OSError includes TimeoutError
        pass
