"""Statuspage-compatible shapes (`/api/v2/*.json`) and the status arithmetic the page shares.

Field names and vocabularies follow Atlassian Statuspage's public API v2, so existing
widgets, bots and monitors can read statusd unchanged. Everything here is a pure function
of already-loaded model objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from statusd.core.model import (
    Component,
    ComponentStatus,
    EntryKind,
    Impact,
    Incident,
    IncidentStatus,
    TimelineEntry,
    impact_for,
)

JSON = dict[str, Any]

INDICATOR_DESCRIPTIONS: Mapping[Impact, str] = {
    Impact.NONE: "All Systems Operational",
    Impact.MINOR: "Minor Service Outage",
    Impact.MAJOR: "Partial System Outage",
    Impact.CRITICAL: "Major System Outage",
    Impact.MAINTENANCE: "Service Under Maintenance",
}


def stable_id(kind: str, name: str) -> str:
    """A 12-character lowercase id that is the same for the same (kind, name) on every replica."""
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:12]


def page_id(title: str) -> str:
    """The page id, derived from the page title."""
    return stable_id("page", title)


def group_id(name: str) -> str:
    """The id of a component group, derived from its name."""
    return stable_id("group", name)


def iso(at: datetime | None) -> str | None:
    """ISO-8601 in UTC with milliseconds and an explicit offset, as Statuspage writes it."""
    return None if at is None else at.astimezone(UTC).isoformat(timespec="milliseconds")


def public_updates(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """Only what the public may see: public `update` entries, in their original order."""
    return [e for e in entries if e.public and e.kind is EntryKind.UPDATE]


def indicator(components: Iterable[Component], open_incidents: Iterable[Incident]) -> Impact:
    """The worst of the open incidents' impacts and what the component statuses imply."""
    worst = Impact.NONE
    for impact in [i.impact for i in open_incidents] + [impact_for(c.status) for c in components]:
        if impact.rank > worst.rank:
            worst = impact
    return worst


@dataclass(frozen=True, slots=True)
class Group:
    """Components that share a `group`; `name` is None for the ungrouped ones."""

    name: str | None
    components: tuple[Component, ...]

    @property
    def id(self) -> str | None:
        """The stable id derived from the group name (None when ungrouped)."""
        return None if self.name is None else group_id(self.name)

    @property
    def status(self) -> ComponentStatus:
        """The worst status of its components."""
        return max((c.status for c in self.components), key=lambda s: s.rank, default=ComponentStatus.OPERATIONAL)


def grouped(components: Sequence[Component]) -> list[Group]:
    """Ungrouped components first, then each group in order of its first member; members by position."""
    ordered = sorted(components, key=lambda c: (c.position, c.id))
    buckets: dict[str | None, list[Component]] = {None: []}
    for c in ordered:
        buckets.setdefault(c.group, []).append(c)
    return [Group(name, tuple(members)) for name, members in buckets.items() if members]


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What every response's `page` object says."""

    id: str
    name: str
    url: str
    time_zone: str
    updated_at: datetime


def page_object(page: PageInfo) -> JSON:
    """Statuspage's `page` object."""
    return {"id": page.id, "name": page.name, "url": page.url, "time_zone": page.time_zone,
            "updated_at": iso(page.updated_at)}


def status_object(level: Impact) -> JSON:
    """Statuspage's `status` object."""
    return {"indicator": level.value, "description": INDICATOR_DESCRIPTIONS[level]}


def _component_object(c: Component, pid: str) -> JSON:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status.value,
        "created_at": iso(c.updated_at),  # the store keeps no creation time; the last change is the best we know
        "updated_at": iso(c.updated_at),
        "position": c.position,
        "description": c.description or None,
        "showcase": True,
        "start_date": None,
        "group_id": None if c.group is None else group_id(c.group),
        "page_id": pid,
        "group": False,
        "only_show_if_degraded": False,
    }


def _group_object(g: Group, pid: str) -> JSON:
    assert g.name is not None
    changed = [c.updated_at for c in g.components if c.updated_at is not None]
    last = max(changed) if changed else None
    return {
        "id": g.id,
        "name": g.name,
        "status": g.status.value,
        "created_at": iso(last),
        "updated_at": iso(last),
        "position": min(c.position for c in g.components),
        "description": None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": pid,
        "group": True,
        "only_show_if_degraded": False,
        "components": [c.id for c in g.components],
    }


def component_objects(components: Sequence[Component], pid: str) -> list[JSON]:
    """Components in page order, each group listed as a `group: true` component before its members."""
    out: list[JSON] = []
    for g in grouped(components):
        if g.name is not None:
            out.append(_group_object(g, pid))
        out.extend(_component_object(c, pid) for c in g.components)
    return out


def _update_object(e: TimelineEntry, incident_id: str) -> JSON:
    affected = e.data.get("affected_components")
    return {
        "id": str(e.id),
        "status": (e.status or IncidentStatus.INVESTIGATING).value,
        "body": e.body,
        "incident_id": incident_id,
        "created_at": iso(e.at),
        "updated_at": iso(e.at),
        "display_at": iso(e.at),
        "affected_components": affected if isinstance(affected, list) else None,
        "deliver_notifications": True,
    }


def monitoring_at(updates: Sequence[TimelineEntry]) -> datetime | None:
    """When the incident last moved to `monitoring`, judged from its public updates."""
    times = [e.at for e in updates if e.status is IncidentStatus.MONITORING]
    return max(times) if times else None


def incident_object(incident: Incident, updates: Sequence[TimelineEntry], components: Mapping[str, Component],
                    pid: str, base_url: str) -> JSON:
    """Statuspage's incident object; `updates` must already be public-only, oldest first."""
    iid = str(incident.id)
    return {
        "id": iid,
        "name": incident.title,
        "status": incident.status.value,
        "created_at": iso(incident.opened_at),
        "updated_at": iso(incident.updated_at),
        "monitoring_at": iso(monitoring_at(updates)),
        "resolved_at": iso(incident.resolved_at),
        "impact": incident.impact.value,
        "shortlink": f"{base_url}/incidents/{incident.id}",
        "started_at": iso(incident.opened_at),
        "page_id": pid,
        "incident_updates": [_update_object(e, iid) for e in reversed(updates)],
        "components": [_component_object(components[cid], pid) for cid in incident.components if cid in components],
        # Statuspage's names for the postmortem; the body is Markdown as its author wrote it.
        "postmortem_body": incident.postmortem,
        "postmortem_published_at": iso(incident.postmortem_at),
    }
