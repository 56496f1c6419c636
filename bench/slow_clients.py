"""Slow clients against `statusd serve` with a small open-file limit (issue 18, Security 3); prints figures.

    .venv/bin/python bench/slow_clients.py [--connections 1100] [--nofile 1024] [--duration-s 40]
    PYTHONPATH=/path/to/another/checkout .venv/bin/python bench/slow_clients.py   # the same run on other code

The server runs in a subprocess whose RLIMIT_NOFILE is `--nofile`. This process opens `--connections`
connections that send the start of a request and then one header byte every 5 s (a slowloris),
and meanwhile asks /healthz once a second (5 s timeout). It prints how many slow connections the
server closed and how fast, how many normal requests were answered, the longest stretch without an
answer, and how many bytes the server logged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


async def _slow(port: int, opened: list[float], closed: list[float], failed: list[str], stop: asyncio.Event) -> None:
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
    except (OSError, TimeoutError) as exc:
        failed.append(type(exc).__name__)
        return
    opened.append(time.monotonic() - start)
    began = time.monotonic()
    eof = asyncio.ensure_future(reader.read())
    try:
        while not stop.is_set():
            done, _ = await asyncio.wait([eof, asyncio.ensure_future(stop.wait())], timeout=5,
                                         return_when=asyncio.FIRST_COMPLETED)
            if eof in done:
                closed.append(time.monotonic() - began)
                return
            try:
                writer.write(b"X")
                await writer.drain()
            except OSError:
                closed.append(time.monotonic() - began)
                return
    finally:
        eof.cancel()
        writer.close()


async def _probe(port: int, results: list[tuple[float, float | None]], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while not stop.is_set():
            at = time.monotonic()
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz",
                                    headers={"Connection": "close"}) as resp:
                    await resp.read()
                    results.append((at, time.monotonic() - at if resp.status == 200 else None))
            except (aiohttp.ClientError, TimeoutError, OSError):
                results.append((at, None))
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - at)))


async def _run(args: argparse.Namespace, port: int) -> tuple[list[float], list[float], list[str],
                                                              list[tuple[float, float | None]]]:
    opened: list[float] = []
    closed: list[float] = []
    failed: list[str] = []
    probes: list[tuple[float, float | None]] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(port, probes, stop))
    slow = [asyncio.create_task(_slow(port, opened, closed, failed, stop)) for _ in range(args.connections)]
    await asyncio.sleep(args.duration_s)
    stop.set()
    await asyncio.gather(probe, *slow)
    return opened, closed, failed, probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--duration-s", type=float, default=40)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this side needs a descriptor per connection
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "statusd.toml")
        config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {args.port}\n[store]\npath = "{tmp}/statusd.db"\n')
        log_path = Path(tmp, "server.log")
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "statusd.cli.main", "serve", str(config)], stdout=log, stderr=log,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile)),
                env=os.environ.copy(), cwd=tmp)  # not this checkout: PYTHONPATH may name another
            try:
                for _ in range(300):
                    if b"is up" in log_path.read_bytes():
                        break
                    time.sleep(0.1)
                else:
                    raise SystemExit(f"the server did not start:\n{log_path.read_text()}")
                started = time.monotonic()
                opened, closed, failed, probes = asyncio.run(_run(args, args.port))
            finally:
                server.terminate()
                server.wait(30)
        log_bytes = log_path.stat().st_size
    answered = [latency for _, latency in probes if latency is not None]
    longest, gap_start = 0.0, None
    for at, latency in probes:
        if latency is None and gap_start is None:
            gap_start = at
        elif latency is not None and gap_start is not None:
            longest, gap_start = max(longest, at - gap_start), None
    if gap_start is not None:
        longest = max(longest, started + args.duration_s - gap_start)
    print(f"ulimit -n {args.nofile}, {args.connections} slow connections, {args.duration_s:.0f} s")
    print(f"  slow connections opened: {len(opened)}, failed to open: {len(failed)}")
    if closed:
        print(f"  closed by the server: {len(closed)} ({sum(c < 1 for c in closed)} within 1 s, "
              f"median after {statistics.median(closed):.1f} s, "
              f"max {max(closed):.1f} s); still open at the end: {len(opened) - len(closed)}")
    else:
        print(f"  closed by the server: 0; still open at the end: {len(opened)}")
    print(f"  /healthz once a second: {len(answered)}/{len(probes)} answered, "
          f"median {statistics.median(answered) * 1000 if answered else float('nan'):.0f} ms, "
          f"longest stretch without an answer {longest:.0f} s")
    print(f"  server log: {log_bytes} bytes")


if __name__ == "__main__":
    main()
