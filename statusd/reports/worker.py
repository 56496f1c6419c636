"""The report detector's own process: `python -m statusd.reports.worker FD PARENT_PID`, started by `ProcessDetector`.

It imports only what detection needs (this module, the spec, then the detector and numpy when
the spec is built), not the server: the process is started as a plain interpreter on this
module, rather than by multiprocessing, whose spawn would run the server's entry script again
in the child and start a resource tracker process for semaphores this pipe never uses.

Protocol, over the socket `FD`: the first message is the pickled DetectorSpec; then each
request is a pickled `(kind, payload)` and gets one pickled `(ok, value)` back, in order.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from threadpoolctl import threadpool_limits

from statusd.reports.outcome import ReportOutcome
from statusd.reports.spec import DetectorSpec
from statusd.reports.text import Report

if TYPE_CHECKING:
    from statusd.reports.detector import ReportDetector

log = logging.getLogger(__name__)


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
    # threadpoolctl limits the BLAS libraries loaded so far: load numpy's first, as nothing else here may have.
    import numpy  # noqa: F401

    threadpool_limits(limits=1, user_api="blas")


# A Report's tags are a read-only mapping proxy, which does not pickle: reports cross as tuples.
Packed = tuple[str, str, str, datetime, str, dict[str, str], str | None]


def pack(report: Report) -> Packed:
    """The report as plain values that pickle."""
    return (report.id, report.client_id, report.text, report.received_at, report.channel, dict(report.tags),
            report.contact)


def unpack(row: Packed) -> Report:
    """The report `pack` was given."""
    id_, client_id, text, received_at, channel, tags, contact = row
    return Report(id_, client_id, text, received_at, channel=channel, tags=tags, contact=contact)


def serve(conn: Connection, parent: int) -> None:
    """Answer requests until the server closes the pipe (or dies)."""
    _exit_with_parent(parent)
    try:
        spec: DetectorSpec = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
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
                result: Any = observe_each(detector, (unpack(row) for row in payload))
            elif kind == "rebuild":
                result = detector.rebuild(unpack(row) for row in payload)
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


def main(argv: Sequence[str]) -> int:
    """Serve on the inherited socket `argv[0]` for the server `argv[1]`; exit status 0 when it closes."""
    fd, parent = int(argv[0]), int(argv[1])
    serve(Connection(fd), parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
