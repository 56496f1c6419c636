"""What incidents do to component statuses: detectors only ever make a component worse; its end restores it.

A person posting an update may set any status, in either direction (`set_by_hand`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from statusd.core.errors import ValidationError
from statusd.core.model import ComponentStatus, Impact, Incident, IncidentStatus
from statusd.core.protocols import Tx


def status_for(impact: Impact) -> ComponentStatus:
    """The component status an incident of `impact` implies."""
    return {
        Impact.NONE: ComponentStatus.OPERATIONAL,
        Impact.MAINTENANCE: ComponentStatus.UNDER_MAINTENANCE,
        Impact.MINOR: ComponentStatus.DEGRADED_PERFORMANCE,
        Impact.MAJOR: ComponentStatus.PARTIAL_OUTAGE,
        Impact.CRITICAL: ComponentStatus.MAJOR_OUTAGE,
    }[impact]


def restored_status(component_id: str, others: Iterable[Incident]) -> ComponentStatus:
    """The worst status still claimed for a component by other open incidents (monitoring claims none)."""
    status = ComponentStatus.OPERATIONAL
    for other in others:
        if component_id in other.components and other.status != IncidentStatus.MONITORING:
            implied = status_for(other.impact)
            if implied.rank > status.rank:
                status = implied
    return status


async def worsen(tx: Tx, component_ids: Iterable[str], status: ComponentStatus, now: datetime) -> None:
    """Set each component to `status` where that is worse than what it has; never improve one."""
    for cid in component_ids:
        current = await tx.components.get(cid)
        if current is not None and status.rank > current.status.rank:
            await tx.components.set_status(cid, status, now)


async def set_by_hand(tx: Tx, component_ids: Iterable[str], status: ComponentStatus,
                      now: datetime) -> dict[str, dict[str, str]]:
    """Set each component to `status`, better or worse; returns `{id: {"from", "to"}}` of those that changed."""
    changes: dict[str, dict[str, str]] = {}
    for cid in component_ids:
        current = await tx.components.get(cid)
        if current is not None and current.status != status:
            await tx.components.set_status(cid, status, now)
            changes[cid] = {"from": current.status.value, "to": status.value}
    return changes


async def restore(tx: Tx, component_ids: Iterable[str], now: datetime, *, ignoring: int | None,
                  keeping: Collection[str] = ()) -> None:
    """Return components to the worst status still claimed by another open incident, else operational.

    `keeping`: components a person just set by hand in the same update; their status stands.
    """
    others = [i for i in await tx.incidents.list_open() if i.id != ignoring]
    for cid in component_ids:
        if cid in keeping:
            continue
        await tx.components.set_status(cid, restored_status(cid, others), now)


async def names(tx: Tx, component_ids: Iterable[str]) -> str:
    """The components' names for public texts, "our services" for none."""
    by_id = {c.id: c.name for c in await tx.components.list()}
    named = [by_id.get(cid, cid) for cid in component_ids]
    return ", ".join(named) if named else "our services"


async def require(tx: Tx, component_ids: Iterable[str]) -> None:
    """Refuse, naming the field, a component id that is not configured."""
    known = {c.id for c in await tx.components.list()}
    for i, cid in enumerate(component_ids):
        if cid not in known:
            raise ValidationError(f"components[{i}]", f"no component {cid!r}")
