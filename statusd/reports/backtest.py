"""Backtest of report detection: replay historical reports through the live detector on a virtual clock.

The rows come from statusd.reports.history; time is the rows' own, so days of reports replay
in seconds. The result is the incidents the detector would have opened, as JSON Lines
`{"opened_at": ISO-8601, "summary": str, "report_ids": [...]}` where report ids are the
rows' `id` values, or their line numbers when the input has no `id`, and, when the rows carry
labels, how well detection did against them (`statusd replay` prints both: statusd.cli.replay).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from statusd.reports.detector import ReportDetector
from statusd.reports.encoders import Encoder
from statusd.reports.history import ReplayRow
from statusd.reports.settings import ClusteringConfig, SurgeConfig


@dataclass(slots=True)
class ReplayIncident:
    """An incident the detector would have opened, with every report linked to it."""

    opened_at: datetime
    summary: str
    dedup_key: str
    group_key: str
    severity: str
    report_ids: list[str | int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSONL record: opened_at, summary, report_ids."""
        return {"opened_at": self.opened_at.isoformat(), "summary": self.summary, "report_ids": self.report_ids}


@dataclass(frozen=True, slots=True)
class BurstOutcome:
    """How one labelled burst fared."""

    label: str
    size: int
    first_at: datetime
    detected: bool
    delay_s: float | None
    linked: int  # reports linked to the burst's incidents
    correct: int  # of those, the burst's own


@dataclass(frozen=True, slots=True)
class ReplayMetrics:
    """Detection quality against the labels. Link precision/recall are means over detected bursts."""

    bursts: int
    detected: int
    recall: float
    recall_by_size: dict[int, tuple[int, int]]  # size → (detected, bursts)
    false_alarms: int
    days: float
    false_alarms_per_day: float
    median_delay_s: float | None
    link_precision: float | None
    link_recall: float | None
    ari_bursts: float | None  # grouping of the labelled reports vs their labels
    ari_topics: float | None  # grouping of every report vs its topic, when topics are given
    extra_incidents: int  # more than one incident for the same burst
    per_burst: tuple[BurstOutcome, ...] = ()


@dataclass(slots=True)
class ReplayResult:
    """What a replay produced: incidents, each row's group, and metrics when the input had labels."""

    incidents: list[ReplayIncident]
    groups: dict[str | int, str]  # row ref → group key the detector put it in
    reports: int
    metrics: ReplayMetrics | None = None

    def write_jsonl(self, out: TextIO) -> None:
        """Write the incidents as JSON Lines."""
        for incident in self.incidents:
            out.write(json.dumps(incident.to_json(), ensure_ascii=False) + "\n")


def replay(rows: Iterable[ReplayRow], *, detector: ReportDetector | None = None,
           clustering: ClusteringConfig | None = None, surge: SurgeConfig | None = None,
           encoder: Encoder | None = None) -> ReplayResult:
    """Feed rows (in time order) through the same detector the server runs and collect the incidents."""
    rows = list(rows)
    detector = detector or ReportDetector(clustering, surge, encoder)
    refs: dict[str, str | int] = {}
    incidents: list[ReplayIncident] = []
    open_by_key: dict[str, ReplayIncident] = {}
    groups: dict[str | int, str] = {}
    for row in rows:
        report = row.report()
        refs[report.id] = row.ref
        outcome = detector.observe(report)
        groups[row.ref] = outcome.group_key
        if outcome.signal is not None and outcome.opened:
            incident = ReplayIncident(outcome.signal.at, outcome.signal.summary, outcome.signal.dedup_key,
                                      outcome.group_key, outcome.signal.severity.value,
                                      [refs[i] for i in outcome.link_report_ids])
            incidents.append(incident)
            open_by_key[outcome.signal.dedup_key] = incident
        elif outcome.incident_key is not None and outcome.incident_key in open_by_key:
            incident = open_by_key[outcome.incident_key]
            incident.report_ids.extend(refs[i] for i in outcome.link_report_ids)
            if outcome.signal is not None:
                incident.severity = outcome.signal.severity.value
    # Merges relabel groups after the fact; report each row's final group.
    final = {ref: detector.clusterer.resolve(key) for ref, key in groups.items()}
    metrics = evaluate(rows, incidents, final) if any(r.label is not None for r in rows) else None
    return ReplayResult(incidents, final, len(rows), metrics)


# --- metrics -----------------------------------------------------------------------------


def adjusted_rand_index(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Hubert–Arabie adjusted Rand index of two partitions of the same items (1 = identical, ~0 = chance)."""
    if len(truth) != len(predicted):
        raise ValueError("adjusted_rand_index: the partitions must cover the same items")
    n = len(truth)
    if n < 2:
        return 1.0
    pairs = Counter(zip(truth, predicted))
    sum_cells = sum(math.comb(c, 2) for c in pairs.values())
    sum_truth = sum(math.comb(c, 2) for c in Counter(truth).values())
    sum_pred = sum(math.comb(c, 2) for c in Counter(predicted).values())
    total = math.comb(n, 2)
    expected = sum_truth * sum_pred / total
    best = (sum_truth + sum_pred) / 2
    if best == expected:  # both partitions trivial (all one group or all singletons)
        return 1.0 if sum_cells == best else 0.0
    return (sum_cells - expected) / (best - expected)


def evaluate(rows: Sequence[ReplayRow], incidents: Sequence[ReplayIncident],
             groups: Mapping[str | int, str]) -> ReplayMetrics:
    """Recall, false alarms, delay, link precision/recall and ARI of a replay against the rows' labels."""
    label_of = {r.ref: (r.label or "") for r in rows}
    bursts: dict[str, list[ReplayRow]] = defaultdict(list)
    for r in rows:
        if r.label:
            bursts[r.label].append(r)
    # Each incident belongs to the burst most of its labelled reports come from; none → false alarm.
    by_burst: dict[str, list[ReplayIncident]] = defaultdict(list)
    false_alarms = 0
    for incident in incidents:
        labels = Counter(label_of.get(ref, "") for ref in incident.report_ids)
        labels.pop("", None)
        if not labels:
            false_alarms += 1
            continue
        best = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        by_burst[best].append(incident)

    outcomes: list[BurstOutcome] = []
    for label, members in sorted(bursts.items()):
        first_at = min(r.received_at for r in members)
        found = by_burst.get(label, [])
        linked = {ref for inc in found for ref in inc.report_ids}
        own = {r.ref for r in members}
        delay = min((inc.opened_at - first_at).total_seconds() for inc in found) if found else None
        outcomes.append(BurstOutcome(label, len(members), first_at, bool(found), delay, len(linked),
                                     len(linked & own)))

    times = [r.received_at for r in rows]
    days = max((max(times) - min(times)).total_seconds() / 86400, 1 / 24) if times else 1.0
    detected = [o for o in outcomes if o.detected]
    by_size: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        by_size[o.size][0] += o.detected
        by_size[o.size][1] += 1
    labelled = [r for r in rows if r.label]
    topical = [r for r in rows if r.topic]
    return ReplayMetrics(
        bursts=len(outcomes), detected=len(detected),
        recall=len(detected) / len(outcomes) if outcomes else 0.0,
        recall_by_size={k: (v[0], v[1]) for k, v in sorted(by_size.items())},
        false_alarms=false_alarms, days=days, false_alarms_per_day=false_alarms / days,
        median_delay_s=statistics.median(o.delay_s for o in detected if o.delay_s is not None) if detected else None,
        link_precision=statistics.fmean(o.correct / o.linked for o in detected) if detected else None,
        link_recall=statistics.fmean(o.correct / o.size for o in detected) if detected else None,
        ari_bursts=adjusted_rand_index([r.label for r in labelled], [groups[r.ref] for r in labelled])
        if labelled else None,
        ari_topics=adjusted_rand_index([r.topic for r in topical], [groups[r.ref] for r in topical])
        if len(topical) == len(rows) and topical else None,
        extra_incidents=sum(max(0, len(v) - 1) for v in by_burst.values()),
        per_burst=tuple(outcomes),
    )


def format_metrics(m: ReplayMetrics) -> str:
    """A short human-readable summary of the metrics."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"
    sizes = ", ".join(f"{size}: {d}/{n}" for size, (d, n) in m.recall_by_size.items())
    delay = "n/a" if m.median_delay_s is None else f"{m.median_delay_s / 60:.1f} min"
    return "\n".join([
        f"bursts detected: {m.detected}/{m.bursts} (recall {pct(m.recall)}; by size {sizes or 'none'})",
        f"false alarms: {m.false_alarms} in {m.days:.2f} days ({m.false_alarms_per_day:.2f}/day)",
        f"median detection delay: {delay}",
        f"link precision {pct(m.link_precision)}, link recall {pct(m.link_recall)}",
        f"ARI of grouping: bursts {pct(m.ari_bursts)}, topics {pct(m.ari_topics)}",
    ])
