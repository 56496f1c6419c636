"""Report texts for the load benchmarks: banking77's test set when ../shared/data/banking77 is there, else generated."""

from __future__ import annotations

import csv
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "banking77" / "test.csv"


def texts() -> list[str]:
    """Realistic texts (banking77), or random words, which never surge: the figures then say little."""
    if DATA.exists():
        with DATA.open(encoding="utf-8") as f:
            return [row["text"] for row in csv.DictReader(f)]
    print(f"({DATA} not found: using generated texts)")
    rng = random.Random(1)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(2000)]
    return [" ".join(rng.sample(words, 8)) for _ in range(3000)]
