"""Which incident a firing signal belongs to: its own, one it re-opens, one it joins, or a new one (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from statusd.core.model import Impact, Incident, Signal


class Placement(StrEnum):
    """Where a firing signal goes."""

    REFIRE = "refire"  # its own open incident (or the one it joined earlier): a repeat
    REOPEN = "reopen"  # its own incident, resolved within the re-open window: the fix did not hold
    JOIN = "join"  # another detector's open incident on the same components: one outage, one incident
    OPEN = "open"  # nothing fits: a new incident


@dataclass(frozen=True, slots=True)
class Grouping:
    """A signal's placement and the incident it lands in (None when it opens a new one)."""

    placement: Placement
    incident: Incident | None = None


def reopen_since(now: datetime, reopen_window_s: float) -> datetime:
    """An incident resolved at or after this re-opens when its detector fires again."""
    return now - timedelta(seconds=reopen_window_s)


def join_since(signal: Signal, now: datetime, group_window_s: float) -> datetime | None:
    """A signal joins an open incident on its components opened at or after this; None: it joins none."""
    if not signal.components or group_window_s <= 0:
        return None
    if signal.source == "reports":  # customers confirming an outage already known, however old
        return datetime.min.replace(tzinfo=now.tzinfo)
    return now - timedelta(seconds=group_window_s)


def related_open(signal: Signal, open_incidents: Iterable[Incident], since: datetime) -> Incident | None:
    """The first open incident (newest first, as listed) sharing a component with `signal`, opened since `since`."""
    for incident in open_incidents:
        if incident.opened_at >= since and set(incident.components) & set(signal.components):
            return incident
    return None


def place(own: Incident | None, recent: Incident | None, related: Incident | None) -> Grouping:
    """Its own open incident first, then its own recently resolved one, then a related open one, else a new one."""
    if own is not None:
        return Grouping(Placement.REFIRE, own)
    if recent is not None:
        return Grouping(Placement.REOPEN, recent)
    if related is not None:
        return Grouping(Placement.JOIN, related)
    return Grouping(Placement.OPEN)


def combined_components(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    """Both incidents' components, first's order then second's new ones."""
    return tuple(dict.fromkeys(tuple(first) + tuple(second)))


def worse(first: Impact, second: Impact) -> Impact:
    """The worse of two impacts (the first on a tie)."""
    return max(first, second, key=lambda i: i.rank)
