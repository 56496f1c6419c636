"""Escalation: the typed policy an incident snapshots when it opens, who is paged at each step, and the pages.

An incident stores its escalation as the JSON object `Incident.escalation`:
`{"policy", "epoch", "levels": [{"targets", "ack_timeout_s"}], "repeat", "fallback": {"notifier", "address"} | null}`,
or, when it opened without a policy, `{}` (`{"epoch"}` once it re-opened). The types here read and write exactly
that object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from statusd.core.model import EntryKind, Incident, OutboxMessage, TimelineEntry, Timer
from statusd.core.protocols import Tx
from statusd.incidents.messages import Messages
from statusd.incidents.routing import Roster, alert_key, fallback_key, page_cycle

log = logging.getLogger(__name__)

#: The timers that page the next level; acknowledging an incident cancels them.
ESCALATION_TIMERS = ("escalate",)


@dataclass(frozen=True, slots=True)
class Level:
    """One level: whom to page (person ids or `schedule:<name>`) and how long they have to acknowledge."""

    targets: tuple[str, ...]
    ack_timeout_s: float


@dataclass(frozen=True, slots=True)
class Fallback:
    """Where to write when every round went unacknowledged: one address on one notifier."""

    notifier: str
    address: str

    def to_json(self) -> dict[str, str]:
        """The stored JSON object."""
        return {"notifier": self.notifier, "address": self.address}


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """Levels paged in order until someone acknowledges, the whole list `repeat` more times, then the fallback."""

    levels: tuple[Level, ...] = ()
    repeat: int = 0
    fallback: Fallback | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object (without the snapshot's `policy` and `epoch`)."""
        return {"levels": [{"targets": list(level.targets), "ack_timeout_s": level.ack_timeout_s}
                           for level in self.levels],
                "repeat": self.repeat,
                "fallback": None if self.fallback is None else self.fallback.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EscalationPolicy:
        """The policy a stored JSON object describes; a missing `repeat` is 0, a missing `fallback` none."""
        fallback = data.get("fallback")
        return cls(levels=tuple(Level(tuple(level["targets"]), level["ack_timeout_s"])
                                for level in data.get("levels") or ()),
                   repeat=int(data.get("repeat", 0)),
                   fallback=Fallback(fallback["notifier"], fallback["address"]) if fallback else None)

    @classmethod
    def of(cls, policy: EscalationPolicy | Mapping[str, Any]) -> EscalationPolicy:
        """`policy` typed: configured policies may still be given as their JSON objects."""
        return policy if isinstance(policy, EscalationPolicy) else cls.from_json(policy)


@dataclass(frozen=True, slots=True)
class Escalation:
    """An incident's escalation: its policy as it was when the incident opened, and which round of pages this is."""

    policy: str
    rules: EscalationPolicy
    epoch: int = 0  # one more each time the incident re-opens, so its pages get fresh outbox keys

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object (`Incident.escalation`)."""
        return {"policy": self.policy, "epoch": self.epoch, **self.rules.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Escalation | None:
        """The escalation a stored JSON object describes; None without a policy (`{}`, or `{"epoch"}` once re-opened)."""
        if "policy" not in data:
            return None
        return cls(policy=data.get("policy") or "", rules=EscalationPolicy.from_json(data),
                   epoch=int(data.get("epoch", 0)))

    def reopened(self) -> Escalation:
        """This escalation for a re-opened incident: the same policy, paged afresh."""
        return replace(self, epoch=self.epoch + 1)


def stored(escalation: Escalation | None) -> dict[str, Any]:
    """An escalation as `Incident.escalation` stores it (`{}` for none)."""
    return {} if escalation is None else escalation.to_json()


def reopened_json(escalation: Mapping[str, Any]) -> dict[str, Any]:
    """A stored escalation as it becomes when its incident re-opens: the next page cycle, policy or not."""
    typed = Escalation.from_json(escalation)
    # Without a policy only the epoch is kept: ack links in handoff requests and reminders are bound to it too.
    return {"epoch": page_cycle(escalation) + 1} if typed is None else typed.reopened().to_json()


# --- who is paged next (pure) ------------------------------------------------------------

#: Person ids on call for a level's targets, in order, once each.
OnCall = Callable[[Sequence[str]], list[str]]


@dataclass(frozen=True, slots=True)
class Skip:
    """A level passed over because nobody in it was on call."""

    step: int
    level: int
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Page:
    """Page `people` at `step` (level `level`); unless someone acknowledges within `ack_timeout_s`, step + 1 follows."""

    step: int
    level: int
    people: tuple[str, ...]
    ack_timeout_s: float
    waited_s: float | None  # how long the previous level had (None at step 0)


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Every round went unacknowledged: tell the fallback, if there is one; nothing follows."""

    rounds: int
    fallback: Fallback | None


@dataclass(frozen=True, slots=True)
class Plan:
    """What escalation step `step` does: the levels it skips, then a page, the fallback, or (no levels) nothing."""

    skipped: tuple[Skip, ...]
    then: Page | Exhausted | None


def plan(rules: EscalationPolicy, step: int, on_call: OnCall) -> Plan:
    """Step `step` is level `step % levels` of round `step // levels`; levels with nobody on call are skipped."""
    levels = rules.levels
    skipped: list[Skip] = []
    if not levels:
        return Plan((), None)
    for _ in range(len(levels) * (rules.repeat + 1) + 1):  # enough to reach the fallback with every level empty
        round_, index = divmod(step, len(levels))
        if round_ > rules.repeat:
            return Plan(tuple(skipped), Exhausted(rules.repeat + 1, rules.fallback))
        level = levels[index]
        people = on_call(level.targets)
        if people:
            waited = None if step == 0 else levels[(step - 1) % len(levels)].ack_timeout_s
            return Plan(tuple(skipped), Page(step, index, tuple(people), level.ack_timeout_s, waited))
        skipped.append(Skip(step, index, level.targets))
        step += 1
    return Plan(tuple(skipped), None)


def first_responder(rules: EscalationPolicy, on_call: OnCall) -> str | None:
    """Who owns a new incident: the first person on call in the first level with anyone on call."""
    for level in rules.levels:
        people = on_call(level.targets)
        if people:
            return people[0]
    return None


def duration(seconds: float) -> str:
    """A timeout as a timeline says it: "5 min", "30 s"."""
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


# --- the pages (inside the caller's transaction) -----------------------------------------

class Escalator:
    """Starts an incident's escalation and writes each step: the pages, their entries and the next step's timer."""

    def __init__(self, roster: Roster, messages: Messages,
                 policies: Mapping[str, EscalationPolicy | Mapping[str, Any]]) -> None:
        self.roster = roster
        self.messages = messages
        self.policies = policies  # the coordinator's, read when an incident opens: an edit applies to the next one

    def snapshot(self, name: str | None) -> Escalation | None:
        """Policy `name` as a new incident keeps it (None: no such policy, nobody will be paged)."""
        if name is None or name not in self.policies:
            return None
        return Escalation(name, EscalationPolicy.of(self.policies[name]))

    def first_responder(self, escalation: Escalation | None, at: datetime) -> str | None:
        """Who owns a new incident opened at `at`: the first person on call in its escalation."""
        if escalation is None:
            return None
        return first_responder(escalation.rules, lambda targets: self.roster.resolve(targets, at))

    async def page_first(self, tx: Tx, incident: Incident, now: datetime) -> None:
        """Page the first step of a new or re-opened incident."""
        if not await self.page(tx, incident, 0, now):
            log.warning("incident %s opened with no escalation policy", incident.id)

    async def page(self, tx: Tx, incident: Incident, step: int, now: datetime) -> bool:
        """Page escalation step `step` of `incident`; False when the incident has no escalation policy."""
        escalation = Escalation.from_json(incident.escalation)
        rules = escalation.rules if escalation is not None else EscalationPolicy()
        epoch = escalation.epoch if escalation is not None else 0
        if not rules.levels:
            if step == 0:
                await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ASSIGNED,
                                                           body="No escalation policy: nobody was paged"))
            return False
        steps = plan(rules, step, lambda targets: self.roster.resolve(targets, now))
        for skip in steps.skipped:
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.ESCALATED, data={"step": skip.step, "level": skip.level},
                body=f"Level {skip.level + 1}: nobody on call for {', '.join(skip.targets)}; skipping"))
        if isinstance(steps.then, Exhausted):
            await self._fallback(tx, incident, steps.then, epoch, now)
        elif isinstance(steps.then, Page):
            await self._page(tx, incident, steps.then, epoch, now)
        return True

    async def _page(self, tx: Tx, incident: Incident, page: Page, epoch: int, now: datetime) -> None:
        context = await self.messages.incident_context(tx, incident)
        for person_id in page.people:
            await self.messages.to_person(tx, person_id, "alert", context, key=alert_key(incident.id, epoch, page.step),
                                          incident=incident, created_at=now)
        names = ", ".join(self.roster.name(p) for p in page.people)
        if page.waited_s is None:
            body = f"Assigned to {names} (on call when the incident opened)"
            kind = EntryKind.ASSIGNED
        else:
            body = f"No acknowledgement within {duration(page.waited_s)}: paged {names} (level {page.level + 1})"
            kind = EntryKind.ESCALATED
        people = list(page.people)
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, kind, body=body,
                                                   data={"step": page.step, "level": page.level, "people": people,
                                                         "person": people[0]}))
        await tx.timers.schedule(Timer("escalate", incident.id, now + timedelta(seconds=page.ack_timeout_s),
                                       {"step": page.step + 1}, created_at=now))

    async def _fallback(self, tx: Tx, incident: Incident, exhausted: Exhausted, epoch: int, now: datetime) -> None:
        fallback = exhausted.fallback
        if fallback is None:
            body = f"Nobody acknowledged after {exhausted.rounds} round(s) of escalation; no fallback is configured"
        else:
            body = f"Nobody acknowledged after {exhausted.rounds} round(s) of escalation: notified {fallback.address}"
            context = await self.messages.incident_context(tx, incident)
            await tx.outbox.enqueue([OutboxMessage(
                key=fallback_key(incident.id, epoch), notifier=fallback.notifier, recipient=fallback.address,
                template="alert", context=context, created_at=now)])
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ESCALATED, body=body,
                                                   data={"fallback": None if fallback is None else fallback.to_json()}))
