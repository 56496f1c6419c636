"""A restart with a history of reports: how soon statusd answers, and how long the detector takes to relearn.

Writes N reports received over the last hours into a SQLite store in a temp dir (through
`SqliteStore`, as the intake stores them), starts a real `statusd serve` on it, and prints
the seconds from the start of the process until:

- `/healthz` answers (the status page and the API are up);
- the detector has relearnt the history (the "warmed up" log line);
- a report posted as soon as it answers gets its answer (during the replay: stored, and
  detected after the history).

    python bench/restart.py [--reports 40000] [--hours 3] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from banking77 import texts  # beside this script, whose folder is on the path
from report_ingest import TOKEN, free_port, write_config
from statusd.core.model import CustomerReport
from statusd.store.sqlite import SqliteStore


async def store_history(path: Path, n: int, hours: float) -> None:
    pool, rng, now = texts(), random.Random(1), datetime.now(UTC)
    store = SqliteStore(path)
    await store.open()
    try:
        for start in range(0, n, 2000):
            async with store.transaction() as tx:
                await tx.reports.add_many([CustomerReport(
                    source="helpdesk", client_id=f"c{i}", channel="chat", text=rng.choice(pool), created_at=now,
                    received_at=now - timedelta(seconds=(n - i) * hours * 3600 / n))
                    for i in range(start, min(n, start + 2000))])
    finally:
        await store.close()


async def first_answers(url: str, started: float) -> tuple[float, float]:
    """Seconds after `started` until /healthz answers, and until a report posted then is answered."""
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.02)
        up = time.monotonic() - started
        async with http.post(f"{url}/api/v1/reports", headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"client_id": "new", "text": "my card payment was declined"},
                             timeout=aiohttp.ClientTimeout(total=600)) as r:
            assert r.status == 202, await r.text()
        return up, time.monotonic() - started


def run(n: int, hours: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        config = write_config(folder, port)
        config.write_text(config.read_text().replace("rebuild_hours = 1.0", f"rebuild_hours = {hours + 1:g}"))
        asyncio.run(store_history(folder / "statusd.db", n, hours))
        log = folder / "serve.log"
        started = time.monotonic()
        with log.open("w") as out:
            server = subprocess.Popen([sys.executable, "-m", "statusd.cli.main", "serve", str(config)],
                                      stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            up, answered = asyncio.run(first_answers(f"http://127.0.0.1:{port}", started))
            deadline = time.monotonic() + 600
            while "warmed up" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=60)
        stamps = {m.group(2): datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in re.finditer(
            r"^(\S+ \S+) INFO statusd\.\w+: report detector (warming up|warmed up)", log.read_text(), re.M)}
        relearnt = (stamps["warmed up"] - stamps["warming up"]).total_seconds() if len(stamps) == 2 else float("nan")
        print(f"  {n:,} reports over {hours:g} h: /healthz after {up:.2f} s; replay {relearnt:.1f} s in the "
              f"background; a report posted at once answered after {answered:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=40_000)
    parser.add_argument("--hours", type=float, default=3.0, help="the history's span, ending now")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        run(args.reports, args.hours)


if __name__ == "__main__":
    main()
