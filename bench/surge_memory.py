"""Memory of the report detector under a long flood: resident size as reports pile up in the surge windows.

Feeds a flood through one `ReportDetector` (TF-IDF, in this process) at `--rate` reports per
second of virtual time, texts from ../shared/data/banking77 (else generated), and prints the
process's resident size, the reports the surge windows hold, the rows the clustering's buffers
have grown to (window/group sums/history) and the time per report every `--every` reports. The surge window is 30 minutes, so at 1,000 reports/s the windows would
hold 1.8 million reports without `[reports] max_window_reports`.

    python bench/surge_memory.py [--reports 600000] [--rate 1000] [--max-window-reports 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banking77 import texts  # noqa: E402 - beside this script, whose folder is on the path
from statusd.reports.detector import ReportDetector  # noqa: E402
from statusd.reports.encoders import NgramEncoder  # noqa: E402
from statusd.reports.settings import SurgeConfig  # noqa: E402
from statusd.reports.text import Report  # noqa: E402

START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=600_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="reports per second of virtual time")
    parser.add_argument("--every", type=int, default=100_000, help="print a line every this many reports")
    parser.add_argument("--max-window-reports", type=int, default=SurgeConfig().max_window_reports,
                        help="the cap under test (default: the shipped default)")
    args = parser.parse_args()

    pool = texts()
    rng = random.Random(7)
    detector = ReportDetector(surge=SurgeConfig(max_window_reports=args.max_window_reports), encoder=NgramEncoder())
    print(f"flood of {args.reports:,} reports at {args.rate:g}/s, max_window_reports {args.max_window_reports:,}; "
          f"start RSS {rss_mib():.0f} MiB")
    t0 = time.perf_counter()
    lap = t0
    for i in range(1, args.reports + 1):
        # A fifth of the flood is one complaint from ever new clients, the rest the usual mix.
        text = "payment page shows error 502" if i % 5 == 0 else rng.choice(pool)
        detector.observe(Report(f"f{i}", f"c{rng.randrange(1_000_000)}", text,
                                START + timedelta(seconds=i / args.rate), channel="chat"))
        if i % args.every == 0:
            now = time.perf_counter()
            surge = detector.surge
            longest = max((len(s.window) for s in surge.states.values()), default=0)
            rows = "/".join(f"{n:,}" for n in detector.clusterer.capacities)
            print(f"  {i:>9,} reports: RSS {rss_mib():6.0f} MiB, windows hold {surge.held:>9,} "
                  f"(longest {longest:,}, groups {len(surge.states):,}), clustering rows {rows}, "
                  f"{(now - lap) / args.every * 1e3:.3f} ms per report")
            lap = now
    print(f"  overall {(time.perf_counter() - t0) / args.reports * 1e3:.3f} ms per report")


if __name__ == "__main__":
    main()
