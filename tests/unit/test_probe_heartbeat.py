"""The heartbeat (push) probe: pure time arithmetic, driven by a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from probes.heartbeat import HeartbeatConfig, HeartbeatProbe
from statusd.core.clock import FakeClock
from statusd.core.schema import Secret, load_section
from tests.conftest import assert_no_secret

TOKEN = "hb-0123456789abcdef"


def probe(**kw) -> HeartbeatProbe:
    kw.setdefault("interval_s", 60.0)
    kw.setdefault("grace_s", 30.0)
    return HeartbeatProbe(HeartbeatConfig(name="h", type="heartbeat", component="jobs", token=Secret(TOKEN), **kw),
                          None)


@pytest.mark.parametrize(("check_ins", "checked_at", "ok", "error"), [
    pytest.param([0], 0, True, "", id="just-checked-in"),
    pytest.param([0], 90, True, "", id="exactly-interval-plus-grace"),
    pytest.param([0], 91, False, "no check-in for 91s (expected every 60s)", id="one-second-late"),
    pytest.param([0, 60, 120], 200, True, "", id="regular-check-ins"),
    pytest.param([0, 60], 400, False, "no check-in for 340s (expected every 60s)", id="stopped"),
    pytest.param([120, 30], 200, True, "", id="late-arrival-does-not-move-back"),
    pytest.param([], 90, True, "", id="new-probe-within-window"),
    pytest.param([], 91, False, "never checked in", id="never-checked-in"),
])
async def test_check_in_windows(clock: FakeClock, check_ins, checked_at, ok, error) -> None:
    p = probe()
    start = clock.now()
    first = await p.check(start)  # the watch starts at the first check
    assert first.ok and p.created_at == start
    for offset in check_ins:
        p.check_in(start + timedelta(seconds=offset))
    clock.set(start + timedelta(seconds=checked_at))
    result = await p.check(clock.now())
    assert (result.ok, result.error) == (ok, error)
    assert result.probe == "h" and result.component == "jobs" and result.at == clock.now()
    assert result.latency_s == 0.0


async def test_detail_and_recovery(clock: FakeClock) -> None:
    p = probe(interval_s=300.0, grace_s=0.0)
    await p.check(clock.now())
    await clock.advance(301)
    assert (await p.check(clock.now())).error == "never checked in"
    p.check_in(clock.now())
    result = await p.check(clock.now())
    assert result.ok
    assert result.detail == {"last_check_in": clock.now().isoformat(), "expected_every_s": 300.0, "grace_s": 0.0,
                             "age_s": 0.0}
    await clock.advance(301)
    assert (await p.check(clock.now())).error == "no check-in for 301s (expected every 300s)"


def test_token_is_revealed_only_on_purpose() -> None:
    p = probe()
    assert p.token == TOKEN
    assert_no_secret(repr(p) + repr(p.config) + str(p.config), TOKEN)


@pytest.mark.parametrize(("table", "path"), [
    pytest.param({}, "probes.h.token", id="token-required"),
    pytest.param({"token": "short"}, "probes.h.token", id="token-too-short"),
    pytest.param({"token": "0123456789abcdef/x"}, "probes.h.token", id="token-not-url-safe"),
    pytest.param({"token": TOKEN, "grace_s": -1}, "probes.h.grace_s", id="negative-grace"),
    pytest.param({"token": TOKEN, "interval_s": 0}, "probes.h.interval_s", id="zero-interval"),
    pytest.param({"token": TOKEN, "url": "http://x"}, "probes.h.url", id="unknown-key"),
])
def test_config_problems_name_the_key(table, path) -> None:
    problems: list[tuple[str, str]] = []
    load_section(HeartbeatConfig, {"type": "heartbeat", **table}, "probes.h", problems, extra={"name": "h"})
    assert path in [p for p, _ in problems], problems
    assert_no_secret(repr(problems), *([table["token"]] if "token" in table else []))


def test_valid_config_loads() -> None:
    problems: list[tuple[str, str]] = []
    cfg = load_section(HeartbeatConfig, {"type": "heartbeat", "token": TOKEN, "interval_s": 3600},
                       "probes.h", problems, extra={"name": "h"})
    assert problems == [] and cfg.grace_s == 60.0 and cfg.token.reveal() == TOKEN
