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
import logging
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

from statusd.reports.outcome import ReportOutcome
from statusd.reports.spec import DetectorSpec
from statusd.reports.text import Report
from statusd.reports.worker import observe_each, one_blas_thread, pack

if TYPE_CHECKING:
    from statusd.reports.detector import ReportDetector


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
    """Where the detector runs, behind one async interface (`InlineDetector`, `ProcessDetector`)."""

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
        """Stop the detector and release what it holds."""
        ...


class InlineDetector:
    """The detector in this process: no second core, no child; what tests and small sites may prefer."""

    def __init__(self, build: Callable[[], ReportDetector]) -> None:
        one_blas_thread()
        self._build = build
        self.detector = build()

    async def observe_many(self, reports: Sequence[Report]) -> list[ReportOutcome | None]:
        """Fold reports in, in order, on the event loop's thread; None where the detector failed on one."""
        return observe_each(self.detector, reports)

    async def rebuild(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        """Warm up from stored reports (`ReportDetector.rebuild`); the surges still active."""
        # On a thread, so the start-up replay does not stop the event loop; nothing else uses the
        # detector meanwhile (the intake's detection waits for the replay).
        return await asyncio.to_thread(self.detector.rebuild, reports)

    async def start(self) -> None:
        """Nothing to start: the detector was built with this host."""

    async def restart(self) -> None:
        """A new, empty detector."""
        self.detector = self._build()

    async def close(self) -> None:
        """Nothing to release but memory."""


class ProcessDetector:
    """The detector in one child process (spawned on first use), fed a batch of reports per call.

    One pipe, one request at a time, and the event loop reads the reply when the pipe is
    readable: no helper threads, so a call costs a fraction of a millisecond on top of
    the detection itself (a ProcessPoolExecutor added 3–7 ms of thread hand-offs).
    """

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()  # one request in flight: replies come back in order
        self._lost = False

    def _started(self) -> Connection:
        if self._conn is None:
            # A new interpreter, not a fork: the server has threads (the SQLite connections) that a fork would
            # copy mid-flight. It runs statusd.reports.worker alone (see there why not multiprocessing's spawn).
            ours, theirs = socket.socketpair()
            try:
                with theirs:
                    self._process = subprocess.Popen(
                        [sys.executable, "-m", "statusd.reports.worker", str(theirs.fileno()), str(os.getpid())],
                        stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
            except BaseException:
                ours.close()
                raise
            self._conn = Connection(ours.detach())
            self._conn.send_bytes(pickle.dumps(self.spec, pickle.HIGHEST_PROTOCOL))
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
        """Fold reports in, in order, in the child; DetectorLost if it died or stopped answering."""
        if not reports:
            return []
        return await self._call("observe", [pack(report) for report in reports], items=len(reports))

    async def rebuild(self, reports: Sequence[Report]) -> list[ReportOutcome]:
        """Warm the child up in chunks of REBUILD_CHUNK reports; the surges still active after the last."""
        active: list[ReportOutcome] = []
        for start in range(0, len(reports), REBUILD_CHUNK):  # each chunk's answer includes the ones before it
            chunk = reports[start:start + REBUILD_CHUNK]
            active = await self._call("rebuild", [pack(report) for report in chunk], items=len(chunk))
        return active

    async def pid(self) -> int:
        """The child's process id (it is started if it was not running)."""
        return await self._call("pid")

    async def start(self) -> None:
        """Spawn the child and build its detector, so the first report does not wait for it (~0.5 s)."""
        await self.pid()

    async def restart(self) -> None:
        """Stop the child; the next call starts a new one with an empty detector."""
        await self.close()

    async def close(self) -> None:
        """Close the pipe and wait for the child to exit (killing it after 5 s)."""
        process = self._process
        self._forget()  # the child reads end-of-file and exits
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(None, _reap, process)

    def _forget(self) -> None:
        """Drop the pipe (the child reads end-of-file and exits); `close` also waits for it."""
        if self._conn is not None:
            self._conn.close()
        self._conn = self._process = None


def _reap(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Wait for the child to exit, killing it after `grace_s`; no zombie is left behind."""
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
