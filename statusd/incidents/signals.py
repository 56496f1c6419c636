"""What a detector's Signal does: repeat, re-open, join or open an incident when firing; recover when not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from statusd.core.model import (
    AUTOMATED_AUTHOR,
    EntryKind,
    Incident,
    IncidentStatus,
    NewIncident,
    Signal,
    TimelineEntry,
    impact_for,
)
from statusd.core.protocols import Tx
from statusd.incidents import grouping, lifecycle
from statusd.incidents.components import names, restore, worsen
from statusd.incidents.escalation import Escalator, stored
from statusd.incidents.grouping import Placement
from statusd.incidents.lifecycle import Event
from statusd.incidents.policy import Policy
from statusd.incidents.updates import Updates


class Signals:
    """Applies detectors' Signals inside the caller's transaction; the detector that spoke is never special."""

    def __init__(self, escalator: Escalator, updates: Updates, policy: Callable[[], Policy]) -> None:
        self.escalator = escalator
        self.updates = updates
        self.policy = policy  # read at each signal: the coordinator's policy may be replaced

    async def fire(self, tx: Tx, signal: Signal, now: datetime) -> tuple[Incident, bool]:
        """The incident a firing signal landed in, and whether it opened it."""
        policy = self.policy()
        # Its own incident, or the one it joined: a repeat after the grouping window must not open a second.
        own = (await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
               or await tx.incidents.find_open_joined(signal.dedup_key))
        recent = related = None
        if own is None:
            recent = await tx.incidents.find_recent_by_dedup_key(
                signal.dedup_key, grouping.reopen_since(now, policy.reopen_window_s))
            since = grouping.join_since(signal, now, policy.group_window_s)
            if since is not None:
                related = grouping.related_open(signal, await tx.incidents.list_open(), since)
        placed = grouping.place(own, recent, related)
        if placed.incident is None:
            return await self._open(tx, signal, now, policy), True
        if placed.placement is Placement.REFIRE:
            return await self._refire(tx, placed.incident, signal, now), False
        if placed.placement is Placement.REOPEN:
            return await self._reopen(tx, placed.incident, signal, now, policy), False
        return await self._join(tx, placed.incident, signal, now), False

    async def recover(self, tx: Tx, signal: Signal, now: datetime) -> Incident | None:
        """The detector's open incident after its recovery (per `on_recovery`), or None when it has none."""
        policy = self.policy()
        incident = await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
        if incident is not None:
            await self._entry(tx, incident, signal, now)
        await restore(tx, signal.components, now, ignoring=incident.id if incident else None)
        if incident is None:
            return None
        named = await names(tx, incident.components)
        if policy.on_recovery == "resolve":
            return await self.updates.resolve(tx, incident, policy.resolved_message.format(components=named),
                                              AUTOMATED_AUTHOR, now, notify=True)
        if policy.on_recovery == "monitoring" and incident.status != IncidentStatus.MONITORING:
            return await self.updates.publish(tx, incident, Event.MONITOR,
                                              policy.monitoring_message.format(components=named),
                                              AUTOMATED_AUTHOR, now, notify=True)
        return incident

    async def _refire(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        await self._entry(tx, incident, signal, now)
        await worsen(tx, signal.components, signal.severity, now)
        refired = lifecycle.apply(incident, Event.REFIRE, now)
        if refired.status == incident.status:  # a plain repeat changes nothing on the incident
            return incident
        await tx.incidents.save(refired)
        await tx.incidents.add_entry(TimelineEntry(refired.id, now, EntryKind.STATUS, status=refired.status,
                                                   body="Signal fired again while monitoring"))
        return refired

    async def _join(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        """Record a second detector's view of the same outage on the open incident; nobody is paged again."""
        await tx.incidents.add_entry(TimelineEntry(
            incident.id, now, EntryKind.SIGNAL, author=signal.source,
            data={**signal.evidence, "joined": signal.dedup_key}, body=f"Joined: {signal.summary}"))
        await worsen(tx, signal.components, signal.severity, now)
        incident = lifecycle.apply(incident, Event.JOIN, now,
                                   components=grouping.combined_components(incident.components, signal.components),
                                   impact=grouping.worse(incident.impact, impact_for(signal.severity)))
        await tx.incidents.save(incident)
        return incident

    async def _open(self, tx: Tx, signal: Signal, now: datetime, policy: Policy) -> Incident:
        escalation = self.escalator.snapshot(policy.escalation_policy)
        # The title is public: name what customers see, not the probe or its socket error
        # (those stay in the internal SIGNAL entry).
        # Without components (a surge of reports grouped by their text) the status alone, not
        # "our services: degraded performance" with a lower-case start.
        title = (f"{await names(tx, signal.components)}: {signal.severity.label.lower()}"
                 if signal.components else signal.severity.label)
        incident = await tx.incidents.create(NewIncident(
            title=title, status=IncidentStatus.INVESTIGATING, impact=impact_for(signal.severity),
            components=signal.components, opened_at=now, source=signal.source, dedup_key=signal.dedup_key,
            assignee=self.escalator.first_responder(escalation, now), escalation=stored(escalation),
        ))
        await self._entry(tx, incident, signal, now)
        await worsen(tx, signal.components, signal.severity, now)
        await self.escalator.page_first(tx, incident, now)
        if policy.notify_subscribers_on_open:
            body = policy.opened_message.format(components=await names(tx, incident.components))
            incident = await self.updates.publish(tx, incident, Event.INVESTIGATE, body, AUTOMATED_AUTHOR, now,
                                                  notify=True)
        return incident

    async def _reopen(self, tx: Tx, incident: Incident, signal: Signal, now: datetime, policy: Policy) -> Incident:
        incident = lifecycle.apply(incident, Event.REOPEN, now)
        await tx.incidents.save(incident)
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.REOPENED,
                                                   body=f"Re-opened: {signal.summary}", author=signal.source))
        await self._entry(tx, incident, signal, now)
        await worsen(tx, signal.components, signal.severity, now)
        await self.escalator.page_first(tx, incident, now)
        body = policy.reopened_message.format(components=await names(tx, incident.components))
        return await self.updates.publish(tx, incident, Event.INVESTIGATE, body, AUTOMATED_AUTHOR, now, notify=True)

    @staticmethod
    async def _entry(tx: Tx, incident: Incident, signal: Signal, now: datetime) -> None:
        """The internal SIGNAL entry: what the detector said, with its evidence."""
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.SIGNAL, body=signal.summary,
                                                   author=signal.source, data=dict(signal.evidence)))
