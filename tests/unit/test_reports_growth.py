"""The clustering's buffers grow as the stream needs them, and growing changes no value the detector computes.

The same seeded stream (background, tagged reports, several topics, a surge, merges) goes
through a detector whose buffers are allocated at full size up front, as before they grew,
and through detectors whose buffers start tiny; every assignment, verdict, signal and the
state left behind must be bitwise the same.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from statusd.reports.buffers import moved, next_size
from statusd.reports.clustering import Clusterer
from statusd.reports.detector import ReportDetector
from statusd.reports.encoders import NgramEncoder
from statusd.reports.settings import ClusteringConfig, SurgeConfig
from statusd.reports.text import Report

START = datetime(2026, 3, 2, 6, tzinfo=UTC)
FULL = 1 << 30  # initial_rows above every cap: everything allocated up front, as before the buffers grew
TOPICS = {
    "card": "card payment declined terminal shop purchase rejected visa mastercard chip",
    "login": "login password app sign cannot access account locked code verification",
    "transfer": "transfer money sent arrived recipient pending bank wire delayed beneficiary",
    "atm": "atm cash withdrawal machine swallowed dispensed notes branch street",
    "refund": "refund returned merchant order cancelled money back waiting credited",
    "exchange": "exchange rate currency euro dollar conversion fee abroad charged",
}


def stream(seed: int, reports: int) -> list[Report]:
    """Background noise, tagged reports and topic chatter at a varying rate, with one burst of many clients."""
    rng = random.Random(seed)
    noise = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(4, 9))) for _ in range(3000)]
    words = {topic: text.split() for topic, text in TOPICS.items()}
    burst_at = reports * 2 // 3
    out: list[Report] = []
    at = START
    for i in range(reports):
        burst = burst_at <= i < burst_at + 40
        # Quiet hours, busy hours and the burst: the window fills and empties, the history subsamples.
        at += timedelta(seconds=2.0 if burst else rng.choice((1.0, 5.0, 20.0, 90.0)))
        roll = rng.random()
        tags: dict[str, str] = {}
        if burst:
            text = " ".join(rng.sample(words["card"], 5))
        elif roll < 0.35:
            topic = rng.choice(sorted(words))
            text = " ".join([*rng.sample(words[topic], rng.randint(3, 6)), *rng.sample(noise, rng.randint(0, 2))])
        elif roll < 0.45:
            text = " ".join(rng.sample(noise, 4))
            tags = {"component": rng.choice(("payments", "api", "web"))}
        else:
            text = " ".join(rng.sample(noise, rng.randint(3, 8)))
        client = f"burst{i}" if burst else f"c{rng.randrange(400)}"
        out.append(Report(f"r{i}", client, text, at, tags=tags))
    return out


def exact(value: Any) -> Any:
    """The value with every float as its hex form and every array as its bytes: equal only when bitwise equal."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return exact(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, *(exact(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, dict):
        return tuple((exact(k), exact(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(exact(v) for v in value)
    return value


def recorded(detector: ReportDetector, log: list[Any]) -> None:
    """Log every assignment and surge verdict the detector computes."""
    def wrap(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def logged(*args: Any, **kwargs: Any) -> Any:
            result = call(*args, **kwargs)
            log.append((name, exact(result)))
            return result
        return logged
    detector.clusterer.assign = wrap("assign", detector.clusterer.assign)  # type: ignore[method-assign]
    detector.surge.observe = wrap("verdict", detector.surge.observe)  # type: ignore[method-assign]


@dataclasses.dataclass
class Run:
    """One pass of the stream: what was computed, the detector left behind, the buffer sizes seen."""

    log: list[Any]
    detector: ReportDetector
    capacities: set[tuple[int, int, int]]
    surges: int = 0
    merges: int = 0


def run(reports: list[Report], clustering: ClusteringConfig, initial_rows: int) -> Run:
    detector = ReportDetector(clustering, SurgeConfig(), NgramEncoder(), initial_rows=initial_rows)
    result = Run([], detector, {detector.clusterer.capacities})
    recorded(detector, result.log)
    for report in reports:
        outcome = detector.observe(report)
        result.log.append(("outcome", exact(outcome)))
        result.capacities.add(detector.clusterer.capacities)
        result.surges += outcome.opened
        result.merges += len(outcome.merged)
    return result


def state(detector: ReportDetector, now: datetime) -> list[Any]:
    """What the detector would answer about every group it remembers, bitwise."""
    clusterer = detector.clusterer
    out = []
    for key in sorted(clusterer.groups):
        out.append((key, clusterer.members(key), exact(clusterer.vectors_of(key)), exact(clusterer.cohesion(key)),
                    exact(clusterer.history_matches(key)), exact(detector.surge.expected(key, now)),
                    detector.incident_reports(key)))
    return out


SMALL = ClusteringConfig(max_items=150, history_items=256, window_s=1800.0, history_s=6 * 3600.0)


@pytest.mark.parametrize(("clustering", "reports", "initial_rows"), [
    pytest.param(SMALL, 4000, 1, id="small-caps-from-one-row"),
    pytest.param(SMALL, 4000, 48, id="small-caps-from-48-rows"),
    pytest.param(ClusteringConfig(), 6000, 64, id="default-caps"),
])
def test_growing_buffers_compute_bitwise_what_full_ones_did(clustering: ClusteringConfig, reports: int,
                                                            initial_rows: int) -> None:
    items = stream(7, reports)
    full = run(items, clustering, FULL)
    grown = run(items, clustering, initial_rows)

    assert full.surges >= 1 and full.merges >= 1, "the stream must contain a surge and a merge"
    caps = (2 * clustering.max_items, clustering.max_items + 1, 2 * clustering.history_items)
    assert full.capacities == {caps}
    assert min(grown.capacities) == tuple(min(initial_rows, cap) for cap in caps)
    assert len(grown.capacities) >= 4  # the buffers grew, several times

    assert len(grown.log) == len(full.log) == 3 * len(items)
    for i, (a, b) in enumerate(zip(full.log, grown.log)):
        assert a == b, f"entry {i} ({a[0]}) differs"
    now = items[-1].received_at
    assert state(grown.detector, now) == state(full.detector, now)


def test_buffers_grow_up_to_their_caps_and_no_further() -> None:
    clusterer = Clusterer(SMALL, NgramEncoder(), initial_rows=2)
    assert clusterer.capacities == (2, 2, 2)
    for i, report in enumerate(stream(3, 3000)):  # one a second: the window stays full
        clusterer.assign(report.id, report.text, START + timedelta(seconds=i), report.tags)
        window, sums, history = clusterer.capacities
        assert window <= 2 * SMALL.max_items and sums <= SMALL.max_items + 1 and history <= 2 * SMALL.history_items
    assert clusterer.capacities[0] == 2 * SMALL.max_items
    assert clusterer.capacities[2] >= SMALL.history_items  # subsampling keeps it from needing the double


def test_an_idle_clusterer_holds_a_few_rows_not_the_caps() -> None:
    clusterer = Clusterer(ClusteringConfig(), NgramEncoder())
    assert clusterer.capacities == (64, 64, 64)
    with pytest.raises(ValueError, match="initial_rows"):
        Clusterer(ClusteringConfig(), NgramEncoder(), initial_rows=0)


@pytest.mark.parametrize(("size", "live", "cap", "expected"), [
    pytest.param(8, 5, 64, 16, id="over-half-live-doubles"),
    pytest.param(8, 4, 64, 8, id="half-live-moves-in-place"),
    pytest.param(48, 40, 64, 64, id="doubling-stops-at-the-cap"),
    pytest.param(64, 64, 64, 64, id="at-the-cap-stays"),
])
def test_next_size_doubles_only_when_over_half_the_rows_are_live(size: int, live: int, cap: int,
                                                                 expected: int) -> None:
    assert next_size(size, live, cap) == expected


def test_moved_keeps_values_and_order_and_zeros_the_new_rows() -> None:
    array = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    grown = moved(array, 8, 1, 3, "F")
    assert grown.flags.f_contiguous and grown.shape == (8, 3)
    assert np.array_equal(grown[:2], array[1:3]) and not grown[2:].any()
    same = moved(array, 4, 2, 4, "F")
    assert same is array and np.array_equal(same[:2], np.arange(6, 12, dtype=np.float32).reshape(2, 3))
