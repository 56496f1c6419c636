"""Probe scheduling at scale: stable phases over the whole interval, no drift, bounded hangs,
the write-behind result buffer and retention — on real APScheduler, real HTTP and SQLite."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import statusd.monitor.scheduler as monitor_module
from probes.http import HttpConfig, HttpProbe
from statusd.incidents.coordinator import Coordinator, PageInfo
from statusd.core.clock import FakeClock, SystemClock
from statusd.core.model import Component, ComponentStatus, ProbeResult
from statusd.monitor.results import ResultWriter
from statusd.monitor.scheduler import GRID_EPOCH, Monitor, first_run, phase_s, scheduled_at
from statusd.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Recorder:
    """A monitor observer that keeps what it was told."""

    results: list[ProbeResult] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)

    def probe_result(self, result: ProbeResult) -> None:
        self.results.append(result)

    def probe_lag(self, probe: str, lag_s: float) -> None:
        self.lags.append(lag_s)

    def probe_results_pruned(self, count: int) -> None:
        self.pruned.append(count)


class HangingProbe:
    """A broken plugin: ignores its timeout and never returns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.component = "api"
        self.started = asyncio.Event()  # set once a check is under way

    async def check(self, now: datetime) -> ProbeResult:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture
async def target() -> AsyncIterator[TestServer]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/ok/{n}", ok)
    app.router.add_get("/hang/{n}", hang)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def sync_components(store: SqliteStore, at: datetime) -> None:
    async with store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], at)


def http_probes(server: TestServer, http: aiohttp.ClientSession, names: list[str], *, path: str = "ok",
                interval_s: float = 0.5, timeout_s: float = 0.25) -> tuple[dict[str, HttpProbe], dict[str, HttpConfig]]:
    configs = {n: HttpConfig(name=n, type="http", component="api", url=str(server.make_url(f"/{path}/{n}")),
                             interval_s=interval_s, timeout_s=timeout_s) for n in names}
    return {n: HttpProbe(c, http) for n, c in configs.items()}, configs


def make_monitor(store: SqliteStore, clock, probes, settings, **kw) -> tuple[Monitor, Recorder]:
    recorder = Recorder()
    coordinator = Coordinator(store, clock, people={}, page=PageInfo("Test", "http://127.0.0.1"))
    return Monitor(store, coordinator, clock, probes, settings, observer=recorder, **kw), recorder


# --- the grid ------------------------------------------------------------------------------


def test_phases_are_stable_and_cover_the_whole_interval() -> None:
    names = [f"probe-{i:05d}" for i in range(10_000)]
    phases = [phase_s(n, 600.0) for n in names]
    assert phases == [phase_s(n, 600.0) for n in names], "the same on every call (no hash seed)"
    assert all(0 <= p < 600 for p in phases)
    assert max(phases) > 590 and min(phases) < 10, "not capped at 60 s"
    # Evenly spread: no one-second slot of a 60 s interval gets much more than its share.
    slots = [0] * 60
    for n in names:
        slots[int(phase_s(n, 60.0))] += 1
    assert max(slots) < 1.25 * statistics.mean(slots)
    assert min(slots) > 0.75 * statistics.mean(slots)


@pytest.mark.parametrize("interval_s", [0.3, 30.0, 60.0, 3600.0], ids=["sub-second", "30s", "minute", "hour"])
def test_first_run_is_the_next_point_on_the_probe_grid(interval_s: float) -> None:
    interval = timedelta(seconds=interval_s)
    for name in ("api-health", "db", "x" * 40):
        run = first_run(name, interval_s, NOW)
        assert NOW <= run < NOW + interval
        # On the probe's grid: the epoch, plus its phase, plus whole intervals (to the microsecond).
        steps = (run - GRID_EPOCH - timedelta(seconds=phase_s(name, interval_s))) / interval
        assert steps == pytest.approx(round(steps), abs=1e-5 / interval_s)
        # A restart later lands on the same grid.
        later = first_run(name, interval_s, NOW + interval * 7.5)
        steps = (later - run) / interval
        assert steps in (pytest.approx(7, abs=1e-5 / interval_s), pytest.approx(8, abs=1e-5 / interval_s))


def test_scheduled_at_is_the_grid_time_a_run_belongs_to() -> None:
    anchor = NOW
    assert scheduled_at(anchor, 60, NOW) == NOW
    assert scheduled_at(anchor, 60, NOW + timedelta(seconds=59.9)) == NOW
    assert scheduled_at(anchor, 60, NOW + timedelta(seconds=125)) == NOW + timedelta(seconds=120)


# --- real scheduling --------------------------------------------------------------------------


async def test_probes_run_on_their_grid_without_drift(sqlite_store: SqliteStore, target: TestServer,
                                                      http: aiohttp.ClientSession) -> None:
    clock = SystemClock()
    await sync_components(sqlite_store, clock.now())
    names = [f"p{i}" for i in range(20)]
    probes, settings = http_probes(target, http, names, interval_s=0.5)
    monitor, recorder = make_monitor(sqlite_store, clock, probes, settings)
    monitor.start()
    try:
        await asyncio.sleep(2.3)
    finally:
        await monitor.stop()

    by_probe: dict[str, list[datetime]] = {}
    for r in recorder.results:
        by_probe.setdefault(r.probe, []).append(r.at)
    assert set(by_probe) == set(names)
    for name, starts in by_probe.items():
        assert 4 <= len(starts) <= 5, name
        anchor = first_run(name, 0.5, starts[0] - timedelta(seconds=0.4))
        for at in starts:
            # Every start is shortly after its own grid point: lateness does not accumulate.
            late = (at - scheduled_at(anchor, 0.5, at)).total_seconds()
            assert 0 <= late < 0.2, (name, at, late)
    # A lag is recorded as each check starts; stop() may have cancelled a few before their result.
    assert len(recorder.results) <= len(recorder.lags) <= len(recorder.results) + len(names)
    assert max(recorder.lags) < 0.2
    # stop() stored every buffered result.
    async with sqlite_store.read() as r:
        stored = sum([len(await r.probe_results.recent(n, limit=100)) for n in names])
    assert stored == len(recorder.results)


async def test_hanging_targets_cost_only_their_own_timeout(sqlite_store: SqliteStore, target: TestServer,
                                                           http: aiohttp.ClientSession) -> None:
    clock = SystemClock()
    await sync_components(sqlite_store, clock.now())
    healthy, healthy_settings = http_probes(target, http, [f"ok{i}" for i in range(10)], interval_s=0.5)
    hanging, hanging_settings = http_probes(target, http, [f"hang{i}" for i in range(10)], path="hang",
                                            interval_s=0.5, timeout_s=0.4)
    # Ten slots: the hanging probes hold some of them for their timeout, never all of them for long.
    monitor, recorder = make_monitor(sqlite_store, clock, {**healthy, **hanging},
                                     {**healthy_settings, **hanging_settings}, concurrency=16)
    monitor.start()
    try:
        await asyncio.sleep(2.3)
    finally:
        await monitor.stop()

    ok = [r for r in recorder.results if r.probe.startswith("ok")]
    hung = [r for r in recorder.results if r.probe.startswith("hang")]
    assert ok and all(r.ok for r in ok)
    assert {r.probe for r in ok} == set(healthy)
    assert len(ok) >= 4 * len(healthy), "healthy probes kept their schedule"
    assert hung and all(not r.ok and r.error == "timed out after 0.4s" for r in hung)
    assert all(0.35 < r.latency_s < 0.6 for r in hung)


async def test_a_plugin_that_ignores_its_timeout_is_cut_off_just_after_it(
        sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "DEADLINE_GRACE_S", 0.1)
    clock = SystemClock()
    await sync_components(sqlite_store, clock.now())
    settings = {"stuck": HttpConfig(name="stuck", type="http", component="api", url="http://127.0.0.1:9/",
                                    interval_s=30, timeout_s=0.2)}
    monitor, recorder = make_monitor(sqlite_store, clock, {"stuck": HangingProbe("stuck")}, settings)
    started = asyncio.get_running_loop().time()
    result = await monitor.run_once("stuck")
    elapsed = asyncio.get_running_loop().time() - started
    assert 0.25 < elapsed < 1.0
    assert not result.ok and result.error == "no result within 0.3s"
    async with sqlite_store.read() as r:
        assert [x.error for x in await r.probe_results.recent("stuck")] == ["no result within 0.3s"]


async def test_the_state_flipping_result_is_stored_before_the_incident_opens(
        sqlite_store: SqliteStore, target: TestServer, http: aiohttp.ClientSession) -> None:
    clock = FakeClock(NOW)
    await sync_components(sqlite_store, NOW)
    probes, settings = http_probes(target, http, ["down"], path="nowhere")
    monitor, _ = make_monitor(sqlite_store, clock, probes, settings)
    monitor.results = ResultWriter(sqlite_store, clock, flush_s=3600)  # only a signal or stop() flushes
    monitor._writer = asyncio.create_task(monitor.results.run())
    try:
        await monitor.run_once("down")
        assert monitor.results.pending == 1
        await monitor.run_once("down")  # the second failure fires (failure_threshold = 2)
        assert monitor.results.pending == 0
        async with sqlite_store.read() as r:
            [incident] = await r.incidents.list_open()
            assert len(await r.probe_results.recent("down")) == 2
            assert (await r.components.get("api")).status is ComponentStatus.MAJOR_OUTAGE
    finally:
        monitor.results.close()
        await monitor._writer


# --- the result buffer --------------------------------------------------------------------


class FlakyStore:
    """Fails the next `failures` transactions, then behaves."""

    def __init__(self, inner: SqliteStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def read(self):
        return self.inner.read()

    def transaction(self, **options):
        if self.failures:
            self.failures -= 1
            raise OSError("disk unplugged")
        return self.inner.transaction(**options)


async def turns_until(condition: Callable[[], bool], turns: int = 1000) -> None:
    """Let other tasks run until `condition` holds; fails if it never does (no wall-clock wait)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def result(i: int) -> ProbeResult:
    return ProbeResult(probe="p", component="api", at=NOW + timedelta(seconds=i), ok=True, latency_s=0.01)


async def test_buffer_flushes_in_batches_on_its_clock_and_keeps_a_failed_batch(sqlite_store: SqliteStore) -> None:
    clock = FakeClock(NOW)
    flaky = FlakyStore(sqlite_store, failures=1)
    writer = ResultWriter(flaky, clock, flush_s=0.25, max_batch=1000)  # type: ignore[arg-type]
    task = asyncio.create_task(writer.run())
    try:
        for i in range(3):
            writer.add(result(i))
        await turns_until(lambda: clock.sleepers == 1)  # the writer sleeps on the fake clock
        await clock.advance(0.25)
        await turns_until(lambda: flaky.failures == 0)  # the first flush was tried, and failed
        assert writer.pending == 3, "nothing is lost"
        writer.add(result(3))
        for _ in range(20):  # the next flush takes the kept batch and the new result together
            await clock.advance(0.25)
            if writer.pending == 0:
                break
        await writer.flush()  # waits for the flush in progress to commit
        async with sqlite_store.read() as r:
            assert [x.at for x in await r.probe_results.recent("p")] == [result(i).at for i in (3, 2, 1, 0)]
        writer.add(result(4))
    finally:
        writer.close()
        await task
    async with sqlite_store.read() as r:
        assert len(await r.probe_results.recent("p")) == 5, "close() flushed what was left"


async def test_buffer_full_batch_flushes_early(sqlite_store: SqliteStore) -> None:
    clock = FakeClock(NOW)
    writer = ResultWriter(sqlite_store, clock, flush_s=3600, max_batch=10)
    task = asyncio.create_task(writer.run())
    try:
        for i in range(10):
            writer.add(result(i))
        for _ in range(100):
            if writer.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert writer.pending == 0
    finally:
        writer.close()
        await task


# --- retention ---------------------------------------------------------------------------------


async def test_prune_deletes_results_past_retention_in_slices(sqlite_store: SqliteStore) -> None:
    clock = FakeClock(NOW)
    await sync_components(sqlite_store, NOW - timedelta(days=30))
    async with sqlite_store.transaction() as tx:
        # One result an hour for ten days, plus a lone result a month old (a gap the slices skip).
        await tx.probe_results.add_many([ProbeResult(probe="p", component="api", at=NOW - timedelta(hours=h),
                                                     ok=True, latency_s=0.01) for h in range(240)])
        await tx.probe_results.add(ProbeResult(probe="p", component="api", at=NOW - timedelta(days=30), ok=True,
                                               latency_s=0.01))
    monitor, recorder = make_monitor(sqlite_store, clock, {}, {}, retention=timedelta(days=7),
                                     prune_slice=timedelta(hours=6))
    transactions = 0
    real_transaction = sqlite_store.transaction

    def counting_transaction():
        nonlocal transactions
        transactions += 1
        return real_transaction()

    sqlite_store.transaction = counting_transaction  # type: ignore[method-assign]
    deleted = await monitor.prune()
    assert deleted == 72  # hours 169..239 and the month-old one; hour 168 is exactly at the cutoff and kept
    assert recorder.pruned == [deleted]
    assert 12 <= transactions <= 14, "three days of data in six-hour slices, the gap skipped in one step"
    async with sqlite_store.read() as r:
        assert await r.probe_results.oldest() == NOW - timedelta(days=7)
        # Rollups outlive raw results: the checks counted ten days ago are still there.
        days = (await r.components.uptime(["api"], 11, NOW))["api"]
    assert sum(d.checks for d in days) == 240
    assert await monitor.prune() == 0


async def test_start_schedules_probes_and_retention_and_stop_ends_everything(
        sqlite_store: SqliteStore, tmp_path: Path) -> None:
    clock = SystemClock()
    settings = {"stuck": HttpConfig(name="stuck", type="http", component="api", url="http://127.0.0.1:9/",
                                    interval_s=0.2, timeout_s=0.2)}
    stuck = HangingProbe("stuck")
    monitor, _ = make_monitor(sqlite_store, clock, {"stuck": stuck}, settings)
    monitor.start()
    assert monitor._scheduler is not None
    assert {job.id for job in monitor._scheduler.get_jobs()} == {"probe:stuck", "retention"}
    await asyncio.wait_for(stuck.started.wait(), 5)  # the stuck check is in flight now
    assert "probe:stuck" in monitor._tasks
    await asyncio.wait_for(monitor.stop(), 2)
    assert monitor._tasks == {} and monitor._writer is None and monitor._scheduler is None
