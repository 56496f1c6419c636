"""The incident state machine: Signals and people's actions in, one transaction each out.

Every change the coordinator makes — the incident, its timeline entry, component statuses
and the outbox rows of every notification it causes — is written in one transaction, so
a crash never leaves an incident without its alert or an alert without its incident.
Nothing is sent from here: the outbox worker delivers what was committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from statusd.core.clock import Clock
from statusd.core.errors import Conflict, NotFound, ValidationError
from statusd.core.model import (
    ComponentStatus,
    EntryKind,
    Impact,
    Incident,
    IncidentStatus,
    NewIncident,
    OutboxMessage,
    Person,
    Signal,
    TimelineEntry,
    impact_for,
)
from statusd.core.protocols import Store, Tx
from statusd.oncall import Rotation

log = logging.getLogger(__name__)

AUTOMATED_AUTHOR = "statusd (automated)"


@dataclass(frozen=True, slots=True)
class Policy:
    """How the coordinator reacts to detectors (from `[incidents]` in config)."""

    on_recovery: str = "resolve"  # "resolve", "monitoring" or "nothing"
    notify_subscribers_on_open: bool = True
    opened_message: str = "We are investigating reports of problems with {components}."
    resolved_message: str = "This incident has been resolved: {components} recovered."
    monitoring_message: str = "{components} recovered; we are monitoring the results."


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What templates need to know about the public page."""

    title: str
    url: str


class Coordinator:
    """Opens, updates and resolves incidents; the only writer of incidents."""

    def __init__(self, store: Store, clock: Clock, *, rotation: Rotation, people: Mapping[str, Person],
                 page: PageInfo, policy: Policy = Policy(), on_change: Callable[[], None] = lambda: None,
                 observer: Any = None) -> None:
        self.store = store
        self.clock = clock
        self.rotation = rotation
        self.people = dict(people)
        self.page = page
        self.policy = policy
        self.on_change = on_change
        self.observer = observer  # metrics; optional so pure tests need none

    # --- detectors ---------------------------------------------------------------------

    async def handle(self, signal: Signal) -> Incident | None:
        """Apply a detector's Signal: open or join an incident, or recover from one."""
        if signal.firing:
            return await self._fire(signal)
        return await self._recover(signal)

    async def _fire(self, signal: Signal) -> Incident:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            existing = await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
            if existing is not None:
                incident = await self._refire(tx, existing, signal, now)
                opened = False
            else:
                incident = await self._open_from_signal(tx, signal, now)
                opened = True
        self._committed(incident, now, opened=opened)
        return incident

    async def _refire(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.SIGNAL, body=signal.summary,
                                                   author=signal.source, data=dict(signal.evidence)))
        await self._set_components(tx, signal.components, signal.severity, now)
        if incident.status == IncidentStatus.MONITORING:  # the fix did not hold
            incident = replace(incident, status=IncidentStatus.INVESTIGATING, updated_at=now)
            await tx.incidents.save(incident)
            await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.STATUS, status=incident.status,
                                                       body="Signal fired again while monitoring"))
        return incident

    async def _open_from_signal(self, tx: Tx, signal: Signal, now: datetime) -> Incident:
        assignee = self.rotation.on_call(now)
        # The title is public: name what customers see, not the probe or its socket error
        # (those stay in the internal SIGNAL entry).
        title = f"{await self._names(tx, signal.components)}: {signal.severity.label.lower()}"
        incident = await tx.incidents.create(NewIncident(
            title=title, status=IncidentStatus.INVESTIGATING, impact=impact_for(signal.severity),
            components=signal.components, opened_at=now, source=signal.source, dedup_key=signal.dedup_key,
            assignee=assignee,
        ))
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.SIGNAL, body=signal.summary,
                                                   author=signal.source, data=dict(signal.evidence)))
        await self._set_components(tx, signal.components, signal.severity, now)
        await self._assign(tx, incident, assignee, now, reason="on duty when the incident opened")
        if self.policy.notify_subscribers_on_open:
            body = self.policy.opened_message.format(components=await self._names(tx, incident.components))
            incident = await self._public_update(tx, incident, IncidentStatus.INVESTIGATING, body,
                                                 AUTOMATED_AUTHOR, now, notify=True)
        return incident

    async def _recover(self, signal: Signal) -> Incident | None:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
            if incident is not None:
                await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.SIGNAL, body=signal.summary,
                                                           author=signal.source, data=dict(signal.evidence)))
            await self._restore_components(tx, signal.components, now, ignoring=incident.id if incident else None)
            if incident is not None:
                names = await self._names(tx, incident.components)
                if self.policy.on_recovery == "resolve":
                    incident = await self._resolve(tx, incident, self.policy.resolved_message.format(components=names),
                                                   AUTOMATED_AUTHOR, now, notify=True)
                elif self.policy.on_recovery == "monitoring" and incident.status != IncidentStatus.MONITORING:
                    incident = await self._public_update(
                        tx, incident, IncidentStatus.MONITORING,
                        self.policy.monitoring_message.format(components=names), AUTOMATED_AUTHOR, now, notify=True)
        self._committed(incident, now)
        return incident

    # --- people ------------------------------------------------------------------------

    async def open_incident(self, *, title: str, body: str, author: str, components: Iterable[str] = (),
                            component_status: ComponentStatus | None = None, impact: Impact | None = None,
                            status: IncidentStatus = IncidentStatus.INVESTIGATING, notify: bool = True) -> Incident:
        """Open an incident by hand with its first public update."""
        now = self.clock.now()
        if not status.is_open:
            raise ValidationError("status", "a new incident must be open (investigating, identified or monitoring)")
        comps = tuple(dict.fromkeys(components))
        if impact is None:
            impact = impact_for(component_status) if component_status else Impact.MINOR
        async with self.store.transaction() as tx:
            await self._require_components(tx, comps)
            assignee = self.rotation.on_call(now)
            incident = await tx.incidents.create(NewIncident(title=title, status=status, impact=impact,
                                                             components=comps, opened_at=now, source="manual",
                                                             assignee=assignee))
            if component_status is not None:
                await self._set_components(tx, comps, component_status, now)
            await self._assign(tx, incident, assignee, now, reason="on duty when the incident opened")
            incident = await self._public_update(tx, incident, status, body, author, now, notify=notify)
        self._committed(incident, now, opened=True)
        return incident

    async def post_update(self, incident_id: int, *, body: str, author: str, status: IncidentStatus | None = None,
                          impact: Impact | None = None, component_status: ComponentStatus | None = None,
                          notify: bool = True) -> Incident:
        """Post a signed public update; resolving through here is the same as `resolve`."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await self._get_open(tx, incident_id)
            if impact is not None:
                incident = replace(incident, impact=impact)
            if component_status is not None:
                await self._set_components(tx, incident.components, component_status, now)
            if status in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM):
                incident = await self._resolve(tx, incident, body, author, now, notify=notify)
            else:
                incident = await self._public_update(tx, incident, status or incident.status, body, author, now,
                                                     notify=notify)
        self._committed(incident, now)
        return incident

    async def resolve(self, incident_id: int, *, body: str, author: str, notify: bool = True) -> Incident:
        """Resolve an open incident with a final public update; its components return to operational."""
        return await self.post_update(incident_id, body=body, author=author, status=IncidentStatus.RESOLVED,
                                      notify=notify)

    async def acknowledge(self, incident_id: int, *, by: str) -> Incident:
        """Record that `by` acknowledged the incident; the first acknowledgement wins."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await self._get_open(tx, incident_id)
            if incident.acknowledged_at is not None:
                raise Conflict(f"incident {incident_id} was already acknowledged by {incident.acknowledged_by}")
            incident = replace(incident, acknowledged_at=now, acknowledged_by=by, updated_at=now)
            await tx.incidents.save(incident)
            await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ACKNOWLEDGED, author=by,
                                                       body=f"Acknowledged by {by}"))
        self._committed(incident, now)
        return incident

    async def set_component_status(self, component_id: str, status: ComponentStatus) -> bool:
        """Set a component's status by hand; returns whether it changed."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            await self._require_components(tx, (component_id,))
            changed = await tx.components.set_status(component_id, status, now)
        self._committed(None, now)
        return changed

    def _committed(self, incident: Incident | None, now: datetime, *, opened: bool = False) -> None:
        """After a commit: tell the page to refresh and the metrics what just happened to `incident`."""
        self.on_change()
        if incident is None or self.observer is None:
            return
        if opened:
            self.observer.incident_opened(incident)
        if incident.first_public_update_at == now:
            self.observer.first_public_update(incident)
        if incident.acknowledged_at == now:
            self.observer.incident_acknowledged(incident)
        if incident.resolved_at == now:
            self.observer.incident_resolved(incident)

    # --- building blocks (all inside the caller's transaction) ---------------------------

    async def _get_open(self, tx: Tx, incident_id: int) -> Incident:
        incident = await tx.incidents.get(incident_id)
        if incident is None:
            raise NotFound("incident", incident_id)
        if not incident.status.is_open:
            raise Conflict(f"incident {incident_id} is already {incident.status.value}")
        return incident

    async def _require_components(self, tx: Tx, component_ids: Iterable[str]) -> None:
        known = {c.id for c in await tx.components.list()}
        for i, cid in enumerate(component_ids):
            if cid not in known:
                raise ValidationError(f"components[{i}]", f"no component {cid!r}")

    async def _names(self, tx: Tx, component_ids: Iterable[str]) -> str:
        by_id = {c.id: c.name for c in await tx.components.list()}
        names = [by_id.get(cid, cid) for cid in component_ids]
        return ", ".join(names) if names else "our services"

    async def _set_components(self, tx: Tx, component_ids: Iterable[str], status: ComponentStatus,
                              now: datetime) -> None:
        for cid in component_ids:
            current = await tx.components.get(cid)
            if current is not None and status.rank > current.status.rank:
                await tx.components.set_status(cid, status, now)

    async def _restore_components(self, tx: Tx, component_ids: Iterable[str], now: datetime, *,
                                  ignoring: int | None) -> None:
        """Return components to the worst status still claimed by another open incident, else operational."""
        others = [i for i in await tx.incidents.list_open() if i.id != ignoring]
        for cid in component_ids:
            status = ComponentStatus.OPERATIONAL
            for other in others:
                if cid in other.components and other.status != IncidentStatus.MONITORING:
                    implied = _status_for(other.impact)
                    if implied.rank > status.rank:
                        status = implied
            await tx.components.set_status(cid, status, now)

    async def _assign(self, tx: Tx, incident: Incident, person_id: str | None, now: datetime, *, reason: str) -> None:
        if person_id is None:
            await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ASSIGNED,
                                                       body="Nobody is on duty: the rotation is empty"))
            log.warning("incident %s opened with nobody on duty", incident.id)
            return
        person = self.people.get(person_id)
        name = person.name if person else person_id
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ASSIGNED, body=f"Assigned to {name} ({reason})",
                                                   data={"person": person_id}))
        if person is not None:
            context = self._context(await self._snapshot(tx, incident), None)
            await tx.outbox.enqueue(
                OutboxMessage(key=f"alert:{incident.id}:{person_id}:{notifier}", notifier=notifier, recipient=address,
                              template="alert", context=context, created_at=now)
                for notifier, address in person.contacts.items()
            )

    async def _public_update(self, tx: Tx, incident: Incident, status: IncidentStatus, body: str, author: str,
                             now: datetime, *, notify: bool) -> Incident:
        if not body.strip():
            raise ValidationError("body", "a public update needs a text")
        if incident.first_public_update_at is None:
            incident = replace(incident, first_public_update_at=now)
        changed_status = status != incident.status
        incident = replace(incident, status=status, updated_at=now)
        await tx.incidents.save(incident)
        entry = await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.UPDATE, body=body, author=author,
                                                           status=status, public=True,
                                                           data={"status_changed": changed_status}))
        if notify:
            await self._notify_update(tx, incident, entry)
        return incident

    async def _resolve(self, tx: Tx, incident: Incident, body: str, author: str, now: datetime, *,
                       notify: bool) -> Incident:
        incident = replace(incident, resolved_at=now)
        incident = await self._public_update(tx, incident, IncidentStatus.RESOLVED, body, author, now, notify=notify)
        await self._restore_components(tx, incident.components, now, ignoring=incident.id)
        return incident

    async def _notify_update(self, tx: Tx, incident: Incident, entry: TimelineEntry) -> None:
        """Outbox rows for one public update: every matching subscriber, and the owner when it resolves."""
        context = self._context(await self._snapshot(tx, incident), entry)
        messages = [
            OutboxMessage(key=f"update:{entry.id}:{sub.notifier}:{sub.target}", notifier=sub.notifier,
                          recipient=sub.target, template="update", context=context, created_at=entry.at)
            for sub in await tx.subscribers.for_components(incident.components)
        ]
        owner = self.people.get(incident.assignee or "")
        if owner is not None and entry.status == IncidentStatus.RESOLVED:
            messages += [
                OutboxMessage(key=f"update:{entry.id}:{notifier}:{address}", notifier=notifier, recipient=address,
                              template="update", context=context, created_at=entry.at)
                for notifier, address in owner.contacts.items()
            ]
        await tx.outbox.enqueue(messages)

    async def _snapshot(self, tx: Tx, incident: Incident) -> dict[str, Any]:
        by_id = {c.id: c.name for c in await tx.components.list()}
        assignee = self.people.get(incident.assignee or "")
        return {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status.value,
            "impact": incident.impact.value,
            "components": [by_id.get(c, c) for c in incident.components],
            "component_ids": list(incident.components),
            "source": incident.source,
            "opened_at": incident.opened_at.isoformat(),
            "assignee": assignee.name if assignee else incident.assignee,
            "url": f"{self.page.url}/incidents/{incident.id}",
        }

    def _context(self, incident: dict[str, Any], entry: TimelineEntry | None) -> dict[str, Any]:
        context: dict[str, Any] = {"incident": incident, "page": {"title": self.page.title, "url": self.page.url}}
        if entry is not None:
            context["update"] = {"id": entry.id, "status": entry.status.value if entry.status else None,
                                 "body": entry.body, "author": entry.author, "at": entry.at.isoformat()}
        return context


def _status_for(impact: Impact) -> ComponentStatus:
    return {
        Impact.NONE: ComponentStatus.OPERATIONAL,
        Impact.MAINTENANCE: ComponentStatus.UNDER_MAINTENANCE,
        Impact.MINOR: ComponentStatus.DEGRADED_PERFORMANCE,
        Impact.MAJOR: ComponentStatus.PARTIAL_OUTAGE,
        Impact.CRITICAL: ComponentStatus.MAJOR_OUTAGE,
    }[impact]
