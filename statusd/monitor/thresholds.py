"""Probe results → Signals: failure/success thresholds as a pure function of (state, result).

A probe must fail `failure_threshold` times in a row before its Signal fires, and succeed
`success_threshold` times in a row before it recovers, so one lost packet neither opens nor
closes an incident and a flapping target keeps its one incident open.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from statusd.core.model import ComponentStatus, ProbeResult, Signal


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How many results in a row flip a probe's state, and what the failing state means."""

    failure_threshold: int = 2
    success_threshold: int = 2
    severity: ComponentStatus = ComponentStatus.MAJOR_OUTAGE


@dataclass(frozen=True, slots=True)
class ProbeState:
    """What the detector remembers about one probe."""

    failing: bool = False
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive
    since: datetime | None = None  # when the current failing/healthy state began


def dedup_key(probe: str) -> str:
    """The dedup key of every Signal a probe emits: one outage of one probe is one incident."""
    return f"probe:{probe}"


def observe(state: ProbeState, result: ProbeResult, thresholds: Thresholds) -> tuple[ProbeState, Signal | None]:
    """Fold one result into the state; return the new state and a Signal when the state flips."""
    if result.ok:
        state = replace(state, successes=state.successes + 1, failures=0)
        if state.failing and state.successes >= thresholds.success_threshold:
            state = replace(state, failing=False, since=result.at)
            return state, _signal(result, thresholds, firing=False)
        return state, None
    state = replace(state, failures=state.failures + 1, successes=0)
    if not state.failing and state.failures >= thresholds.failure_threshold:
        state = replace(state, failing=True, since=result.at)
        return state, _signal(result, thresholds, firing=True, failures=state.failures)
    return state, None


def rebuild(results_newest_first: Iterable[ProbeResult], thresholds: Thresholds, *, failing: bool) -> ProbeState:
    """The state after a restart: `failing` as the store says (an open incident), counters from recent results."""
    state = ProbeState(failing=failing)
    for result in reversed(list(results_newest_first)):
        if result.ok:
            state = replace(state, successes=state.successes + 1, failures=0)
        else:
            state = replace(state, failures=state.failures + 1, successes=0)
    return state


def _signal(result: ProbeResult, thresholds: Thresholds, *, firing: bool, failures: int = 0) -> Signal:
    components = (result.component,) if result.component else ()
    if firing:
        summary = f"{result.probe} is failing: {result.error or 'check failed'}"
    else:
        summary = f"{result.probe} has recovered"
    evidence = {"probe": result.probe, "latency_s": round(result.latency_s, 4), "error": result.error, **result.detail}
    if firing:
        evidence["consecutive_failures"] = failures
    return Signal(source="probe", dedup_key=dedup_key(result.probe), components=components,
                  severity=thresholds.severity, summary=summary, at=result.at, firing=firing, evidence=evidence)
