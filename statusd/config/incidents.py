"""`[incidents]` and `[escalation_policies]`: how incidents open and close, and who is paged for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from statusd.core.schema import Problems, non_negative, positive


@dataclass(frozen=True)
class EscalationLevelConfig:
    """`[[escalation_policies.<id>.levels]]`: who is paged, and how long they have to acknowledge."""

    targets: list[str]  # person ids, or "schedule:<id>" for whoever is on call then
    ack_timeout_s: float = 300.0

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = positive(self.ack_timeout_s, "ack_timeout_s")
        if not self.targets:
            problems.append(("targets", "must name at least one person or schedule"))
        return problems


@dataclass(frozen=True)
class FallbackConfig:
    """`escalation_policies.<id>.fallback`: the address that hears when nobody acknowledged at all."""

    notifier: str
    address: str


@dataclass(frozen=True)
class EscalationPolicyConfig:
    """`[escalation_policies.<id>]`: levels paged in turn, repeated `repeat` more times, then the fallback."""

    id: str
    levels: list[EscalationLevelConfig]
    repeat: int = 0  # run through the levels this many more times before the fallback
    fallback: FallbackConfig | None = None  # who hears when nobody acknowledged at all

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems: Problems = [] if self.levels else [("levels", "needs at least one level")]
        problems += non_negative(self.repeat, "repeat")
        return problems


@dataclass(frozen=True)
class IncidentsConfig:
    """`[incidents]`: how detected incidents open, group, re-open, remind and resolve."""

    on_recovery: Literal["resolve", "monitoring", "nothing"] = "resolve"
    notify_subscribers_on_open: bool = True  # send subscribers a first public update when a detector opens an incident
    opened_message: str = "We are investigating reports of problems with {components}."
    resolved_message: str = "This incident has been resolved: {components} recovered."
    escalation_policy: str | None = None  # policy from [escalation_policies] for every incident
    reopen_window_s: float = 1800.0  # a signal returning within this long after resolution re-opens the incident
    update_reminder_s: dict[str, float] = field(  # per impact: remind the commander after this long without a public update
        default_factory=lambda: {"minor": 3600.0, "major": 1800.0, "critical": 900.0})
    handoff_ack_timeout_s: float = 300.0  # remind both sides when a handoff is not accepted within this long
    group_window_s: float = 300.0  # a signal joins an open incident on the same component opened within this long

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems: Problems = []
        for impact, seconds in self.update_reminder_s.items():
            if impact not in ("none", "minor", "major", "critical", "maintenance"):
                problems.append((f"update_reminder_s.{impact}", "expected an impact: minor, major, critical, ..."))
            elif seconds <= 0:
                problems.append((f"update_reminder_s.{impact}", "must be greater than 0"))
        for key in ("reopen_window_s", "group_window_s"):
            problems += non_negative(getattr(self, key), key)
        for key in ("opened_message", "resolved_message"):
            try:
                getattr(self, key).format(components="Website")
            except (KeyError, IndexError, ValueError) as exc:
                problems.append((key, f"not a valid message: {exc!r}; the only placeholder is {{components}} "
                                      "(write {{ and }} for braces)"))
        return problems + positive(self.handoff_ack_timeout_s, "handoff_ack_timeout_s")
