"""`[page]` and `[components]`: what the public status page shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from statusd.config.times import zone_problems
from statusd.core.schema import Problems, non_negative, positive


@dataclass(frozen=True)
class PageConfig:
    """`[page]`: what the public page is called, how far back it lists and how long it is cached."""

    title: str = "Service status"
    description: str = ""
    history_days: int = 14  # how far back the page lists resolved incidents
    cache_s: float = 5.0  # public pages and /api/v2 are served from a cache this old at most
    time_zone: str = "Etc/UTC"  # shown in /api/v2 page.time_zone

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = positive(self.history_days, "history_days", at_most=3650)
        problems += non_negative(self.cache_s, "cache_s")
        return problems + zone_problems(self.time_zone, "time_zone")



@dataclass(frozen=True)
class ComponentConfig:
    """`[components.<id>]`: one component shown on the page, and how its probes combine into its status."""

    id: str
    name: str
    description: str = ""
    group: str | None = None
    # How its probes combine: "any" (each failing probe sets its own severity), "all" (down only when
    # every probe fails; some failing = degraded) or "quorum" (a majority failing = major, fewer = partial).
    probe_policy: Literal["any", "all", "quorum"] = "any"
