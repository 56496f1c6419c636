"""Who hears about an incident and under which outbox key: people on call, subscribers, affected clients.

An outbox key names a message once, so enqueueing it again stores nothing: the keys below
are what makes a page, an update or an acknowledgement go out at most once per recipient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from statusd.core.model import CustomerReport, Incident, OutboxMessage, Person, Subscriber
from statusd.oncall.schedule import Schedule
from statusd.web.signing import Signer
from statusd.web.urls import ack_url


class Roster:
    """The people statusd can page, who is on call in each schedule, and each person's signed ack link."""

    def __init__(self, people: dict[str, Person], schedules: Mapping[str, Schedule], signer: Signer | None,
                 page_url: str) -> None:
        self.people = people  # shared with the coordinator, which exposes it
        self.schedules = schedules
        self.signer = signer
        self.page_url = page_url

    def name(self, person_id: str | None) -> str:
        """How a timeline names a person: their name, their id if unknown, "nobody" for None."""
        if person_id is None:
            return "nobody"
        person = self.people.get(person_id)
        return person.name if person else person_id

    def on_call(self, schedule: str, at: datetime) -> str | None:
        """The person on call in `schedule` at `at` (None for an unknown schedule or nobody)."""
        sched = self.schedules.get(schedule)
        return sched.on_call(at) if sched else None

    def resolve(self, targets: Sequence[str], at: datetime) -> list[str]:
        """Person ids for a level's targets at `at` (schedules resolved to whoever is on call), in order, once each."""
        out: list[str] = []
        for target in targets:
            kind, _, name = target.partition(":")
            person = self.on_call(name, at) if kind == "schedule" else target
            if person is not None and person not in out:
                out.append(person)
        return out

    def ack_url(self, incident_id: int, person_id: str, cycle: int = 0) -> str | None:
        """The signed one-click acknowledgement link for one person in page cycle `cycle`, when links are signed."""
        if self.signer is None:
            return None
        return ack_url(self.page_url, self.signer, incident_id, person_id, cycle)

    def personal(self, person_id: str, template: str, context: Mapping[str, Any], *, key: str, incident: Incident,
                 created_at: datetime) -> list[OutboxMessage]:
        """One message per contact of a known person, with their ack link and name; none for an unknown id.

        The ack link is bound to the incident's current page cycle: once it re-opens, the link stops working.
        """
        person = self.people.get(person_id)
        if person is None:
            return []
        personal = dict(context)
        cycle = page_cycle(incident.escalation)
        link = self.ack_url(incident.id, person_id, cycle)
        if link is not None:
            personal["actions"] = [{"id": "ack", "label": "Acknowledge", "url": link, "cycle": cycle}]
        personal["recipient"] = {"id": person.id, "name": person.name}
        return [OutboxMessage(key=f"{key}:{person_id}:{notifier}", notifier=notifier, recipient=address,
                              template=template, context=personal, created_at=created_at)
                for notifier, address in person.contacts.items()]


def page_cycle(escalation: Mapping[str, Any]) -> int:
    """Which page cycle a stored escalation (`Incident.escalation`) is in: 0 at opening, one more per re-open."""
    return int(escalation.get("epoch", 0))


def owners(incident: Incident) -> list[str]:
    """The people who answer for an incident: its commander (or assignee) and its comms person, once each."""
    return [p for p in dict.fromkeys([incident.commander or incident.assignee, incident.comms]) if p is not None]


def update_recipients(subscribers: Iterable[Subscriber], reports: Iterable[CustomerReport]) -> list[tuple[str, str]]:
    """(notifier, address) of everyone a public update goes to: subscribers, then reporting clients; each once."""
    recipients = {(sub.notifier, sub.target): None for sub in subscribers}
    recipients.update({r.contact: None for r in reports if r.contact})
    return list(recipients)


# --- outbox keys -------------------------------------------------------------------------

def alert_key(incident_id: int, epoch: int, step: int) -> str:
    """A page of escalation step `step`; a re-opened incident (next epoch) pages afresh."""
    return f"alert:{incident_id}:{epoch}.{step}"


def fallback_key(incident_id: int, epoch: int) -> str:
    """The fallback's message once nobody acknowledged."""
    return f"fallback:{incident_id}:{epoch}"


def update_key(entry_id: int | None, notifier: str, address: str) -> str:
    """A public update to one subscriber or client."""
    return f"update:{entry_id}:{notifier}:{address}"


def owner_update_key(entry_id: int | None) -> str:
    """A public update to the incident's owners (completed per person and contact)."""
    return f"update:{entry_id}"


def client_key(incident_id: int, notifier: str, address: str) -> str:
    """The acknowledgement of a reporting client: once per incident and address, however often they report."""
    return f"client:{incident_id}:{notifier}:{address}"


def postmortem_key(entry_id: int | None, notifier: str, address: str) -> str:
    """A published postmortem to one subscriber."""
    return f"postmortem:{entry_id}:{notifier}:{address}"


def reminder_key(timer_id: int | None) -> str:
    """An update reminder (completed per person and contact)."""
    return f"remind:{timer_id}"


def handoff_key(incident_id: int, stamp: str) -> str:
    """A handoff request to the person asked (completed per person and contact)."""
    return f"handoff:{incident_id}:{stamp}"


def handoff_reminder_key(incident_id: int, stamp: str) -> str:
    """The reminder that a handoff is still unaccepted (completed per person and contact)."""
    return f"handoff-reminder:{incident_id}:{stamp}"
