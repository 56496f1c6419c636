"""The detector the intake calls once per report: group it, then test its group for a surge.

`ReportDetector` groups the report (statusd.reports.clustering) and runs the surge test
(statusd.reports.surge) on its group. Like `statusd.monitor.thresholds` it is a pure function
of its inputs — no I/O, no wall clock, time is the reports' `received_at` — but it keeps its
state in place, because copying a window of vectors per report would cost far more than the
report itself. After a restart, `rebuild` replays recent reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

import numpy as np

from statusd.core.model import Signal
from statusd.reports.clustering import Assignment, Clusterer
from statusd.reports.encoders import Encoder
from statusd.reports.outcome import ReportOutcome
from statusd.reports.settings import ClusteringConfig, SurgeConfig
from statusd.reports.surge import History, SurgeTest, SurgeVerdict
from statusd.reports.text import Report


class ReportDetector:
    """Groups each report and tests its group for a surge; call `observe` once per report, in time order.

    `initial_rows` sizes the clustering's buffers at first; they grow as the stream needs (`Clusterer`).
    """

    def __init__(self, clustering: ClusteringConfig | None = None, surge: SurgeConfig | None = None,
                 encoder: Encoder | None = None, *, learn: bool = True, initial_rows: int = 64) -> None:
        self.clusterer = Clusterer(clustering, encoder, learn=learn, initial_rows=initial_rows)
        self.surge = SurgeTest(surge)
        self._swept_at: datetime | None = None
        self._rebuilt: dict[str, ReportOutcome] = {}  # incident key → latest outcome that signalled in `rebuild`

    def observe(self, report: Report) -> ReportOutcome:
        """Fold one report in; the returned Signal (if any) goes to the coordinator."""
        at = report.received_at
        assignment: Assignment = self.clusterer.assign(report.id, report.text, at, report.tags)
        key = assignment.group_key
        for absorbed, into in assignment.merged:
            self.surge.merge(into, absorbed)
        self._sweep(at)
        group = self.clusterer.groups.get(key)
        history = None if group is None or group.tagged else self._history(key, at)
        verdict = self.surge.observe(key, report, history)
        signal = None
        if verdict.fire:
            self.clusterer.pin(key)
            signal = self._signal(key, report, verdict)
        return ReportOutcome(report.id, key, signal, verdict.incident_key, verdict.link_report_ids,
                             opened=verdict.fire and not verdict.escalated, merged=assignment.merged)

    def rebuild(self, reports: Iterable[Report]) -> list[ReportOutcome]:
        """Warm up after a restart from recent stored reports, oldest first; returns the surges still active.

        Their signals are not sent from here: most were handled before the restart. But a process
        killed between storing a report and handling its surge lost that signal, or the links of
        its reports. So each surge that fired while warming up and is still active comes back as
        its latest outcome, linking every report of the surge, for the caller to check against the
        incidents (`ReportPipeline.rebuild`). Calls add up: the rebuild may come in chunks.
        """
        for report in reports:
            outcome = self.observe(report)
            if outcome.signal is not None and outcome.incident_key is not None:
                self._rebuilt[outcome.incident_key] = outcome
        active = {incident_key: key for key, incident_key in self.surge.active().items()}
        return [replace(outcome, group_key=active[incident_key],
                        link_report_ids=self.surge.incident_reports(active[incident_key]))
                for incident_key, outcome in self._rebuilt.items() if incident_key in active]

    def members(self, group_key: str) -> tuple[str, ...]:
        """Report ids of the group in the clustering window."""
        return self.clusterer.members(group_key)

    def incident_reports(self, group_key: str) -> tuple[str, ...]:
        """Report ids linked to the group's current or last surge."""
        return self.surge.incident_reports(self.clusterer.resolve(group_key))

    def _history(self, key: str, at: datetime) -> History:
        clusterer = self.clusterer

        def history() -> tuple[list[datetime], np.ndarray, float]:
            times, weights = clusterer.history_matches(key)
            return times, weights, clusterer.history_span_s(at)
        return history

    def _sweep(self, now: datetime) -> None:
        # Housekeeping a few times per surge window: end quiet surges, drop state of forgotten groups.
        if self._swept_at is not None and (now - self._swept_at).total_seconds() < self.surge.config.window_s / 4:
            return
        self._swept_at = now
        for key in self.surge.end_quiet(now):
            self.clusterer.unpin(key)
        groups = self.clusterer.groups
        for key in [k for k, s in self.surge.states.items()
                    if k not in groups and k.startswith("text:") and s.incident_key is None]:
            self.surge.forget(key)

    def _signal(self, key: str, report: Report, verdict: SurgeVerdict) -> Signal:
        window = self.surge.window(key)
        component = self._component(key, window)
        texts = self._samples(key, window)
        span_s = verdict.span_s or self.surge.config.window_s
        clients = verdict.span_clients or verdict.distinct_clients
        about = f"{component}: " if component else ""
        verb = "grew to" if verdict.escalated else "surge:"
        summary = (f"{about}customer reports {verb} {clients} clients in {max(1, round(span_s / 60))} min "
                   f"(usually {verdict.expected:.2g}), e.g. \u201c{_clip(texts[0] if texts else report.text)}\u201d")
        channels = Counter(r.channel for r in window)
        regions = Counter(r.tags.get("region") for r in window if r.tags.get("region"))
        evidence = {
            "group_key": key,
            "counts": {"reports": verdict.reports, "by_channel": dict(sorted(channels.items())),
                       "by_region": dict(sorted(regions.items()))},
            "distinct_clients": verdict.distinct_clients,
            "expected": round(verdict.expected, 3),
            "p_value": float(f"{verdict.p_value:.3g}"),
            "window_s": self.surge.config.window_s,
            "span_s": round(span_s, 1),  # what `expected` and `p_value` were measured on
            "span_clients": clients,
            "sample_texts": [_clip(t) for t in texts[:5]],
            "report_ids": list(verdict.link_report_ids),
        }
        assert verdict.severity is not None and verdict.incident_key is not None
        return Signal(source="reports", dedup_key=verdict.incident_key,
                      components=(component,) if component else (), severity=verdict.severity,
                      summary=summary, at=report.received_at, firing=True, evidence=evidence)

    def _component(self, key: str, window: list[Report]) -> str | None:
        for part in key.split("/"):
            if part.startswith("component:"):
                return part.removeprefix("component:")
        named = Counter(r.tags["component"] for r in window if r.tags.get("component"))
        if named:
            component, n = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            if n * 2 >= len(window):  # only when most of the group says so
                return component
        return None

    def _samples(self, key: str, window: list[Report]) -> list[str]:
        """Up to five distinct texts, the most typical of the group first."""
        ids, vectors = self.clusterer.vectors_of(key)
        order: list[str] = []
        if len(ids) >= 2:
            centre = vectors.mean(axis=0)
            scores = vectors @ centre
            order = [ids[i] for i in np.argsort(-scores, kind="stable")]
        texts_by_id = {r.id: r.text for r in window}
        out: list[str] = []
        for rid in [*order, *texts_by_id]:
            text = texts_by_id.get(rid)
            if text and text not in out:
                out.append(text)
            if len(out) == 5:
                break
        return out


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
