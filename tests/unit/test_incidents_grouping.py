"""Where a firing signal goes and who is paged at each escalation step: the pure parts, on the fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from statusd.core.clock import FakeClock
from statusd.core.model import ComponentStatus, Impact, Incident, IncidentStatus, Signal
from statusd.incidents import grouping
from statusd.incidents.escalation import (
    EscalationPolicy,
    Exhausted,
    Fallback,
    Level,
    Page,
    Plan,
    Skip,
    duration,
    first_responder,
    plan,
)
from statusd.incidents.grouping import Placement


def incident(id_: int, opened_at: datetime, components: tuple[str, ...] = ("api",)) -> Incident:
    return Incident(id=id_, title="t", status=IncidentStatus.INVESTIGATING, impact=Impact.MAJOR,
                    components=components, opened_at=opened_at, updated_at=opened_at)


def signal(clock: FakeClock, source: str = "alertmanager", components: tuple[str, ...] = ("api",)) -> Signal:
    return Signal(source, f"{source}:1", components, ComponentStatus.MAJOR_OUTAGE, "down", clock.now())


@pytest.mark.parametrize(("own", "recent", "related", "placement"), [
    pytest.param(True, True, True, Placement.REFIRE, id="own-open-first"),
    pytest.param(False, True, True, Placement.REOPEN, id="recently-resolved-before-related"),
    pytest.param(False, False, True, Placement.JOIN, id="related-open"),
    pytest.param(False, False, False, Placement.OPEN, id="nothing-fits"),
])
def test_placement_order(own: bool, recent: bool, related: bool, placement: Placement) -> None:
    clock = FakeClock()
    a, b, c = (incident(n, clock.now()) for n in (1, 2, 3))
    placed = grouping.place(a if own else None, b if recent else None, c if related else None)
    assert placed.placement is placement
    assert placed.incident == {Placement.REFIRE: a, Placement.REOPEN: b, Placement.JOIN: c,
                               Placement.OPEN: None}[placement]


async def test_a_signal_joins_only_within_the_grouping_window() -> None:
    clock = FakeClock()
    opened = incident(1, clock.now())
    await clock.advance(299)
    since = grouping.join_since(signal(clock), clock.now(), 300.0)
    assert since is not None and grouping.related_open(signal(clock), [opened], since) == opened
    await clock.advance(2)
    since = grouping.join_since(signal(clock), clock.now(), 300.0)
    assert since is not None and grouping.related_open(signal(clock), [opened], since) is None
    # Customers confirming a known outage join it however old it is.
    since = grouping.join_since(signal(clock, "reports"), clock.now(), 300.0)
    assert since is not None and grouping.related_open(signal(clock, "reports"), [opened], since) == opened


@pytest.mark.parametrize(("components", "window_s"), [
    pytest.param((), 300.0, id="no-components"),
    pytest.param(("api",), 0.0, id="grouping-off"),
])
def test_no_join_without_components_or_window(components: tuple[str, ...], window_s: float) -> None:
    clock = FakeClock()
    assert grouping.join_since(signal(clock, components=components), clock.now(), window_s) is None


def test_a_related_incident_shares_a_component() -> None:
    clock = FakeClock()
    web, api = incident(1, clock.now(), ("web",)), incident(2, clock.now(), ("db", "api"))
    assert grouping.related_open(signal(clock), [web, api], clock.now() - timedelta(minutes=5)) == api
    assert grouping.combined_components(("db", "api"), ("api", "web")) == ("db", "api", "web")
    assert grouping.worse(Impact.MINOR, Impact.CRITICAL) is Impact.CRITICAL
    assert grouping.worse(Impact.MAJOR, Impact.MINOR) is Impact.MAJOR


ON_CALL = {"schedule:day": ["ann"], "schedule:empty": [], "dan": ["dan"], "cid": ["cid"]}


def on_call(targets: Sequence[str]) -> list[str]:
    return [p for t in targets for p in ON_CALL[t]]


RULES = EscalationPolicy(levels=(Level(("schedule:empty",), 60), Level(("schedule:day",), 300.0),
                                 Level(("dan", "cid"), 120)),
                         repeat=1, fallback=Fallback("mail", "team@example.com"))


@pytest.mark.parametrize(("step", "skipped", "then"), [
    pytest.param(0, (Skip(0, 0, ("schedule:empty",)),), Page(1, 1, ("ann",), 300.0, 60), id="step0-skips-empty"),
    pytest.param(2, (), Page(2, 2, ("dan", "cid"), 120, 300.0), id="step2-two-people"),
    pytest.param(3, (Skip(3, 0, ("schedule:empty",)),), Page(4, 1, ("ann",), 300.0, 60), id="round2"),
    pytest.param(6, (), Exhausted(2, Fallback("mail", "team@example.com")), id="after-last-round"),
])
def test_who_is_paged_at_each_step(step: int, skipped: tuple[Skip, ...], then: Page | Exhausted) -> None:
    assert plan(RULES, step, on_call) == Plan(skipped, then)


def test_nobody_on_call_anywhere_ends_at_the_fallback_and_no_levels_pages_nobody() -> None:
    empty = EscalationPolicy(levels=(Level(("schedule:empty",), 60),), repeat=2)
    steps = plan(empty, 0, on_call)
    assert [s.step for s in steps.skipped] == [0, 1, 2] and steps.then == Exhausted(3, None)
    assert plan(EscalationPolicy(), 0, on_call).then is None
    assert first_responder(RULES, on_call) == "ann" and first_responder(empty, on_call) is None


@pytest.mark.parametrize(("seconds", "said"), [(300, "5 min"), (90.0, "1.5 min"), (30, "30 s"), (0.5, "0.5 s")])
def test_timeouts_read_as_people_say_them(seconds: float, said: str) -> None:
    assert duration(seconds) == said
