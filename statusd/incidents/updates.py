"""Public updates: the signed text, the status it sets, who hears it, and the reminder counted from it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from statusd.core.errors import ValidationError
from statusd.core.model import EntryKind, Incident, TimelineEntry
from statusd.core.protocols import Tx
from statusd.incidents import lifecycle
from statusd.incidents.components import restore
from statusd.incidents.lifecycle import ALL_TIMERS, Event
from statusd.incidents.messages import Messages
from statusd.incidents.policy import Policy
from statusd.incidents.reminders import Reminders


class Updates:
    """Posts an incident's public updates and its resolution, inside the caller's transaction."""

    def __init__(self, messages: Messages, reminders: Reminders, policy: Callable[[], Policy]) -> None:
        self.messages = messages
        self.reminders = reminders
        self.policy = policy  # read at each update: the coordinator's policy may be replaced

    async def publish(self, tx: Tx, incident: Incident, event: Event, body: str, author: str, now: datetime, *,
                      notify: bool, components: Mapping[str, Mapping[str, str]] | None = None,
                      **changes: Any) -> Incident:
        """A public update that comes with `event` (see lifecycle.DATA for `changes`); returns the incident after it.

        `components`: the component statuses the update set by hand, `{id: {"from", "to"}}`, kept in its entry.
        """
        if not body.strip():
            raise ValidationError("body", "a public update needs a text")
        updated = lifecycle.apply(incident, event, now, published=True, **changes)
        await tx.incidents.save(updated)
        data: dict[str, Any] = {"status_changed": updated.status != incident.status}
        if components:
            data["components"] = {cid: dict(change) for cid, change in components.items()}
        entry = await tx.incidents.add_entry(TimelineEntry(updated.id, now, EntryKind.UPDATE, body=body, author=author,
                                                           status=updated.status, public=True, data=data))
        if notify:
            await self.messages.update(tx, updated, entry)
        if updated.status.is_open:
            await self.reminders.schedule(tx, updated, now, self.policy().update_reminder_s)
        return updated

    async def resolve(self, tx: Tx, incident: Incident, body: str, author: str, now: datetime, *, notify: bool,
                      components: Mapping[str, Mapping[str, str]] | None = None, kept: Collection[str] = (),
                      **changes: Any) -> Incident:
        """Resolve with a final public update: every pending timer stops and the components recover.

        `kept`: components whose status the resolving update set by hand; they keep it.
        """
        incident = await self.publish(tx, incident, Event.RESOLVE, body, author, now, notify=notify,
                                      components=components, **changes)
        await tx.timers.cancel(incident.id, ALL_TIMERS, now)
        await restore(tx, incident.components, now, ignoring=incident.id, keeping=kept)
        return incident
