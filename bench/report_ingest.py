"""Report ingest through the HTTP API with clustering on: sustained reports/s and latency percentiles.

Starts a real `statusd serve` (SQLite in a temp dir) as a separate process, then a load
generator in this process posts reports at a fixed offered rate over loopback with a
bounded number of requests in flight, and prints what was achieved. Texts are drawn from
../shared/data/banking77 when it is there (a realistic vocabulary), otherwise generated.

    python bench/report_ingest.py [--rate 1000] [--seconds 20] [--concurrency 64] [--batch 0]

Goal (issue 4): >= 1,000 reports/s sustained, p99 < 50 ms, on this 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from yarl import URL

from banking77 import texts  # beside this script, whose folder is on the path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-helpdesk-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, port: int, model: str | None = None) -> Path:
    path = folder / "statusd.toml"
    model_line = f"model = {json.dumps(str(Path(model).resolve()))}" if model else ""
    path.write_text(f"""
[server]
port = {port}
max_body_bytes = 4194304
[store]
path = "statusd.db"
[components.payments]
name = "Payments"
[reports]
rebuild_hours = 1.0
max_batch = 500
{model_line}
[tokens.helpdesk]
name = "Bench"
secret = "{TOKEN}"
scopes = ["reports:write"]
""")
    return path


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("statusd did not come up")


async def load(url: str, rate: float, seconds: float, concurrency: int, batch: int, pool: list[str],
               warmup: float = 0.0) -> None:
    """Offer `rate` reports/s on `concurrency` keep-alive connections; latency counts from each request's due time.

    The client writes pre-encoded HTTP/1.1 requests and reads Content-Length bodies on raw
    asyncio streams: about a tenth of aiohttp's client CPU, which matters when it shares
    the two cores with the server it measures. Latency starts when a request was due, not
    when a connection became free, so a server falling behind shows up in the figures.
    The first `warmup` seconds are reported apart: a cold server and the flood's first surges.
    """
    latencies: list[tuple[float, float]] = []  # (due since start, latency)
    errors = 0
    sent = 0
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    per_request = max(1, batch)
    interval = per_request / rate
    target = URL(url)
    path = "/api/v1/reports/batch" if batch else "/api/v1/reports"
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(concurrency):
        free.put_nowait(await asyncio.open_connection(target.host, target.port))

    def request() -> bytes:
        items = [{"client_id": f"client-{rng.randrange(50_000)}", "text": rng.choice(pool), "channel": "chat"}
                 for _ in range(per_request)]
        body = json.dumps({"reports": items} if batch else items[0]).encode()
        return (f"POST {path} HTTP/1.1\r\nHost: {target.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    async def one(due: float, data: bytes) -> None:
        nonlocal errors
        reader, writer = await free.get()
        try:
            writer.write(data)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status not in (200, 202):
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
            reader, writer = await asyncio.open_connection(target.host, target.port)
        latencies.append((due - start, loop.time() - due))
        free.put_nowait((reader, writer))

    tasks: set[asyncio.Task[None]] = set()  # only the ones in flight: a list of 30,000 done tasks slows the GC
    start = loop.time()
    n = 0
    while loop.time() - start < warmup + seconds:
        due = start + n * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due, request()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += per_request
        n += 1
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    while not free.empty():
        free.get_nowait()[1].close()
    print(f"offered {rate:.0f} reports/s for {warmup:g} + {seconds:g} s in "
          f"{'batches of ' + str(batch) if batch else 'single requests'}, {concurrency} connections")
    print(f"  achieved {sent / elapsed:.0f} reports/s ({len(latencies)} requests, {errors} errors)")
    windows: dict[int, list[float]] = {}
    for at, lat in latencies:
        windows.setdefault(int(at // 5) * 5, []).append(lat)
    print("  p99 per 5 s:", " ".join(f"{at}s {sorted(v)[int(0.99 * len(v))] * 1000:.0f}ms" for at, v in sorted(windows.items())))
    for label, part in (("first {:g} s".format(warmup), [lat for at, lat in latencies if at < warmup]),
                        ("after that", [lat for at, lat in latencies if at >= warmup])):
        if part:
            part.sort()
            q = lambda p: part[min(len(part) - 1, int(p * len(part)))] * 1000  # noqa: E731
            print(f"  {label}: latency p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {part[-1] * 1000:.1f} ms, "
                  f"mean {statistics.mean(part) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="offered reports per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds at the same rate, reported apart")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=0, help="reports per batch request (0 = one per request)")
    parser.add_argument("--model", help="a text model for [reports] model (statusd fit-model), e.g. a category "
                                        "model fitted on banking77's train.csv")
    args = parser.parse_args()
    pool = texts()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_config(Path(tmp), port, args.model)
        server = subprocess.Popen([sys.executable, "-m", "statusd.cli.main", "--log-level", "WARNING", "serve", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(wait_up(url))
            before, client_before = _cpu(server.pid), time.process_time()
            wall = time.monotonic()
            asyncio.run(load(url, args.rate, args.seconds, args.concurrency, args.batch, pool, args.warmup))
            wall = time.monotonic() - wall
            after, client = _cpu(server.pid), time.process_time() - client_before
            server_s, detector_s = after[0] - before[0], sum(after[1:]) - sum(before[1:])
            print(f"  CPU: statusd {server_s / wall:.2f} cores, its detector {detector_s / wall:.2f}, "
                  f"this load generator {client / wall:.2f}; statusd RSS {_rss_mib(server.pid):.0f} MiB "
                  f"(server and detector processes together)")
        finally:
            server.terminate()
            server.wait(timeout=30)


def _tree(pid: int) -> list[int]:
    """The server and its children (the detector's process), so their CPU and memory count too."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return [pid, *children]


def _cpu(pid: int) -> list[float]:
    """CPU seconds of the server, then of each of its children."""
    seconds = []
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            seconds.append(0.0)
            continue
        seconds.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return seconds


def _rss_mib(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:")) / 1024
    return total


if __name__ == "__main__":
    main()
