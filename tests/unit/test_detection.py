"""Thresholds turn probe results into Signals only when the state really flips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from statusd.core.model import ComponentStatus, ProbeResult
from statusd.monitor.thresholds import ProbeState, Thresholds, dedup_key, observe, rebuild

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def run(pattern: str, thresholds: Thresholds) -> str:
    """Feed a pattern of results ('.' ok, 'x' failing); return what fired per step ('F' fire, 'R' recover, '-')."""
    state = ProbeState()
    out = []
    for i, ch in enumerate(pattern):
        result = ProbeResult(probe="api", component="api", at=T0 + timedelta(seconds=30 * i), ok=ch == ".",
                             latency_s=0.01, error="" if ch == "." else "HTTP 503")
        state, signal = observe(state, result, thresholds)
        out.append("-" if signal is None else ("F" if signal.firing else "R"))
    return "".join(out)


@pytest.mark.parametrize(("pattern", "fail", "ok", "expected"), [
    pytest.param("x.x.x.", 2, 2, "------", id="alternating-never-fires"),
    pytest.param("xx", 2, 2, "-F", id="two-failures-fire"),
    pytest.param("xxxx", 2, 2, "-F--", id="fires-once-while-down"),
    pytest.param("xx..", 2, 2, "-F-R", id="two-successes-recover"),
    pytest.param("xx.x.x..", 2, 2, "-F-----R", id="flapping-keeps-one-outage"),
    pytest.param("x", 1, 1, "F", id="threshold-one"),
    pytest.param("xxx.", 3, 1, "--FR", id="asymmetric"),
    pytest.param("....", 2, 2, "----", id="healthy-is-quiet"),
])
def test_thresholds(pattern: str, fail: int, ok: int, expected: str) -> None:
    assert run(pattern, Thresholds(fail, ok)) == expected


def test_signal_carries_evidence_and_dedup_key() -> None:
    state = ProbeState()
    signal = None
    for i in range(2):
        result = ProbeResult(probe="api", component="api", at=T0 + timedelta(seconds=i), ok=False, latency_s=0.5,
                             error="HTTP 503", detail={"status_code": 503})
        state, signal = observe(state, result, Thresholds(2, 2, ComponentStatus.PARTIAL_OUTAGE))
    assert signal is not None and signal.firing
    assert signal.dedup_key == dedup_key("api") == "probe:api"
    assert signal.components == ("api",)
    assert signal.severity is ComponentStatus.PARTIAL_OUTAGE
    assert signal.evidence["status_code"] == 503
    assert signal.evidence["consecutive_failures"] == 2
    assert "HTTP 503" in signal.summary


def test_rebuild_after_restart_keeps_counting() -> None:
    # One failure before the restart and one after must fire, as if there had been no restart.
    before = [ProbeResult(probe="api", component="api", at=T0, ok=False, latency_s=0.1)]
    state = rebuild(before, Thresholds(2, 2), failing=False)
    result = ProbeResult(probe="api", component="api", at=T0 + timedelta(seconds=30), ok=False, latency_s=0.1)
    _, signal = observe(state, result, Thresholds(2, 2))
    assert signal is not None and signal.firing


def test_rebuild_of_failing_probe_recovers_rather_than_refires() -> None:
    state = rebuild([], Thresholds(2, 2), failing=True)
    ok = ProbeResult(probe="api", component="api", at=T0, ok=True, latency_s=0.1)
    state, first = observe(state, ok, Thresholds(2, 2))
    state, second = observe(state, ok, Thresholds(2, 2))
    assert first is None and second is not None and not second.firing
