"""Typed escalation policy and handoff read and write exactly the JSON the store already holds (no migration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from statusd.app import escalation_policies_from
from statusd.config.loader import parse_config
from statusd.core.clock import FakeClock
from statusd.core.model import Component, ComponentStatus, Person, Signal
from statusd.incidents.coordinator import Coordinator, PageInfo, Policy
from statusd.incidents.escalation import Escalation, EscalationPolicy, Fallback, Level
from statusd.incidents.handoff import Handoff
from statusd.store.sqlite import SqliteStore


def text(data: Any) -> str:
    """JSON text with key order and int/float kept: stricter than the store, which sorts keys."""
    return json.dumps(data)


def stored_text(data: Any) -> str:
    """The JSON text the SQLite store writes (sorted keys)."""
    return json.dumps(data, sort_keys=True)


# `Incident.escalation` as incidents carry it: what the coordinator has snapshotted since escalation
# policies exist ({"policy", "epoch", **policy}), with the configured policy's three keys.
STORED_ESCALATIONS = [
    pytest.param({"policy": "default", "epoch": 0,
                  "levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 300.0},
                             {"targets": ["dan", "schedule:backup"], "ack_timeout_s": 600.0}],
                  "repeat": 1, "fallback": {"notifier": "mail", "address": "team@example.com"}},
                 id="from-config"),
    pytest.param({"policy": "default", "epoch": 0, "levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 300}],
                  "repeat": 0, "fallback": None}, id="int-timeout-no-fallback"),
    pytest.param({"policy": "p", "epoch": 3, "levels": [], "repeat": 0, "fallback": None}, id="re-opened-thrice"),
    pytest.param({"policy": "night", "epoch": 1, "levels": [{"targets": [], "ack_timeout_s": 0.5}], "repeat": 2,
                  "fallback": {"notifier": "telegram", "address": "-100123"}}, id="odd-but-valid"),
]


@pytest.mark.parametrize("stored", STORED_ESCALATIONS)
def test_an_incidents_escalation_round_trips_exactly(stored: dict[str, Any]) -> None:
    typed = Escalation.from_json(stored)
    assert typed is not None
    assert text(typed.to_json()) == text(stored)
    assert text(Escalation.from_json(json.loads(text(stored))).to_json()) == text(stored)  # as read back from JSON


def test_no_policy_is_stored_as_an_empty_object() -> None:
    assert Escalation.from_json({}) is None


def test_the_typed_policy_says_what_the_json_says() -> None:
    typed = Escalation.from_json(STORED_ESCALATIONS[0].values[0])
    assert typed == Escalation("default", EscalationPolicy(
        levels=(Level(("schedule:primary",), 300.0), Level(("dan", "schedule:backup"), 600.0)), repeat=1,
        fallback=Fallback("mail", "team@example.com")))
    assert typed.reopened().to_json()["epoch"] == 1


def test_a_configured_policy_is_what_incidents_snapshot_today() -> None:
    config = parse_config({
        "people": {"ann": {"name": "Ann", "contacts": {"mail": "ann@example.com"}},
                   "dan": {"name": "Dan", "contacts": {"mail": "dan@example.com"}}},
        "notifiers": {"mail": {"type": "email"}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {
            "default": {"levels": [{"targets": ["schedule:primary"]}, {"targets": ["dan"], "ack_timeout_s": 120}],
                        "repeat": 1, "fallback": {"notifier": "mail", "address": "team@example.com"}},
            "plain": {"levels": [{"targets": ["ann"]}]}},
    }, {})
    policies = escalation_policies_from(config)
    # The plain data statusd.app built before the policy was typed, for the same config.
    assert {name: p.to_json() for name, p in policies.items()} == {
        "default": {"levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 300.0},
                               {"targets": ["dan"], "ack_timeout_s": 120}],
                    "repeat": 1, "fallback": {"notifier": "mail", "address": "team@example.com"}},
        "plain": {"levels": [{"targets": ["ann"], "ack_timeout_s": 300.0}], "repeat": 0, "fallback": None},
    }


# `Incident.handoff` as the coordinator has written it since handoffs exist.
STORED_HANDOFFS = [
    pytest.param({"from": "ann", "to": "bob", "note": "my shift ends", "at": "2026-03-02T09:00:00+00:00"},
                 id="commander-to-next"),
    pytest.param({"from": None, "to": "bob", "note": "", "at": "2026-03-02T09:00:00.123456+00:00"},
                 id="nobody-owned-it"),
]


@pytest.mark.parametrize("stored", STORED_HANDOFFS)
def test_a_handoff_round_trips_exactly(stored: dict[str, Any]) -> None:
    typed = Handoff.from_json(stored)
    assert text(typed.to_json()) == text(stored)
    assert typed.stamp == stored["at"]  # the handoff timer's payload and outbox keys name it this way
    assert typed.at.tzinfo is not None


def test_no_handoff_pending_is_stored_as_null() -> None:
    assert Handoff.pending(None) is None
    assert Handoff.pending(STORED_HANDOFFS[0].values[0]) == Handoff(
        "ann", "bob", "my shift ends", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


async def test_the_store_holds_the_same_json_as_before(sqlite_store: SqliteStore) -> None:
    """Through the coordinator and the store: what is written is today's shape, and what is read types back."""
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    async with sqlite_store.transaction() as tx:
        await tx.components.sync([Component("api", "API")], clock.now())
    people = {p: Person(p, p.capitalize(), {"mail": f"{p}@example.com"}) for p in ("ann", "bob")}
    policy = {"levels": [{"targets": ["ann"], "ack_timeout_s": 300}], "repeat": 0, "fallback": None}
    coordinator = Coordinator(sqlite_store, clock, people=people, escalation_policies={"default": policy},
                              policy=Policy(escalation_policy="default"), page=PageInfo("S", "http://s"))
    incident = await coordinator.handle(Signal("probe", "probe:api", ("api",), ComponentStatus.MAJOR_OUTAGE,
                                               "api failing", clock.now()))
    assert incident is not None
    await coordinator.acknowledge(incident.id, by="Ann", person="ann")
    await clock.advance(60)
    await coordinator.hand_off(incident.id, to="bob", note="my shift ends", by="Ann")
    async with sqlite_store.read() as r:
        stored = await r.incidents.get(incident.id)
    assert stored is not None
    assert stored_text(stored.escalation) == stored_text({"policy": "default", "epoch": 0, **policy})
    assert stored_text(stored.handoff) == stored_text({"from": "ann", "to": "bob", "note": "my shift ends",
                                                       "at": "2026-03-02T09:01:00+00:00"})
    escalation, handoff = Escalation.from_json(stored.escalation), Handoff.pending(stored.handoff)
    assert escalation is not None and handoff is not None
    assert stored_text(escalation.to_json()) == stored_text(stored.escalation)
    assert stored_text(handoff.to_json()) == stored_text(stored.handoff)
