"""The incident engine's commands: Signals, people's actions and due timers in; one transaction each out.

Every change a command makes — the incident, its timeline entries, component statuses, the
outbox rows of every notification it causes and the timers of what must happen next
(escalation steps, reminders, handoff checks) — is written in one transaction, so a crash
never leaves an incident without its alert, an alert without its incident, or an escalation
without its next step. Nothing is sent from here: the outbox worker delivers what was
committed, and the timer worker fires what came due.

The commands compose the parts of `statusd.incidents`: `grouping` (where a signal goes),
`lifecycle` (what each event does to the incident), `escalation` (who is paged),
`routing` and `messages` (who hears what), `components`, `reminders` and `handoff`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from statusd.core.clock import Clock
from statusd.core.errors import Conflict, NotFound, ValidationError
from statusd.core.model import (
    AUTOMATED_AUTHOR,
    ComponentStatus,
    CustomerReport,
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
from statusd.incidents import grouping, lifecycle
from statusd.incidents.components import names as component_names
from statusd.incidents.components import require as require_components
from statusd.incidents.components import restore as restore_components
from statusd.incidents.components import worsen as worsen_components
from statusd.incidents.escalation import ESCALATION_TIMERS, Escalation, EscalationPolicy, Escalator, first_responder
from statusd.incidents.handoff import Handoff
from statusd.incidents.lifecycle import Event
from statusd.incidents.messages import Messages
from statusd.incidents.observer import IncidentObserver
from statusd.incidents.policy import PageInfo, Policy
from statusd.incidents.reminders import Reminders
from statusd.incidents.routing import Roster, handoff_key
from statusd.oncall.schedule import Schedule
from statusd.web.signing import Signer

__all__ = ["AUTOMATED_AUTHOR", "ALL_TIMERS", "Coordinator", "PageInfo", "Policy"]

log = logging.getLogger(__name__)

#: Every kind of timer an incident can have; resolving or merging it cancels them all.
ALL_TIMERS = ("escalate", "remind", "handoff")


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
        # Read when an incident opens, so a policy edited here applies to the next incident only.
        self.escalation_policies: dict[str, EscalationPolicy | Mapping[str, Any]] = dict(escalation_policies or {})
        self.policy = policy
        self.signer = signer
        self.on_change = on_change
        self.observer = observer  # metrics; optional so pure tests need none
        self.roster = Roster(self.people, self.schedules, signer, page.url)
        self.messages = Messages(page, self.roster)
        self.escalator = Escalator(self.roster, self.messages)
        self.reminders = Reminders(self.roster, self.messages, observer)

    def on_call(self, schedule: str, at: datetime) -> str | None:
        """The person on call in `schedule` at `at`."""
        return self.roster.on_call(schedule, at)

    def ack_url(self, incident_id: int, person_id: str) -> str | None:
        """The signed one-click acknowledgement link for one person, when links are signed."""
        return self.roster.ack_url(incident_id, person_id)

    # --- detectors ---------------------------------------------------------------------

    async def handle(self, signal: Signal) -> Incident | None:
        """Apply a detector's Signal: open, join or re-open an incident, or recover from one."""
        if signal.firing:
            return await self._fire(signal)
        return await self._recover(signal)

    async def _fire(self, signal: Signal) -> Incident:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            # Its own incident, or the one it joined: a repeat after the grouping window must not open a second.
            own = (await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
                   or await tx.incidents.find_open_joined(signal.dedup_key))
            recent = related = None
            if own is None:
                recent = await tx.incidents.find_recent_by_dedup_key(
                    signal.dedup_key, grouping.reopen_since(now, self.policy.reopen_window_s))
                since = grouping.join_since(signal, now, self.policy.group_window_s)
                if since is not None:
                    related = grouping.related_open(signal, await tx.incidents.list_open(), since)
            placed = grouping.place(own, recent, related)
            if placed.incident is None:
                incident = await self._open_from_signal(tx, signal, now)
            elif placed.placement is grouping.Placement.REFIRE:
                incident = await self._refire(tx, placed.incident, signal, now)
            elif placed.placement is grouping.Placement.REOPEN:
                incident = await self._reopen(tx, placed.incident, signal, now)
            else:
                incident = await self._join(tx, placed.incident, signal, now)
        self._committed(incident, now, opened=placed.placement is grouping.Placement.OPEN)
        return incident

    async def _refire(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        await self._signal_entry(tx, incident, signal, now)
        await worsen_components(tx, signal.components, signal.severity, now)
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
            incident.id, now, EntryKind.SIGNAL, author=signal.source, data={**signal.evidence, "joined": signal.dedup_key},
            body=f"Joined: {signal.summary}"))
        await worsen_components(tx, signal.components, signal.severity, now)
        incident = lifecycle.apply(incident, Event.JOIN, now,
                                   components=grouping.combined_components(incident.components, signal.components),
                                   impact=grouping.worse(incident.impact, impact_for(signal.severity)))
        await tx.incidents.save(incident)
        return incident

    async def _open_from_signal(self, tx: Tx, signal: Signal, now: datetime) -> Incident:
        escalation = self._new_escalation()
        # The title is public: name what customers see, not the probe or its socket error
        # (those stay in the internal SIGNAL entry).
        # Without components (a surge of reports grouped by their text) the status alone, not
        # "our services: degraded performance" with a lower-case start.
        title = (f"{await component_names(tx, signal.components)}: {signal.severity.label.lower()}"
                 if signal.components else signal.severity.label)
        incident = await tx.incidents.create(NewIncident(
            title=title, status=IncidentStatus.INVESTIGATING, impact=impact_for(signal.severity),
            components=signal.components, opened_at=now, source=signal.source, dedup_key=signal.dedup_key,
            assignee=self._first_responder(escalation, now), escalation=_stored(escalation),
        ))
        await self._signal_entry(tx, incident, signal, now)
        await worsen_components(tx, signal.components, signal.severity, now)
        await self._page_first(tx, incident, now)
        if self.policy.notify_subscribers_on_open:
            body = self.policy.opened_message.format(components=await component_names(tx, incident.components))
            incident = await self._publish(tx, incident, Event.INVESTIGATE, body, AUTOMATED_AUTHOR, now, notify=True)
        return incident

    async def _reopen(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        incident = lifecycle.apply(incident, Event.REOPEN, now)
        await tx.incidents.save(incident)
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.REOPENED,
                                                   body=f"Re-opened: {signal.summary}", author=signal.source))
        await self._signal_entry(tx, incident, signal, now)
        await worsen_components(tx, signal.components, signal.severity, now)
        await self._page_first(tx, incident, now)
        body = self.policy.reopened_message.format(components=await component_names(tx, incident.components))
        return await self._publish(tx, incident, Event.INVESTIGATE, body, AUTOMATED_AUTHOR, now, notify=True)

    async def _recover(self, signal: Signal) -> Incident | None:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
            if incident is not None:
                await self._signal_entry(tx, incident, signal, now)
            await restore_components(tx, signal.components, now, ignoring=incident.id if incident else None)
            if incident is not None:
                names = await component_names(tx, incident.components)
                if self.policy.on_recovery == "resolve":
                    incident = await self._resolve(tx, incident, self.policy.resolved_message.format(components=names),
                                                   AUTOMATED_AUTHOR, now, notify=True)
                elif self.policy.on_recovery == "monitoring" and incident.status != IncidentStatus.MONITORING:
                    incident = await self._publish(tx, incident, Event.MONITOR,
                                                   self.policy.monitoring_message.format(components=names),
                                                   AUTOMATED_AUTHOR, now, notify=True)
        self._committed(incident, now)
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
        escalation = self._new_escalation()
        async with self.store.transaction() as tx:
            await require_components(tx, comps)
            incident = await tx.incidents.create(NewIncident(
                title=title, status=status, impact=impact, components=comps, opened_at=now, source="manual",
                assignee=self._first_responder(escalation, now), escalation=_stored(escalation)))
            if component_status is not None:
                await worsen_components(tx, comps, component_status, now)
            await self._page_first(tx, incident, now)
            incident = await self._publish(tx, incident, lifecycle.UPDATE_EVENTS[status], body, author, now,
                                           notify=notify)
        self._committed(incident, now, opened=True)
        return incident

    async def post_update(self, incident_id: int, *, body: str, author: str, status: IncidentStatus | None = None,
                          impact: Impact | None = None, component_status: ComponentStatus | None = None,
                          notify: bool = True) -> Incident:
        """Post a signed public update; resolving through here is the same as `resolve`."""
        now = self.clock.now()
        if status is IncidentStatus.POSTMORTEM:
            raise ValidationError("status", "postmortem comes with the postmortem itself: resolve the incident, then "
                                            "POST /api/v1/incidents/<id>/postmortem")
        async with self.store.transaction() as tx:
            incident = await self._get(tx, incident_id)
            # A postmortem has no update event of its own: any update is refused like one on a resolved incident.
            event = lifecycle.UPDATE_EVENTS.get(status or incident.status, Event.RESOLVE)
            lifecycle.check(incident, event)
            if component_status is not None:
                await worsen_components(tx, incident.components, component_status, now)
            changes = {} if impact is None else {"impact": impact}
            if event is Event.RESOLVE:
                incident = await self._resolve(tx, incident, body, author, now, notify=notify, **changes)
            else:
                incident = await self._publish(tx, incident, event, body, author, now, notify=notify, **changes)
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
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await self._get(tx, incident_id)
            handoff = Handoff.pending(incident.handoff)
            if handoff is not None and person is not None and handoff.to == person:
                incident = lifecycle.apply(incident, Event.ACCEPT, now, commander=person)
                await tx.incidents.save(incident)
                await tx.timers.cancel(incident.id, ["handoff"], now)
                await tx.incidents.add_entry(TimelineEntry(
                    incident.id, now, EntryKind.HANDOFF, author=by, data={"from": handoff.from_person, "to": person},
                    body=f"{self.roster.name(person)} accepted the handoff from {self.roster.name(handoff.from_person)}"))
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
        return incident

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
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.HANDOFF, author=by, data=handoff.to_json(),
                body=f"Handoff from {self.roster.name(current)} to {self.roster.name(to)} requested: {note}".rstrip(": ")))
            context = await self.messages.incident_context(tx, incident,
                                                           handoff=self.messages.handoff_context(handoff))
            await self.messages.to_person(tx, to, "handoff", context, key=handoff_key(incident.id, handoff.stamp),
                                          incident_id=incident.id, created_at=now)
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
                raise Conflict(f"incident {incident_id} was merged into incident {await self._merged_end(tx, incident)}; "
                               f"publish the postmortem there, once that one is resolved")
            incident = lifecycle.apply(incident, Event.POSTMORTEM, now, postmortem=body)
            await tx.incidents.save(incident)
            entry = await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.POSTMORTEM, author=author,
                                                               body="Postmortem published"))
            if notify:
                await self.messages.postmortem(tx, incident, entry, body=body, author=author, now=now)
        self._committed(incident, now)
        return incident

    @staticmethod
    async def _merged_end(tx: Tx, incident: Incident) -> int | None:
        """Where a merged incident's story goes on: its target, or that one's target if it was merged in turn."""
        target = incident.merged_into
        for _ in range(100):  # merges only go into open incidents, so a chain never loops; the bound is a guard
            following = await tx.incidents.get(target) if target is not None else None
            if following is None or following.merged_into is None:
                break
            target = following.merged_into
        return target

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
            lifecycle.check(target, Event.ABSORB)
            for entry in (await tx.incidents.entries([source.id]))[source.id]:
                await tx.incidents.add_entry(replace(entry, id=None, incident_id=target.id,
                                                     data={**entry.data, "merged_from": source.id}))
            key = source.dedup_key
            await tx.reports.move(source.id, target.id)
            await tx.timers.cancel(source.id, ALL_TIMERS, now)
            source = await self._publish(
                tx, source, Event.MERGE,
                f"This incident is being handled together with \"{target.title}\"; follow the updates there.",
                by, now, notify=False, merged_into=target.id)
            await tx.incidents.add_entry(TimelineEntry(source.id, now, EntryKind.MERGED, author=by,
                                                       data={"into": target.id}, body=f"Merged into #{target.id}"))
            target = lifecycle.apply(target, Event.ABSORB, now,
                                     components=grouping.combined_components(target.components, source.components),
                                     impact=grouping.worse(source.impact, target.impact),
                                     dedup_key=target.dedup_key or key)
            await tx.incidents.save(target)
            await tx.incidents.add_entry(TimelineEntry(
                target.id, now, EntryKind.MERGED, author=by, data={"from": source.id},
                body=f"Merged #{source.id} ({source.title}) into this incident"))
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
            if open_only:
                still_open = await tx.incidents.open_keys()
                links = {incident_id: ids for incident_id, ids in links.items() if incident_id in still_open}
            by_incident: dict[int, list[CustomerReport]] = {}
            for report in await tx.reports.link_many(links):
                assert report.incident_id is not None
                by_incident.setdefault(report.incident_id, []).append(report)
            wrote = [await self._linked(tx, incident_id, linked, now, note=noted is None or incident_id in noted)
                     for incident_id, linked in by_incident.items()]
        if any(wrote):  # late reports without a contact change nothing anyone sees
            self._committed(None, now)
        return {incident_id: len(by_incident.get(incident_id, ())) for incident_id in links}

    async def _linked(self, tx: Tx, incident_id: int, linked: list[CustomerReport], now: datetime, *,
                      note: bool = True) -> bool:
        """The timeline note of a surge and the acknowledgement of each newly affected client; False: neither."""
        # The acknowledgement's outbox key names the incident and the address, so a client
        # who reports again is not acknowledged again — no need to read earlier links.
        new_contacts = list(dict.fromkeys(r.contact for r in linked if r.contact))
        note = note and len(linked) > 1  # a single report is listed by the API, not the timeline
        if not note and not new_contacts:
            return False
        incident = await tx.incidents.get(incident_id)
        assert incident is not None and incident.id is not None
        if note:
            clients = len({r.client_id for r in linked})
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.NOTE, author=AUTOMATED_AUTHOR,
                data={"reports": [r.id for r in linked], "clients": clients},
                body=f"Linked {len(linked)} customer reports from {clients} clients"))
        if new_contacts and incident.status.is_open:
            entries = (await tx.incidents.entries([incident.id], public_only=True))[incident.id]
            await self.messages.report_acks(tx, incident, new_contacts, entries[-1] if entries else None, now)
        return True

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

    def _new_escalation(self) -> Escalation | None:
        """The configured escalation policy as a new incident snapshots it (None: no policy)."""
        name = self.policy.escalation_policy
        if name is None or name not in self.escalation_policies:
            return None
        return Escalation(name, EscalationPolicy.of(self.escalation_policies[name]))

    def _first_responder(self, escalation: Escalation | None, at: datetime) -> str | None:
        if escalation is None:
            return None
        return first_responder(escalation.rules, lambda targets: self.roster.resolve(targets, at))

    async def _page_first(self, tx: Tx, incident: Incident, now: datetime) -> None:
        """Page the first escalation step of a new or re-opened incident."""
        if not await self.escalator.page(tx, incident, 0, now):
            log.warning("incident %s opened with no escalation policy", incident.id)

    async def _publish(self, tx: Tx, incident: Incident, event: Event, body: str, author: str, now: datetime, *,
                       notify: bool, **changes: Any) -> Incident:
        """A signed public update that comes with `event`: the incident, its entry, its notifications, its reminder."""
        if not body.strip():
            raise ValidationError("body", "a public update needs a text")
        updated = lifecycle.apply(incident, event, now, published=True, **changes)
        await tx.incidents.save(updated)
        entry = await tx.incidents.add_entry(TimelineEntry(updated.id, now, EntryKind.UPDATE, body=body, author=author,
                                                           status=updated.status, public=True,
                                                           data={"status_changed": updated.status != incident.status}))
        if notify:
            await self.messages.update(tx, updated, entry)
        if updated.status.is_open:
            await self.reminders.schedule(tx, updated, now, self.policy.update_reminder_s)
        return updated

    async def _resolve(self, tx: Tx, incident: Incident, body: str, author: str, now: datetime, *,
                       notify: bool, **changes: Any) -> Incident:
        """Resolve with a final public update: every pending timer stops and the components recover."""
        incident = await self._publish(tx, incident, Event.RESOLVE, body, author, now, notify=notify, **changes)
        await tx.timers.cancel(incident.id, ALL_TIMERS, now)
        await restore_components(tx, incident.components, now, ignoring=incident.id)
        return incident

    async def _signal_entry(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> None:
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.SIGNAL, body=signal.summary,
                                                   author=signal.source, data=dict(signal.evidence)))

    @staticmethod
    async def _get(tx: Tx, incident_id: int) -> Incident:
        incident = await tx.incidents.get(incident_id)
        if incident is None:
            raise NotFound("incident", incident_id)
        return incident


def _stored(escalation: Escalation | None) -> dict[str, Any]:
    """An escalation as `Incident.escalation` stores it (`{}` for none)."""
    return {} if escalation is None else escalation.to_json()
