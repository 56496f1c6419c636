"""Probes at scale: thousands of HTTP probes on one statusd Monitor, figures printed, nothing asserted.

Each scenario runs in a fresh child process (so peak RSS and CPU are its own) with the real
pieces: APScheduler, one aiohttp ClientSession, HttpProbe, detection, the coordinator, the
Prometheus metrics object and a SQLite store in a temp dir. The target is an aiohttp app on
127.0.0.1 in a separate process, so its CPU is not counted; `/ok/<n>` answers at once and
`/hang/<n>` never answers (the probe's timeout ends it). Loopback only, bounded in time.

    python bench/probes_at_scale.py                # the whole suite (about 14 minutes)
    python bench/probes_at_scale.py --quick        # the suite scaled down to 1/10 (about 2 minutes)
    python bench/probes_at_scale.py --scenario 10k
    python bench/probes_at_scale.py --run --probes 2000 --interval 60 --duration 130 --hanging 0.1

Figures: checks/s achieved (and expected: probes / interval), schedule lag p50/p99/max
(start of the check minus the time it was due, measured inside the monitor), CPU of the
statusd process over the run (user + system, in cores), its peak RSS, and how the results
reached SQLite (transactions, rows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Scenario:
    """One run: `probes` HTTP probes every `interval_s`, a `hanging` fraction of them never answered."""

    name: str
    probes: int
    interval_s: float = 60.0
    duration_s: float = 150.0
    hanging: float = 0.0
    timeout_s: float = 10.0
    flush_s: float = 0.25  # 0: one transaction per result (no write-behind buffer)
    connector_limit: int = 100  # aiohttp's default, which is what statusd.app's ClientSession gets; 0 = none


    def args(self) -> list[str]:
        return ["--probes", str(self.probes), "--interval", str(self.interval_s), "--duration", str(self.duration_s),
                "--hanging", str(self.hanging), "--timeout", str(self.timeout_s), "--flush-s", str(self.flush_s),
                "--connector-limit", str(self.connector_limit), "--name", self.name]


SUITE = [
    Scenario("10k", 10_000),
    Scenario("10k-unbuffered", 10_000, flush_s=0.0),
    Scenario("1k", 1_000, duration_s=130.0),
    Scenario("1k-10%-hanging", 1_000, duration_s=130.0, hanging=0.1),
    # A thousand hung requests at once: only without aiohttp's default cap of 100 connections do
    # the healthy probes keep their schedule (with the cap, see bench/README.md).
    Scenario("10k-10%-hanging", 10_000, hanging=0.1, connector_limit=0),
]


# --- the target, in its own process ---------------------------------------------------------------


def serve_target() -> None:
    """Serve /ok/<n> and /hang/<n> on 127.0.0.1 and print the port; runs until stdin closes."""
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="late")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ok/{n}", ok)
        app.router.add_get("/hang/{n}", hang)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        # The parent closes our stdin when it is done (or dies): that is the signal to stop.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


# --- one scenario, in its own process -----------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_scenario(s: Scenario) -> dict[str, Any]:
    import aiohttp
    from prometheus_client import CollectorRegistry

    from probes.http import HttpConfig, HttpProbe
    from statusd.incidents.coordinator import Coordinator, PageInfo
    from statusd.core.clock import SystemClock
    from statusd.core.model import Component
    from statusd.metrics import Metrics
    from statusd.monitor.scheduler import Monitor
    from statusd.store.sqlite import SqliteStore

    class BenchMetrics(Metrics):
        """The real metrics object, also keeping every lag so quantiles are exact."""

        def __init__(self, registry: CollectorRegistry) -> None:
            super().__init__(registry)
            self.lags: dict[str, list[float]] = {"healthy": [], "hanging": []}
            self.slow: list[float] = []  # seconds since start of every healthy check that started 50 ms late or more
            self.started = time.perf_counter()
            self.checks = {"healthy": 0, "hanging": 0}
            self.failed = {"healthy": 0, "hanging": 0}

        def probe_lag(self, probe: str, lag_s: float) -> None:
            super().probe_lag(probe, lag_s)
            self.lags["hanging" if probe in hanging else "healthy"].append(lag_s)
            if lag_s >= 0.05 and probe not in hanging:
                self.slow.append(time.perf_counter() - self.started)

        def probe_result(self, result: Any) -> None:
            super().probe_result(result)
            kind = "hanging" if result.probe in hanging else "healthy"
            self.checks[kind] += 1
            self.failed[kind] += not result.ok

    class CountingStore(SqliteStore):
        """The SQLite store, counting write transactions."""

        transactions = 0

        def transaction(self, **options):  # type: ignore[override]
            CountingStore.transactions += 1
            return super().transaction(**options)

    target = subprocess.Popen([sys.executable, __file__, "--target"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert target.stdout is not None and target.stdin is not None
    port = int(target.stdout.readline())
    tmp = tempfile.TemporaryDirectory(prefix="statusd-bench-")
    try:
        clock = SystemClock()
        store = CountingStore(Path(tmp.name) / "statusd.db")
        await store.open()
        components = [Component(f"c{i:03d}", f"Component {i}", position=i) for i in range(100)]
        async with store.transaction() as tx:
            await tx.components.sync(components, clock.now())
        every = round(1 / s.hanging) if s.hanging else 0
        names = [f"p{i:05d}" for i in range(s.probes)]
        hanging = {n for i, n in enumerate(names) if every and i % every == every - 1}
        settings = {n: HttpConfig(name=n, type="http", component=components[i % len(components)].id,
                                  url=f"http://127.0.0.1:{port}/{'hang' if n in hanging else 'ok'}/{i}",
                                  interval_s=s.interval_s, timeout_s=s.timeout_s)
                    for i, n in enumerate(names)}
        metrics = BenchMetrics(CollectorRegistry(auto_describe=True))
        coordinator = Coordinator(store, clock, people={}, page=PageInfo("Bench", "http://127.0.0.1"),
                                  observer=metrics)
        connector = aiohttp.TCPConnector(limit=s.connector_limit)
        async with aiohttp.ClientSession(headers={"User-Agent": "statusd"}, connector=connector) as http:
            probes = {n: HttpProbe(c, http) for n, c in settings.items()}
            monitor = Monitor(store, coordinator, clock, probes, settings, observer=metrics, flush_s=s.flush_s)
            await monitor.restore()
            setup_transactions = CountingStore.transactions
            cpu_before, wall_before = cpu_s(), time.perf_counter()
            metrics.started = wall_before
            monitor.start()
            await asyncio.sleep(s.duration_s)
            cpu_used, wall = cpu_s() - cpu_before, time.perf_counter() - wall_before
            await monitor.stop()
        async with store.read() as r:
            rows = sum([len(await r.probe_results.recent(n, limit=1000)) for n in names[:200]])
            read_started = time.perf_counter()
            uptime = await r.components.uptime([c.id for c in components], 90, clock.now())
            uptime_read_s = time.perf_counter() - read_started
            checks_counted = sum(d.checks for days in uptime.values() for d in days)
        await store.close()
        db_bytes = sum(f.stat().st_size for f in Path(tmp.name).iterdir())
    finally:
        target.stdin.close()
        try:
            target.wait(10)
        except subprocess.TimeoutExpired:
            target.kill()
        tmp.cleanup()
    checks = metrics.checks["healthy"] + metrics.checks["hanging"]
    return {
        "scenario": s.name, "probes": s.probes, "interval_s": s.interval_s, "duration_s": round(wall, 1),
        "hanging": len(hanging), "flush_s": s.flush_s,
        "checks": checks, "checks_per_s": checks / wall, "expected_per_s": s.probes / s.interval_s,
        "failed_healthy": metrics.failed["healthy"], "failed_hanging": metrics.failed["hanging"],
        "lag_healthy_p50_ms": 1000 * quantile(metrics.lags["healthy"], 0.5),
        "lag_healthy_p99_ms": 1000 * quantile(metrics.lags["healthy"], 0.99),
        "lag_healthy_max_ms": 1000 * max(metrics.lags["healthy"], default=float("nan")),
        "lag_hanging_p99_ms": 1000 * quantile(metrics.lags["hanging"], 0.99),
        "slow_starts": len(metrics.slow), "slow_starts_first_s": min(metrics.slow, default=None),
        "slow_starts_last_s": max(metrics.slow, default=None), "connector_limit": s.connector_limit,
        "cpu_cores": cpu_used / wall,
        "cpu_us_per_check": 1e6 * cpu_used / max(1, checks),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "write_transactions": CountingStore.transactions - setup_transactions,
        "rows_first_200_probes": rows,
        "db_mib": db_bytes / 2**20,
        "uptime_read_ms": 1000 * uptime_read_s, "rollup_checks": checks_counted,
    }


async def run_prune(hours: float, probes: int, interval_s: float) -> dict[str, Any]:
    """Fill SQLite with `hours` of results from `probes` probes, then prune them all in one-minute slices."""
    from statusd.incidents.coordinator import Coordinator, PageInfo
    from statusd.core.clock import SystemClock
    from statusd.core.model import ProbeResult
    from statusd.monitor.scheduler import Monitor
    from statusd.store.sqlite import SqliteStore

    class TimedStore(SqliteStore):
        slices: list[float] = []

        def transaction(self, **options):  # type: ignore[override]
            outer = super().transaction(**options)
            timings = self.slices

            class Timed:
                async def __aenter__(self) -> Any:
                    self.started = time.perf_counter()
                    return await outer.__aenter__()

                async def __aexit__(self, *exc: Any) -> Any:
                    try:
                        return await outer.__aexit__(*exc)
                    finally:
                        timings.append(time.perf_counter() - self.started)

            return Timed()

    with tempfile.TemporaryDirectory(prefix="statusd-bench-") as tmp:
        store = TimedStore(Path(tmp) / "statusd.db")
        await store.open()
        clock = SystemClock()
        now = clock.now()
        start = now - timedelta(days=8)
        per_hour = int(probes * 3600 / interval_s)
        total = int(per_hour * hours)
        step = timedelta(seconds=3600 / per_hour)
        filled = time.perf_counter()
        for first in range(0, total, 10_000):
            async with store.transaction() as tx:
                await tx.probe_results.add_many([
                    ProbeResult(probe=f"p{i % probes:05d}", component=f"c{i % 100:03d}", at=start + i * step, ok=True,
                                latency_s=0.001, detail={"status_code": 200})
                    for i in range(first, min(total, first + 10_000))])
        filled = time.perf_counter() - filled
        store.slices.clear()
        monitor = Monitor(store, Coordinator(store, clock, people={}, page=PageInfo("Bench", "")), clock, {}, {},
                          retention=timedelta(days=7))
        started = time.perf_counter()
        deleted = await monitor.prune()
        elapsed = time.perf_counter() - started
        await store.close()
    return {"scenario": f"prune {hours:g} h", "rows": total, "fill_s": filled, "deleted": deleted,
            "prune_s": elapsed, "slices": len(store.slices), "slice_max_ms": 1000 * max(store.slices, default=0),
            "slice_p50_ms": 1000 * quantile(store.slices, 0.5)}


# --- the parent: run scenarios in child processes and print a table ---------------------------------------


def child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(r: dict[str, Any]) -> None:
    if r["scenario"].startswith("prune"):
        print(f"{r['scenario']}: {r['rows']:,} rows (filled in {r['fill_s']:.1f} s); pruned {r['deleted']:,} in "
              f"{r['prune_s']:.2f} s over {r['slices']} transactions, each p50 {r['slice_p50_ms']:.1f} ms, "
              f"max {r['slice_max_ms']:.1f} ms", flush=True)
        return
    hanging = f", {r['hanging']} of them hanging" if r["hanging"] else ""
    storing = f"results buffered every {r['flush_s']:g} s" if r["flush_s"] else "one transaction per result"
    limit = f"at most {r['connector_limit']} connections" if r["connector_limit"] else "no connection limit"
    print(f"{r['scenario']}: {r['probes']:,} probes every {r['interval_s']:g} s for {r['duration_s']:g} s{hanging};"
          f" {storing}; {limit}", flush=True)
    print(f"  checks/s        {r['checks_per_s']:8.1f}   (expected {r['expected_per_s']:.1f}; {r['checks']:,} checks,"
          f" {r['failed_healthy']} healthy failed, {r['failed_hanging']} hanging timed out)")
    print(f"  lag healthy     p50 {r['lag_healthy_p50_ms']:.1f} ms   p99 {r['lag_healthy_p99_ms']:.1f} ms   "
          f"max {r['lag_healthy_max_ms']:.1f} ms")
    if r["slow_starts"]:
        print(f"  ≥ 50 ms late    {r['slow_starts']} checks, between +{r['slow_starts_first_s']:.1f} s and "
              f"+{r['slow_starts_last_s']:.1f} s after start")
    if r["hanging"]:
        print(f"  lag hanging     p99 {r['lag_hanging_p99_ms']:.1f} ms")
    print(f"  CPU             {r['cpu_cores']:.3f} cores ({r['cpu_us_per_check']:.0f} µs per check)")
    print(f"  peak RSS        {r['peak_rss_mib']:.0f} MiB")
    print(f"  SQLite          {r['write_transactions']:,} write transactions, {r['db_mib']:.1f} MiB on disk")
    print(f"  uptime          90 days × 100 components read from the rollups in {r['uptime_read_ms']:.1f} ms"
          f" ({r['rollup_checks']:,} checks counted there)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", action="store_true", help="run one scenario in this process, print JSON")
    parser.add_argument("--prune", action="store_true", help="run the retention benchmark in this process")
    parser.add_argument("--scenario", choices=[s.name for s in SUITE] + ["prune"], help="run one scenario of the suite")
    parser.add_argument("--quick", action="store_true", help="the suite at a tenth of the probes and interval")
    parser.add_argument("--json", action="store_true", help="print raw JSON lines too")
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=150.0)
    parser.add_argument("--hanging", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--flush-s", type=float, default=0.25)
    parser.add_argument("--connector-limit", type=int, default=100, help="aiohttp connection limit (0 = none)")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--name", default="custom")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # as `statusd serve` does
    logging.getLogger("statusd.incidents").setLevel(logging.ERROR)  # "opened with no escalation policy", ×1000

    if args.target:
        serve_target()
        return
    if args.run:
        s = Scenario(args.name, args.probes, args.interval, args.duration, args.hanging, args.timeout, args.flush_s,
                     args.connector_limit)
        print(json.dumps(asyncio.run(run_scenario(s))))
        return
    if args.prune:
        print(json.dumps(asyncio.run(run_prune(args.hours, args.probes, args.interval))))
        return

    suite = SUITE
    if args.quick:
        suite = [Scenario(s.name, s.probes // 10, s.interval_s / 10, s.duration_s / 10 + 2, s.hanging,
                          s.timeout_s / 10, s.flush_s, s.connector_limit) for s in SUITE]
    if args.scenario:
        suite = [s for s in suite if s.name == args.scenario]
    print(f"statusd probes at scale — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs", flush=True)
    results = []
    for s in suite:
        results.append(child(["--run", *s.args()]))
        report(results[-1])
    if not args.scenario or args.scenario == "prune":
        probes = args.probes // 10 if args.quick else args.probes
        results.append(child(["--prune", "--hours", str(args.hours), "--probes", str(probes), "--interval", "60"]))
        report(results[-1])
    if args.json:
        for r in results:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
