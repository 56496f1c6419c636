"""Reminders: a public update overdue (to the owners) and a handoff not yet accepted (to both people)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from statusd.core.model import EntryKind, Incident, TimelineEntry, Timer
from statusd.core.protocols import Tx
from statusd.incidents.handoff import Handoff
from statusd.incidents.messages import Messages
from statusd.incidents.observer import IncidentObserver
from statusd.incidents.routing import Roster, handoff_reminder_key, owners, reminder_key


class Reminders:
    """Schedules update reminders and sends the reminders that came due, inside the caller's transaction."""

    def __init__(self, roster: Roster, messages: Messages, observer: IncidentObserver | None) -> None:
        self.roster = roster
        self.messages = messages
        self.observer = observer

    async def schedule(self, tx: Tx, incident: Incident, now: datetime, reminder_s: Mapping[str, float]) -> None:
        """Replace the pending update reminder with one counted from `now` (none for an impact without one)."""
        await tx.timers.cancel(incident.id, ["remind"], now)
        seconds = reminder_s.get(incident.impact.value)
        if seconds:
            await tx.timers.schedule(Timer("remind", incident.id, now + timedelta(seconds=seconds), created_at=now))

    async def remind(self, tx: Tx, incident: Incident, timer: Timer, now: datetime,
                     reminder_s: Mapping[str, float]) -> None:
        """Remind the owners that no public update was posted for a while, and schedule the next reminder."""
        recipients = owners(incident)
        last = incident.last_public_update_at or incident.opened_at
        minutes = int((now - last).total_seconds() // 60)
        context = await self.messages.incident_context(tx, incident)
        context["reminder"] = {"minutes_since_update": minutes, "last_update_at": last.isoformat()}
        for person_id in recipients:
            await self.messages.to_person(tx, person_id, "reminder", context, key=reminder_key(timer.id),
                                          incident=incident, created_at=now)
        names = ", ".join(map(self.roster.name, recipients)) or "nobody"
        await tx.incidents.add_entry(TimelineEntry(
            incident.id, now, EntryKind.REMINDER, data={"people": recipients, "minutes": minutes},
            body=f"No public update for {minutes} min: reminded {names}"))
        if self.observer:
            self.observer.reminder(incident)
        await self.schedule(tx, incident, now, reminder_s)

    async def remind_handoff(self, tx: Tx, incident: Incident, handoff: Handoff, now: datetime) -> None:
        """Tell both people that the handoff is still unaccepted; the one who asked still owns the incident."""
        context = await self.messages.incident_context(tx, incident, handoff=self.messages.handoff_context(handoff))
        for person_id in (handoff.to, handoff.from_person):
            if person_id is not None:
                await self.messages.to_person(tx, person_id, "handoff", context,
                                              key=handoff_reminder_key(incident.id, handoff.stamp),
                                              incident=incident, created_at=now)
        await tx.incidents.add_entry(TimelineEntry(
            incident.id, now, EntryKind.HANDOFF, data=handoff.to_json(),
            body=f"{self.roster.name(handoff.to)} has not accepted the handoff yet; "
                 f"{self.roster.name(handoff.from_person)} still owns the incident"))
