"""The incident engine's commands: Signals, people's actions and due timers in; one transaction each out.

Every change a command makes — the incident, its timeline entries, component statuses, the
outbox rows of every notification it causes and the timers of what must happen next
(escalation steps, reminders, handoff checks) — is written in one transaction, so a crash
never leaves an incident without its alert, an alert without its incident, or an escalation
without its next step. Nothing is sent from here: the outbox worker delivers what was
committed, and the timer worker fires what came due.

Each command opens its transaction and composes the parts of `statusd.incidents`: `signals`
(with the pure `grouping`: where a signal goes), `lifecycle` (the pure table of what each
event does to an incident), `escalation` (who is paged), `routing` and `messages` (who hears
what), `updates`, `components`, `reminders`, `handoff`, `merging` and `report_links`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from statusd.core.clock import Clock
from statusd.core.errors import Conflict, NotFound, ValidationError
from statusd.core.model import (
    AUTOMATED_AUTHOR,
    ComponentStatus,
    EntryKind,
    Impact,
    Incident,
    IncidentStatus,
    NewIncident,
    Person,
    Signal,
    TimelineEntry,
    Timer,
    impact_for,
)
from statusd.core.protocols import Store, Tx
from statusd.incidents import lifecycle
from statusd.incidents.components import require as require_components
from statusd.incidents.components import set_by_hand as set_components_by_hand
from statusd.incidents.components import worsen as worsen_components
from statusd.incidents.escalation import ESCALATION_TIMERS, EscalationPolicy, Escalator, stored
from statusd.incidents.handoff import Handoff
from statusd.incidents.lifecycle import Event
from statusd.incidents.merging import Merger, merged_end
from statusd.incidents.messages import Messages
from statusd.incidents.observer import IncidentObserver
from statusd.incidents.policy import PageInfo, Policy
from statusd.incidents.reminders import Reminders
from statusd.incidents.report_links import ReportLinks
from statusd.incidents.routing import Roster, handoff_key, page_cycle
from statusd.incidents.signals import Signals
from statusd.incidents.updates import Updates
from statusd.oncall.schedule import Schedule
from statusd.web.signing import Signer

__all__ = ["AUTOMATED_AUTHOR", "Coordinator", "PageInfo", "Policy"]

log = logging.getLogger(__name__)


class Coordinator:
    """Opens, escalates, hands over, updates and resolves incidents; the only writer of incidents."""

    def __init__(self, store: Store, clock: Clock, *, people: Mapping[str, Person], page: PageInfo,
                 schedules: Mapping[str, Schedule] | None = None,
                 escalation_policies: Mapping[str, EscalationPolicy | Mapping[str, Any]] | None = None,
                 policy: Policy = Policy(), signer: Signer | None = None,
                 on_change: Callable[[], None] = lambda: None, observer: IncidentObserver | None = None) -> None:
        self.store = store
        self.clock = clock
        self.people = dict(people)
        self.page = page
        self.schedules = dict(schedules or {})
        # Read when an incident opens (Escalator.snapshot), so an edit here applies to the next incident only.
        self.escalation_policies: dict[str, EscalationPolicy | Mapping[str, Any]] = dict(escalation_policies or {})
        self.policy = policy
        self.signer = signer
        self.on_change = on_change
        self.observer = observer  # metrics; optional so pure tests need none
        self.roster = Roster(self.people, self.schedules, signer, page.url)
        self.messages = Messages(page, self.roster)
        self.escalator = Escalator(self.roster, self.messages, self.escalation_policies)
        self.reminders = Reminders(self.roster, self.messages, observer)
        self.updates = Updates(self.messages, self.reminders, lambda: self.policy)
        self.signals = Signals(self.escalator, self.updates, lambda: self.policy)
        self.report_links = ReportLinks(self.messages)
        self.merger = Merger(self.updates)

    def on_call(self, schedule: str, at: datetime) -> str | None:
        """The person on call in `schedule` at `at`."""
        return self.roster.on_call(schedule, at)

    def ack_url(self, incident_id: int, person_id: str, cycle: int = 0) -> str | None:
        """The signed one-click acknowledgement link for one person in page cycle `cycle`, when links are signed."""
        return self.roster.ack_url(incident_id, person_id, cycle)

    # --- detectors ---------------------------------------------------------------------

    async def handle(self, signal: Signal) -> Incident | None:
        """Apply a detector's Signal: open, join or re-open an incident, or recover from one."""
        now = self.clock.now()
        opened = False
        async with self.store.transaction() as tx:
            if signal.firing:
                incident: Incident | None
                incident, opened = await self.signals.fire(tx, signal, now)
            else:
                incident = await self.signals.recover(tx, signal, now)
        self._committed(incident, now, opened=opened)
        return incident

    # --- people ------------------------------------------------------------------------

    async def open_incident(self, *, title: str, body: str, author: str, components: Iterable[str] = (),
                            component_status: ComponentStatus | None = None, impact: Impact | None = None,
                            status: IncidentStatus = IncidentStatus.INVESTIGATING, notify: bool = True) -> Incident:
        """Open an incident by hand with its first public update, and page per the escalation policy."""
        now = self.clock.now()
        if not status.is_open:
            raise ValidationError("status", "a new incident must be open (investigating, identified or monitoring)")
        comps = tuple(dict.fromkeys(components))
        if impact is None:
            impact = impact_for(component_status) if component_status else Impact.MINOR
        escalation = self.escalator.snapshot(self.policy.escalation_policy)
        async with self.store.transaction() as tx:
            await require_components(tx, comps)
            incident = await tx.incidents.create(NewIncident(
                title=title, status=status, impact=impact, components=comps, opened_at=now, source="manual",
                assignee=self.escalator.first_responder(escalation, now), escalation=stored(escalation)))
            if component_status is not None:
                await worsen_components(tx, comps, component_status, now)
            await self.escalator.page_first(tx, incident, now)
            incident = await self.updates.publish(tx, incident, lifecycle.UPDATE_EVENTS[status], body, author, now,
                                                  notify=notify)
        self._committed(incident, now, opened=True)
        return incident

    async def post_update(self, incident_id: int, *, body: str, author: str, status: IncidentStatus | None = None,
                          impact: Impact | None = None, component_status: ComponentStatus | None = None,
                          notify: bool = True) -> Incident:
        """Post a signed public update; resolving through here is the same as `resolve`.

        `component_status` sets every component of the incident to it, better or worse; the update's
        timeline entry records each change as `data.components`.
        """
        now = self.clock.now()
        if status is IncidentStatus.POSTMORTEM:
            raise ValidationError("status", "postmortem comes with the postmortem itself: resolve the incident, then "
                                            "POST /api/v1/incidents/<id>/postmortem")
        async with self.store.transaction() as tx:
            incident = await self._get(tx, incident_id)
            # A postmortem has no update event of its own: any update is refused like one on a resolved incident.
            event = lifecycle.UPDATE_EVENTS.get(status or incident.status, Event.RESOLVE)
            lifecycle.check(incident, event)
            set_by_hand: dict[str, dict[str, str]] = {}
            if component_status is not None:
                if not incident.components:
                    raise ValidationError("component_status", f"incident {incident_id} has no components to set")
                # A person may set any status, better or worse: unlike a detector, they know it recovered.
                set_by_hand = await set_components_by_hand(tx, incident.components, component_status, now)
            changes = {} if impact is None else {"impact": impact}
            if event is Event.RESOLVE:
                kept = incident.components if component_status is not None else ()
                incident = await self.updates.resolve(tx, incident, body, author, now, notify=notify,
                                                      components=set_by_hand, kept=kept, **changes)
            else:
                incident = await self.updates.publish(tx, incident, event, body, author, now, notify=notify,
                                                      components=set_by_hand, **changes)
        self._committed(incident, now)
        return incident

    async def resolve(self, incident_id: int, *, body: str, author: str, notify: bool = True) -> Incident:
        """Resolve an open incident with a final public update; every pending timer stops."""
        return await self.post_update(incident_id, body=body, author=author, status=IncidentStatus.RESOLVED,
                                      notify=notify)

    async def acknowledge(self, incident_id: int, *, by: str, person: str | None = None) -> Incident:
        """Acknowledge: stop escalating and make `person` the commander; or accept a handoff made to `person`.

        The first acknowledgement wins; an acknowledgement after the incident resolved is a
        Conflict (resolution already stopped every page), so an ack racing an auto-resolve has
        one outcome: whichever transaction commits first.
        """
        incident, _ = await self.acknowledge_or_accept(incident_id, by=by, person=person)
        return incident

    async def acknowledge_or_accept(self, incident_id: int, *, by: str, person: str | None = None,
                                    cycle: int | None = None) -> tuple[Incident, Event]:
        """`acknowledge`, saying which it was: Event.ACK, or Event.ACCEPT when it only accepted a handoff.

        `cycle`: act only while the incident is still in this page cycle (a Conflict once it re-opened
        since), checked in the same transaction, so a link from an earlier page never acknowledges.
        """
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await self._get(tx, incident_id)
            if cycle is not None and page_cycle(incident.escalation) != cycle:
                raise Conflict(f"incident {incident_id} re-opened after this link was sent; use the link in its "
                               f"latest page")
            handoff = Handoff.pending(incident.handoff)
            event = Event.ACK
            if handoff is not None and person is not None and handoff.to == person:
                event = Event.ACCEPT
                incident = lifecycle.apply(incident, Event.ACCEPT, now, commander=person)
                await tx.incidents.save(incident)
                await tx.timers.cancel(incident.id, ["handoff"], now)
                await tx.incidents.add_entry(TimelineEntry(
                    incident.id, now, EntryKind.HANDOFF, author=by, data={"from": handoff.from_person, "to": person},
                    body=f"{self.roster.name(person)} accepted the handoff from "
                         f"{self.roster.name(handoff.from_person)}"))
            else:
                incident = lifecycle.apply(incident, Event.ACK, now, acknowledged_by=by,
                                           commander=person or incident.commander)
                await tx.incidents.save(incident)
                stopped = await tx.timers.cancel(incident.id, ESCALATION_TIMERS, now)
                await tx.incidents.add_entry(TimelineEntry(
                    incident.id, now, EntryKind.ACKNOWLEDGED, author=by, data={"person": person},
                    body=f"Acknowledged by {by}" + (f"; {by} is now the incident commander" if person else "")
                    + ("; escalation stopped" if stopped else "")))
        self._committed(incident, now)
        return incident, event

    async def hand_off(self, incident_id: int, *, to: str, note: str, by: str, person: str | None = None) -> Incident:
        """Ask `to` to take the incident over; the current commander stays in charge until `to` accepts."""
        now = self.clock.now()
        if to not in self.people:
            raise ValidationError("to", f"no person {to!r}")
        async with self.store.transaction() as tx:
            incident = await self._get(tx, incident_id)
            lifecycle.check(incident, Event.HAND_OFF)
            current = incident.commander or person or incident.assignee
            if current == to:
                raise Conflict(f"{self.roster.name(to)} already owns incident {incident_id}")
            handoff = Handoff(from_person=current, to=to, note=note, at=now)
            incident = lifecycle.apply(incident, Event.HAND_OFF, now, handoff=handoff.to_json())
            await tx.incidents.save(incident)
            await tx.timers.cancel(incident.id, ["handoff"], now)
            requested = f"Handoff from {self.roster.name(current)} to {self.roster.name(to)} requested: {note}"
            await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.HANDOFF, author=by,
                                                       data=handoff.to_json(), body=requested.rstrip(": ")))
            context = await self.messages.incident_context(tx, incident,
                                                           handoff=self.messages.handoff_context(handoff))
            await self.messages.to_person(tx, to, "handoff", context, key=handoff_key(incident.id, handoff.stamp),
                                          incident=incident, created_at=now)
            await tx.timers.schedule(Timer("handoff", incident.id, now + timedelta(
                seconds=self.policy.handoff_ack_timeout_s), {"at": handoff.stamp}, created_at=now))
        self._committed(incident, now)
        return incident

    async def set_comms(self, incident_id: int, *, person: str | None, by: str) -> Incident:
        """Name who writes the public updates (None clears it); reminders go to them too."""
        now = self.clock.now()
        if person is not None and person not in self.people:
            raise ValidationError("person", f"no person {person!r} in [people]")
        async with self.store.transaction() as tx:
            incident = lifecycle.apply(await self._get(tx, incident_id), Event.SET_COMMS, now, comms=person)
            await tx.incidents.save(incident)
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.ROLE, author=by, data={"comms": person},
                body=f"Communications: {self.roster.name(person)}" if person else "Communications role cleared"))
        self._committed(incident, now)
        return incident

    async def publish_postmortem(self, incident_id: int, *, body: str, author: str, notify: bool) -> Incident:
        """Attach a Markdown postmortem to a resolved incident and publish it."""
        now = self.clock.now()
        if not body.strip():
            raise ValidationError("body", "a postmortem needs a text")
        async with self.store.transaction() as tx:
            incident = await self._get(tx, incident_id)
            if incident.merged_into is not None:  # its story goes on in the other one, and so does its postmortem
                raise Conflict(f"incident {incident_id} was merged into incident {await merged_end(tx, incident)}; "
                               f"publish the postmortem there, once that one is resolved")
            incident = lifecycle.apply(incident, Event.POSTMORTEM, now, postmortem=body)
            await tx.incidents.save(incident)
            entry = await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.POSTMORTEM, author=author,
                                                               body="Postmortem published"))
            if notify:
                await self.messages.postmortem(tx, incident, entry, body=body, author=author, now=now)
        self._committed(incident, now)
        return incident

    async def merge(self, source_id: int, *, into: int, by: str) -> Incident:
        """Fold incident `source_id` into `into`: timelines and components combine, the source closes.

        The source's detector follows: its dedup key moves to the target when the target has
        none, so the next signal joins the target and its recovery resolves the target.
        """
        now = self.clock.now()
        if source_id == into:
            raise ValidationError("into", "an incident cannot be merged into itself")
        async with self.store.transaction() as tx:
            source = await self._get(tx, source_id)
            lifecycle.check(source, Event.MERGE)
            target = await tx.incidents.get(into)
            if target is None:
                raise ValidationError("into", f"incident {into} does not exist or is not open")
            target = await self.merger.merge(tx, source, target, by=by, now=now)
        self._committed(target, now)
        return target

    async def link_reports(self, incident_id: int, report_ids: Iterable[int]) -> int:
        """Link customer reports to an incident; each newly affected client hears the latest state at once.

        A client linked late gets the same catch-up as an early one: an acknowledgement with
        the latest public update. Returns how many reports were newly linked.
        """
        async with self.store.read() as r:
            if await r.incidents.get(incident_id) is None:
                raise NotFound("incident", incident_id)
        return (await self.link_reports_many({incident_id: list(report_ids)})).get(incident_id, 0)

    async def link_reports_many(self, links: Mapping[int, Sequence[int]], *, noted: Collection[int] | None = None,
                                open_only: bool = False) -> dict[int, int]:
        """`link_reports` for several incidents in one transaction (the report intake's group commit).

        `noted`: the incidents whose links get a timeline note (None: each with two or more).
        The intake notes the links that came with a surge's signal (opened, re-opened, joined
        or grown): later reports trickle in at whatever batch size the load makes, and the
        reports API lists them without a note per batch.
        `open_only`: link only to incidents still open inside this transaction. The intake
        decided where its reports belong from a read taken before it; an engineer may have
        resolved one of those incidents since, and a report must not join it afterwards.
        Returns, for each incident linked to, how many reports were newly linked (0 when all
        already were); with `open_only`, incidents found resolved are missing.
        """
        now = self.clock.now()
        async with self.store.transaction(brief=True) as tx:  # a few statements, each report's group commit
            linked, wrote = await self.report_links.link(tx, links, now, noted=noted, open_only=open_only)
        if wrote:  # late reports without a contact change nothing anyone sees
            self._committed(None, now)
        return linked

    async def set_component_status(self, component_id: str, status: ComponentStatus) -> bool:
        """Set a component's status by hand; returns whether it changed."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            await require_components(tx, (component_id,))
            changed = await tx.components.set_status(component_id, status, now)
        self._committed(None, now)
        return changed

    # --- timers ------------------------------------------------------------------------

    async def fire(self, timer: Timer) -> bool:
        """Carry out a due timer, exactly once; returns whether it did anything."""
        now = self.clock.now()
        assert timer.id is not None
        async with self.store.transaction() as tx:
            taken = await tx.timers.take(timer.id, now)
            if taken is None:
                return False
            incident = await tx.incidents.get(taken.incident_id)
            if incident is None:
                return False
            event = lifecycle.TIMER_EVENTS.get(taken.kind)
            if event is None:
                if incident.status.is_open:  # a closed incident's timers are moot, whatever their kind
                    log.error("unknown timer kind %r (timer %s)", taken.kind, taken.id)
                return False
            if not lifecycle.check(incident, event):
                return False
            if event is Event.ESCALATE:
                await self.escalator.page(tx, incident, int(taken.payload["step"]), now)
            elif event is Event.REMIND:
                await self.reminders.remind(tx, incident, taken, now, self.policy.update_reminder_s)
            else:
                handoff = Handoff.pending(incident.handoff)
                if handoff is None or handoff.stamp != taken.payload.get("at"):  # a later handoff replaced it
                    return False
                await self.reminders.remind_handoff(tx, incident, handoff, now)
        self._committed(incident, now)
        return True

    # --- building blocks (all inside the caller's transaction) ---------------------------

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

    @staticmethod
    async def _get(tx: Tx, incident_id: int) -> Incident:
        incident = await tx.incidents.get(incident_id)
        if incident is None:
            raise NotFound("incident", incident_id)
        return incident

