"""How the incident engine behaves (`[incidents]` in config), and the public page its messages link to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Policy:
    """How the coordinator behaves (from `[incidents]` in config)."""

    on_recovery: str = "resolve"  # "resolve", "monitoring" or "nothing"
    notify_subscribers_on_open: bool = True
    opened_message: str = "We are investigating reports of problems with {components}."
    resolved_message: str = "This incident has been resolved: {components} recovered."
    monitoring_message: str = "{components} recovered; we are monitoring the results."
    reopened_message: str = "The problem with {components} has returned; we are investigating again."
    escalation_policy: str | None = None
    reopen_window_s: float = 1800.0
    update_reminder_s: Mapping[str, float] = field(default_factory=lambda: {"minor": 3600.0, "major": 1800.0,
                                                                             "critical": 900.0})
    handoff_ack_timeout_s: float = 300.0
    group_window_s: float = 300.0  # a new signal joins an open incident on the same component opened this recently


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What templates need to know about the public page."""

    title: str
    url: str
