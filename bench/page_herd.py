"""The public page under a herd: everyone opens the status page and /api/v2 at once during an outage.

Starts a real `statusd serve` (SQLite in a temp dir, 20 components, one open incident with a few
updates, 90 days of uptime bars) as a separate process, then keeps `--concurrency` requests in
flight from this process for `--seconds`, alternating `GET /` and `GET /api/v2/summary.json`,
and prints requests/s, latency percentiles and the server's CPU and RSS. Where Debian's `wrk` is
installed it generates the load instead (one run per path), since this Python client saturates a
core long before the server does.

    python bench/page_herd.py [--seconds 15] [--concurrency 100] [--cache-s 5] [--statusd PATH]

`--statusd` runs another installation's `statusd` command (e.g. an older checkout's venv), so two
versions can be measured back to back on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from report_ingest import free_port, wait_up  # beside this script, whose folder is on the path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-support-token-0123456789"
COMPONENTS = 20
PATHS = ("/", "/api/v2/summary.json")



def write_config(folder: Path, port: int, cache_s: float) -> Path:
    components = "\n".join(f'[components.c{i}]\nname = "Component {i}"\n' + ('group = "Core"\n' if i % 2 else "")
                           for i in range(COMPONENTS))
    path = folder / "statusd.toml"
    path.write_text(f"""
[server]
port = {port}
[store]
path = "statusd.db"
[page]
title = "Bench Inc. status"
cache_s = {cache_s}
{components}
[tokens.support]
name = "Support"
secret = "{TOKEN}"
scopes = ["incidents:write"]
""")
    return path


async def seed(http: aiohttp.ClientSession, url: str) -> None:
    """One open incident on two components, with three public updates."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(url + "/api/v1/incidents", headers=auth, json={
            "title": "Slow card payments", "body": "Some card payments take minutes.",
            "components": ["c0", "c1"], "component_status": "partial_outage", "notify": False}) as r:
        r.raise_for_status()
        incident = (await r.json())["incident"]["id"]
    for i, status in enumerate(("identified", "monitoring", "monitoring")):
        async with http.post(f"{url}/api/v1/incidents/{incident}/updates", headers=auth, json={
                "body": f"Update {i + 1}: we are on it.", "status": status, "notify": False}) as r:
            r.raise_for_status()


async def herd(http: aiohttp.ClientSession, url: str, seconds: float, concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal errors
        i = n
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with http.get(url + PATHS[i % len(PATHS)]) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            i += 1

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return latencies, errors


def wrk(url: str, seconds: float, concurrency: int) -> tuple[float, str, str]:
    """requests/s, p50 and p99 as wrk prints them, for one path."""
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"\s50%\s+(\S+)", out).group(1)
    p99 = re.search(r"\s99%\s+(\S+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{errors.group(1)} failed requests to {url}")
    return rate, p50, p99


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_config(Path(tmp), port, args.cache_s)
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([args.statusd, "--log-level", "WARNING", "serve", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=connector) as http:
                await wait_up(url)
                await seed(http, url)
                await herd(http, url, 2.0, args.concurrency)  # warm-up: connections, caches
                cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
                if args.client == "wrk":
                    results = [(path, *wrk(url + path, args.seconds / len(PATHS), args.concurrency))
                               for path in PATHS]
                else:
                    latencies, errors = await herd(http, url, args.seconds, args.concurrency)
                cpu = (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0)
                rss = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"page herd: {args.concurrency} connections for {args.seconds:g} s, cache_s {args.cache_s:g}, "
          f"load from {args.client} ({args.statusd})")
    if args.client == "wrk":
        for path, rate, p50, p99 in results:
            print(f"  GET {path}: {rate:,.0f} requests/s, latency p50 {p50}, p99 {p99}")
    else:
        q = statistics.quantiles(latencies, n=100)
        print(f"  GET / and /api/v2/summary.json: {len(latencies) / args.seconds:,.0f} requests/s "
              f"({len(latencies):,} requests, {errors} errors)")
        print(f"  latency p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    print(f"  server CPU {cpu:.2f} cores, RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--cache-s", type=float, default=5.0, help="[page] cache_s of the server (0: no cache)")
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                        help="load generator (default: wrk where installed)")
    parser.add_argument("--statusd", default=str(ROOT / ".venv" / "bin" / "statusd"),
                        help="the statusd command to run (default: this checkout's .venv)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
