"""The outbox rows an incident change causes: what each notification says (its context) and to whom.

Contexts are JSON-safe snapshots taken inside the transaction that enqueues them, so a
retry sends what was true when the change happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from statusd.core.model import Incident, IncidentStatus, OutboxMessage, TimelineEntry
from statusd.core.protocols import Tx
from statusd.incidents.handoff import Handoff
from statusd.incidents.policy import PageInfo
from statusd.incidents.routing import (
    Roster,
    client_key,
    owner_update_key,
    owners,
    postmortem_key,
    update_key,
    update_recipients,
)


class Messages:
    """Builds the context of each notification and enqueues its rows, inside the caller's transaction."""

    def __init__(self, page: PageInfo, roster: Roster) -> None:
        self.page = page
        self.roster = roster

    async def snapshot(self, tx: Tx, incident: Incident) -> dict[str, Any]:
        """The incident as templates see it, with component names and the public URL."""
        by_id = {c.id: c.name for c in await tx.components.list()}
        return {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status.value,
            "impact": incident.impact.value,
            "components": [by_id.get(c, c) for c in incident.components],
            "component_ids": list(incident.components),
            "source": incident.source,
            "opened_at": incident.opened_at.isoformat(),
            "assignee": self.roster.name(incident.assignee) if incident.assignee else None,
            "commander": self.roster.name(incident.commander) if incident.commander else None,
            "url": f"{self.page.url}/incidents/{incident.id}",
        }

    def context(self, incident: dict[str, Any], entry: TimelineEntry | None, **extra: Any) -> dict[str, Any]:
        """A template context: the incident snapshot, the page, the update `entry` if any, and `extra`."""
        context: dict[str, Any] = {"incident": incident, "page": {"title": self.page.title, "url": self.page.url},
                                   **extra}
        if entry is not None:
            context["update"] = {"id": entry.id, "status": entry.status.value if entry.status else None,
                                 "body": entry.body, "author": entry.author, "at": entry.at.isoformat()}
        return context

    async def incident_context(self, tx: Tx, incident: Incident, entry: TimelineEntry | None = None,
                               **extra: Any) -> dict[str, Any]:
        """`context` of the incident's snapshot taken now."""
        return self.context(await self.snapshot(tx, incident), entry, **extra)

    def handoff_context(self, handoff: Handoff) -> dict[str, Any]:
        """A handoff as templates see it: names, not ids."""
        return {"from": self.roster.name(handoff.from_person), "to": self.roster.name(handoff.to),
                "note": handoff.note, "at": handoff.stamp}

    async def to_person(self, tx: Tx, person_id: str, template: str, context: dict[str, Any], *, key: str,
                        incident: Incident, created_at: datetime) -> None:
        """Enqueue `template` about `incident` to every contact of one person (nothing for an unknown id)."""
        await tx.outbox.enqueue(self.roster.personal(person_id, template, context, key=key, incident=incident,
                                                     created_at=created_at))

    async def update(self, tx: Tx, incident: Incident, entry: TimelineEntry) -> None:
        """One public update to subscribers, reporting clients and, when it resolves, the owners; each address once."""
        context = await self.incident_context(tx, incident, entry)
        recipients = update_recipients(await tx.subscribers.for_components(incident.components),
                                       await tx.reports.for_incident(incident.id))
        await tx.outbox.enqueue(
            OutboxMessage(key=update_key(entry.id, notifier, address), notifier=notifier, recipient=address,
                          template="update", context=context, created_at=entry.at)
            for notifier, address in recipients)
        if entry.status == IncidentStatus.RESOLVED:
            for person_id in owners(incident):
                await self.to_person(tx, person_id, "update", context, key=owner_update_key(entry.id),
                                     incident=incident, created_at=entry.at)

    async def report_acks(self, tx: Tx, incident: Incident, contacts: Iterable[tuple[str, str]],
                          latest: TimelineEntry | None, now: datetime) -> None:
        """Tell newly affected clients the incident's latest public state (once per incident and address)."""
        context = await self.incident_context(tx, incident, latest)
        await tx.outbox.enqueue(
            OutboxMessage(key=client_key(incident.id, notifier, address), notifier=notifier,
                          recipient=address, template="report_ack", context=context, created_at=now)
            for notifier, address in contacts)

    async def postmortem(self, tx: Tx, incident: Incident, entry: TimelineEntry, *, body: str, author: str,
                         now: datetime) -> None:
        """A published postmortem to the subscribers of the incident's components."""
        context = await self.incident_context(tx, incident)
        context["postmortem"] = {"body": body, "author": author, "at": now.isoformat()}
        recipients = update_recipients(await tx.subscribers.for_components(incident.components), ())
        await tx.outbox.enqueue(
            OutboxMessage(key=postmortem_key(entry.id, notifier, address), notifier=notifier,
                          recipient=address, template="postmortem", context=context, created_at=now)
            for notifier, address in recipients)
