"""What every probe kind shares: common settings and the registry entry."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator, Mapping
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


class KindRegistry(Mapping[str, ProbeKind]):
    """Probe kinds by config `type`; a kind's module is imported the first time that kind is looked up.

    Listing the names imports nothing, so a library only one kind needs (dnspython, cryptography)
    is loaded only by a config that uses that kind, and a missing one fails when the config is read.
    """

    def __init__(self, loaders: Mapping[str, Callable[[], ProbeKind]]) -> None:
        self._loaders = dict(loaders)
        self._loaded: dict[str, ProbeKind] = {}

    def __getitem__(self, kind: str) -> ProbeKind:
        if kind not in self._loaded:
            self._loaded[kind] = self._loaders[kind]()  # KeyError for an unknown kind, as a dict would
        return self._loaded[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._loaders  # Mapping's would look the kind up, importing its module

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


async def close_quietly(writer: asyncio.StreamWriter, timeout_s: float = 1.0) -> None:
    """Close a connection a probe is done with; a slow or failed goodbye does not change the result."""
    writer.close()
    try:
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()
    except (OSError, ssl.SSLError):  # OSError includes TimeoutError
        pass
