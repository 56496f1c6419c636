"""The incident state machine: Signals, people's actions and due timers in; one transaction each out.

Every change the coordinator makes — the incident, its timeline entries, component
statuses, the outbox rows of every notification it causes and the timers of what must
happen next (escalation steps, reminders, handoff checks) — is written in one
transaction, so a crash never leaves an incident without its alert, an alert without its
incident, or an escalation without its next step. Nothing is sent from here: the outbox
worker delivers what was committed, and the timer worker fires what came due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    OutboxMessage,
    Person,
    Signal,
    TimelineEntry,
    Timer,
    impact_for,
)
from statusd.core.protocols import Store, Tx
from statusd.web.signing import Signer
from statusd.oncall.schedule import Schedule

log = logging.getLogger(__name__)

ESCALATION_TIMERS = ("escalate",)
ALL_TIMERS = ("escalate", "remind", "handoff")


@dataclass(frozen=True, slots=True)
class Policy:
    """How the coordinator behaves (from `[incidents]` in config)."""

    on_recovery: str = "resolve"  # "resolve", "monitoring" or "nothing"
    notify_subscribers_on_open: bool = True
    opened_message: str = "We are investigating reports of problems with {components}."
    resolved_message: str = "This incident has been resolved: {components} recovered."
    monitoring_message: str = "{components} recovered; we are monitoring the results."
    reopened_message: str = "The problem with {components} has returned; we are investigating again."
    escalation_policy: str | None = None
    reopen_window_s: float = 1800.0
    update_reminder_s: Mapping[str, float] = field(default_factory=lambda: {"minor": 3600.0, "major": 1800.0,
                                                                             "critical": 900.0})
    handoff_ack_timeout_s: float = 300.0
    group_window_s: float = 300.0  # a new signal joins an open incident on the same component opened this recently


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What templates need to know about the public page."""

    title: str
    url: str


class Coordinator:
    """Opens, escalates, hands over, updates and resolves incidents; the only writer of incidents."""

    def __init__(self, store: Store, clock: Clock, *, people: Mapping[str, Person], page: PageInfo,
                 schedules: Mapping[str, Schedule] | None = None,
                 escalation_policies: Mapping[str, dict[str, Any]] | None = None,
                 policy: Policy = Policy(), signer: Signer | None = None,
                 on_change: Callable[[], None] = lambda: None, observer: Any = None) -> None:
        self.store = store
        self.clock = clock
        self.people = dict(people)
        self.page = page
        self.schedules = dict(schedules or {})
        self.escalation_policies = dict(escalation_policies or {})
        self.policy = policy
        self.signer = signer
        self.on_change = on_change
        self.observer = observer  # metrics; optional so pure tests need none

    # --- who -----------------------------------------------------------------------------

    def on_call(self, schedule: str, at: datetime) -> str | None:
        """The person on call in `schedule` at `at`."""
        sched = self.schedules.get(schedule)
        return sched.on_call(at) if sched else None

    def _targets(self, targets: Iterable[str], at: datetime) -> list[str]:
        """Person ids for a level's targets at `at` (schedules resolved to whoever is on call), in order, once each."""
        out: list[str] = []
        for target in targets:
            kind, _, name = target.partition(":")
            person = self.on_call(name, at) if kind == "schedule" else target
            if person is not None and person not in out:
                out.append(person)
        return out

    def _snapshot_policy(self) -> dict[str, Any]:
        name = self.policy.escalation_policy
        if name is None or name not in self.escalation_policies:
            return {}
        return {"policy": name, "epoch": 0, **self.escalation_policies[name]}

    def _first_responder(self, escalation: dict[str, Any], at: datetime) -> str | None:
        levels = escalation.get("levels") or []
        for level in levels:  # the first level with someone on call
            people = self._targets(level["targets"], at)
            if people:
                return people[0]
        return None

    # --- detectors ---------------------------------------------------------------------

    async def handle(self, signal: Signal) -> Incident | None:
        """Apply a detector's Signal: open, join or re-open an incident, or recover from one."""
        if signal.firing:
            return await self._fire(signal)
        return await self._recover(signal)

    async def _fire(self, signal: Signal) -> Incident:
        now = self.clock.now()
        opened = False
        async with self.store.transaction() as tx:
            # Its own incident, or the one it joined: a repeat after the grouping window must not open a second.
            existing = (await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
                        or await tx.incidents.find_open_joined(signal.dedup_key))
            if existing is not None:
                incident = await self._refire(tx, existing, signal, now)
            else:
                since = now - timedelta(seconds=self.policy.reopen_window_s)
                recent = await tx.incidents.find_recent_by_dedup_key(signal.dedup_key, since)
                related = await self._related_open(tx, signal, now)
                if recent is not None:
                    incident = await self._reopen(tx, recent, signal, now)
                elif related is not None:
                    incident = await self._join(tx, related, signal, now)
                else:
                    incident = await self._open_from_signal(tx, signal, now)
                    opened = True
        self._committed(incident, now, opened=opened)
        return incident

    async def _refire(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        await self._signal_entry(tx, incident, signal, now)
        await self._set_components(tx, signal.components, signal.severity, now)
        if incident.status == IncidentStatus.MONITORING:  # the fix did not hold
            incident = replace(incident, status=IncidentStatus.INVESTIGATING, updated_at=now)
            await tx.incidents.save(incident)
            await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.STATUS, status=incident.status,
                                                       body="Signal fired again while monitoring"))
        return incident

    async def _related_open(self, tx: Tx, signal: Signal, now: datetime) -> Incident | None:
        """An open incident on one of the signal's components, opened within the grouping window (one outage)."""
        if not signal.components or self.policy.group_window_s <= 0:
            return None
        since = now - timedelta(seconds=self.policy.group_window_s)
        if signal.source == "reports":  # customers confirming an outage already known, however old
            since = datetime.min.replace(tzinfo=now.tzinfo)
        for incident in await tx.incidents.list_open():
            if incident.opened_at >= since and set(incident.components) & set(signal.components):
                return incident
        return None

    async def _join(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        """Record a second detector's view of the same outage on the open incident; nobody is paged again."""
        await tx.incidents.add_entry(TimelineEntry(
            incident.id, now, EntryKind.SIGNAL, author=signal.source, data={**signal.evidence, "joined": signal.dedup_key},
            body=f"Joined: {signal.summary}"))
        await self._set_components(tx, signal.components, signal.severity, now)
        impact = max(incident.impact, impact_for(signal.severity), key=lambda i: i.rank)
        incident = replace(incident, components=tuple(dict.fromkeys(incident.components + signal.components)),
                           impact=impact, updated_at=now)
        await tx.incidents.save(incident)
        return incident

    async def _open_from_signal(self, tx: Tx, signal: Signal, now: datetime) -> Incident:
        escalation = self._snapshot_policy()
        # The title is public: name what customers see, not the probe or its socket error
        # (those stay in the internal SIGNAL entry).
        # Without components (a surge of reports grouped by their text) the status alone, not
        # "our services: degraded performance" with a lower-case start.
        title = (f"{await self._names(tx, signal.components)}: {signal.severity.label.lower()}"
                 if signal.components else signal.severity.label)
        incident = await tx.incidents.create(NewIncident(
            title=title, status=IncidentStatus.INVESTIGATING, impact=impact_for(signal.severity),
            components=signal.components, opened_at=now, source=signal.source, dedup_key=signal.dedup_key,
            assignee=self._first_responder(escalation, now), escalation=escalation,
        ))
        await self._signal_entry(tx, incident, signal, now)
        await self._set_components(tx, signal.components, signal.severity, now)
        await self._page(tx, incident, 0, now)
        if self.policy.notify_subscribers_on_open:
            body = self.policy.opened_message.format(components=await self._names(tx, incident.components))
            incident = await self._public_update(tx, incident, IncidentStatus.INVESTIGATING, body,
                                                 AUTOMATED_AUTHOR, now, notify=True)
        return incident

    async def _reopen(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> Incident:
        escalation = dict(incident.escalation)
        if escalation:
            escalation["epoch"] = int(escalation.get("epoch", 0)) + 1  # fresh keys: page again
        incident = replace(incident, resolved_at=None, acknowledged_at=None, acknowledged_by=None,
                           status=IncidentStatus.INVESTIGATING, escalation=escalation, updated_at=now)
        await tx.incidents.save(incident)
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.REOPENED,
                                                   body=f"Re-opened: {signal.summary}", author=signal.source))
        await self._signal_entry(tx, incident, signal, now)
        await self._set_components(tx, signal.components, signal.severity, now)
        await self._page(tx, incident, 0, now)
        body = self.policy.reopened_message.format(components=await self._names(tx, incident.components))
        return await self._public_update(tx, incident, IncidentStatus.INVESTIGATING, body, AUTOMATED_AUTHOR, now,
                                         notify=True)

    async def _recover(self, signal: Signal) -> Incident | None:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            incident = await tx.incidents.find_open_by_dedup_key(signal.dedup_key)
            if incident is not None:
                await self._signal_entry(tx, incident, signal, now)
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
        """Open an incident by hand with its first public update, and page per the escalation policy."""
        now = self.clock.now()
        if not status.is_open:
            raise ValidationError("status", "a new incident must be open (investigating, identified or monitoring)")
        comps = tuple(dict.fromkeys(components))
        if impact is None:
            impact = impact_for(component_status) if component_status else Impact.MINOR
        escalation = self._snapshot_policy()
        async with self.store.transaction() as tx:
            await self._require_components(tx, comps)
            incident = await tx.incidents.create(NewIncident(
                title=title, status=status, impact=impact, components=comps, opened_at=now, source="manual",
                assignee=self._first_responder(escalation, now), escalation=escalation))
            if component_status is not None:
                await self._set_components(tx, comps, component_status, now)
            await self._page(tx, incident, 0, now)
            incident = await self._public_update(tx, incident, status, body, author, now, notify=notify)
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
            incident = await self._get_open(tx, incident_id)
            if impact is not None:
                incident = replace(incident, impact=impact)
            if component_status is not None:
                await self._set_components(tx, incident.components, component_status, now)
            if status is IncidentStatus.RESOLVED:
                incident = await self._resolve(tx, incident, body, author, now, notify=notify)
            else:
                incident = await self._public_update(tx, incident, status or incident.status, body, author, now,
                                                     notify=notify)
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
            incident = await self._get_open(tx, incident_id)
            handoff = incident.handoff
            if handoff is not None and person is not None and handoff["to"] == person:
                incident = replace(incident, commander=person, handoff=None, updated_at=now)
                await tx.incidents.save(incident)
                await tx.timers.cancel(incident.id, ["handoff"], now)
                await tx.incidents.add_entry(TimelineEntry(
                    incident.id, now, EntryKind.HANDOFF, author=by, data={"from": handoff["from"], "to": person},
                    body=f"{self._name(person)} accepted the handoff from {self._name(handoff['from'])}"))
            elif incident.acknowledged_at is not None:
                raise Conflict(f"incident {incident_id} was already acknowledged by {incident.acknowledged_by}")
            else:
                incident = replace(incident, acknowledged_at=now, acknowledged_by=by, updated_at=now,
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
            incident = await self._get_open(tx, incident_id)
            current = incident.commander or person or incident.assignee
            if current == to:
                raise Conflict(f"{self._name(to)} already owns incident {incident_id}")
            handoff = {"from": current, "to": to, "note": note, "at": now.isoformat()}
            incident = replace(incident, handoff=handoff, updated_at=now)
            await tx.incidents.save(incident)
            await tx.timers.cancel(incident.id, ["handoff"], now)
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.HANDOFF, author=by, data=handoff,
                body=f"Handoff from {self._name(current)} to {self._name(to)} requested: {note}".rstrip(": ")))
            context = self._context(await self._snapshot(tx, incident), None, handoff=self._handoff_context(handoff))
            await self._send_to_person(tx, to, "handoff", context, key=f"handoff:{incident.id}:{handoff['at']}",
                                       incident=incident, created_at=now)
            await tx.timers.schedule(Timer("handoff", incident.id, now + timedelta(
                seconds=self.policy.handoff_ack_timeout_s), {"at": handoff["at"]}, created_at=now))
        self._committed(incident, now)
        return incident

    async def set_comms(self, incident_id: int, *, person: str | None, by: str) -> Incident:
        """Name who writes the public updates (None clears it); reminders go to them too."""
        now = self.clock.now()
        if person is not None and person not in self.people:
            raise ValidationError("person", f"no person {person!r} in [people]")
        async with self.store.transaction() as tx:
            incident = await self._get_open(tx, incident_id)
            incident = replace(incident, comms=person, updated_at=now)
            await tx.incidents.save(incident)
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.ROLE, author=by, data={"comms": person},
                body=f"Communications: {self._name(person)}" if person else "Communications role cleared"))
        self._committed(incident, now)
        return incident

    async def publish_postmortem(self, incident_id: int, *, body: str, author: str, notify: bool) -> Incident:
        """Attach a Markdown postmortem to a resolved incident and publish it."""
        now = self.clock.now()
        if not body.strip():
            raise ValidationError("body", "a postmortem needs a text")
        async with self.store.transaction() as tx:
            incident = await tx.incidents.get(incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            if incident.merged_into is not None:  # its story goes on in the other one, and so does its postmortem
                raise Conflict(f"incident {incident_id} was merged into incident {await self._merged_end(tx, incident)}; "
                               f"publish the postmortem there, once that one is resolved")
            if incident.resolved_at is None:
                raise Conflict(f"incident {incident_id} is not resolved yet; publish the postmortem after resolution")
            incident = replace(incident, status=IncidentStatus.POSTMORTEM, postmortem=body, postmortem_at=now,
                               updated_at=now)
            await tx.incidents.save(incident)
            entry = await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.POSTMORTEM, author=author,
                                                               body="Postmortem published"))
            if notify:
                context = self._context(await self._snapshot(tx, incident), None)
                context["postmortem"] = {"body": body, "author": author, "at": now.isoformat()}
                await tx.outbox.enqueue(
                    OutboxMessage(key=f"postmortem:{entry.id}:{sub.notifier}:{sub.target}", notifier=sub.notifier,
                                  recipient=sub.target, template="postmortem", context=context, created_at=now)
                    for sub in await tx.subscribers.for_components(incident.components))
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
            source = await self._get_open(tx, source_id)
            target = await tx.incidents.get(into)
            if target is None or not target.status.is_open:
                raise ValidationError("into", f"incident {into} does not exist or is not open")
            for entry in (await tx.incidents.entries([source.id]))[source.id]:
                await tx.incidents.add_entry(replace(entry, id=None, incident_id=target.id,
                                                     data={**entry.data, "merged_from": source.id}))
            key = source.dedup_key
            await tx.reports.move(source.id, target.id)
            await tx.timers.cancel(source.id, ALL_TIMERS, now)
            source = replace(source, resolved_at=now, merged_into=target.id, dedup_key=None, handoff=None)
            source = await self._public_update(
                tx, source, IncidentStatus.RESOLVED,
                f"This incident is being handled together with \"{target.title}\"; follow the updates there.",
                by, now, notify=False)
            await tx.incidents.add_entry(TimelineEntry(source.id, now, EntryKind.MERGED, author=by,
                                                       data={"into": target.id}, body=f"Merged into #{target.id}"))
            impact = max(source.impact, target.impact, key=lambda i: i.rank)
            target = replace(target, components=tuple(dict.fromkeys(target.components + source.components)),
                             impact=impact, dedup_key=target.dedup_key or key, updated_at=now)
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
            latest = await self._latest_public(tx, incident)
            context = self._context(await self._snapshot(tx, incident), latest)
            await tx.outbox.enqueue(
                OutboxMessage(key=f"client:{incident.id}:{notifier}:{address}", notifier=notifier,
                              recipient=address, template="report_ack", context=context, created_at=now)
                for notifier, address in new_contacts)
        return True

    async def _latest_public(self, tx: Tx, incident: Incident) -> TimelineEntry | None:
        entries = (await tx.incidents.entries([incident.id], public_only=True))[incident.id]
        return entries[-1] if entries else None

    async def set_component_status(self, component_id: str, status: ComponentStatus) -> bool:
        """Set a component's status by hand; returns whether it changed."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            await self._require_components(tx, (component_id,))
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
            if incident is None or not incident.status.is_open:
                return False
            if taken.kind == "escalate":
                if incident.acknowledged_at is not None:
                    return False
                await self._page(tx, incident, int(taken.payload["step"]), now)
            elif taken.kind == "remind":
                await self._remind(tx, incident, taken, now)
            elif taken.kind == "handoff":
                if incident.handoff is None or incident.handoff.get("at") != taken.payload.get("at"):
                    return False
                await self._remind_handoff(tx, incident, now)
            else:
                log.error("unknown timer kind %r (timer %s)", taken.kind, taken.id)
                return False
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

    def _name(self, person_id: str | None) -> str:
        if person_id is None:
            return "nobody"
        person = self.people.get(person_id)
        return person.name if person else person_id

    async def _signal_entry(self, tx: Tx, incident: Incident, signal: Signal, now: datetime) -> None:
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.SIGNAL, body=signal.summary,
                                                   author=signal.source, data=dict(signal.evidence)))

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

    async def _page(self, tx: Tx, incident: Incident, step: int, now: datetime) -> None:
        """Page escalation step `step` (level step % levels, round step // levels) and schedule the next step."""
        escalation = incident.escalation
        levels = escalation.get("levels") or []
        if not levels:
            if step == 0:
                await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ASSIGNED,
                                                           body="No escalation policy: nobody was paged"))
                log.warning("incident %s opened with no escalation policy", incident.id)
            return
        for _ in range(len(levels) * (int(escalation.get("repeat", 0)) + 1) + 1):  # skip levels with nobody on call
            round_, index = divmod(step, len(levels))
            if round_ > int(escalation.get("repeat", 0)):
                await self._fallback(tx, incident, now)
                return
            level = levels[index]
            people = self._targets(level["targets"], now)
            if people:
                break
            await tx.incidents.add_entry(TimelineEntry(
                incident.id, now, EntryKind.ESCALATED, data={"step": step, "level": index},
                body=f"Level {index + 1}: nobody on call for {', '.join(level['targets'])}; skipping"))
            step += 1
        else:
            return
        context = self._context(await self._snapshot(tx, incident), None)
        epoch = escalation.get("epoch", 0)
        for person_id in people:
            await self._send_to_person(tx, person_id, "alert", context, key=f"alert:{incident.id}:{epoch}.{step}",
                                       incident=incident, created_at=now)
        names = ", ".join(self._name(p) for p in people)
        if step == 0:
            body = f"Assigned to {names} (on call when the incident opened)"
            kind = EntryKind.ASSIGNED
        else:
            timeout = levels[(step - 1) % len(levels)]["ack_timeout_s"]
            body = f"No acknowledgement within {_duration(timeout)}: paged {names} (level {index + 1})"
            kind = EntryKind.ESCALATED
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, kind, body=body,
                                                   data={"step": step, "level": index, "people": people,
                                                         "person": people[0]}))
        await tx.timers.schedule(Timer("escalate", incident.id, now + timedelta(seconds=level["ack_timeout_s"]),
                                       {"step": step + 1}, created_at=now))

    async def _fallback(self, tx: Tx, incident: Incident, now: datetime) -> None:
        fallback = incident.escalation.get("fallback")
        rounds = int(incident.escalation.get("repeat", 0)) + 1
        if not fallback:
            body = f"Nobody acknowledged after {rounds} round(s) of escalation; no fallback is configured"
        else:
            body = f"Nobody acknowledged after {rounds} round(s) of escalation: notified {fallback['address']}"
            context = self._context(await self._snapshot(tx, incident), None)
            epoch = incident.escalation.get("epoch", 0)
            await tx.outbox.enqueue([OutboxMessage(
                key=f"fallback:{incident.id}:{epoch}", notifier=fallback["notifier"], recipient=fallback["address"],
                template="alert", context=context, created_at=now)])
        await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.ESCALATED, body=body,
                                                   data={"fallback": fallback}))

    async def _send_to_person(self, tx: Tx, person_id: str, template: str, context: dict[str, Any], *, key: str,
                              incident: Incident, created_at: datetime) -> None:
        person = self.people.get(person_id)
        if person is None:
            return
        personal = dict(context)
        ack_url = self.ack_url(incident.id, person_id)
        if ack_url is not None:
            personal["actions"] = [{"id": "ack", "label": "Acknowledge", "url": ack_url}]
        personal["recipient"] = {"id": person.id, "name": person.name}
        await tx.outbox.enqueue(
            OutboxMessage(key=f"{key}:{person_id}:{notifier}", notifier=notifier, recipient=address,
                          template=template, context=personal, created_at=created_at)
            for notifier, address in person.contacts.items())

    def ack_url(self, incident_id: int, person_id: str) -> str | None:
        """The signed one-click acknowledgement link for one person, when links are signed."""
        if self.signer is None:
            return None
        return f"{self.page.url}/ack/{incident_id}/{person_id}/{self.signer.sign('ack', incident_id, person_id)}"

    async def _public_update(self, tx: Tx, incident: Incident, status: IncidentStatus, body: str, author: str,
                             now: datetime, *, notify: bool) -> Incident:
        if not body.strip():
            raise ValidationError("body", "a public update needs a text")
        if incident.first_public_update_at is None:
            incident = replace(incident, first_public_update_at=now)
        changed_status = status != incident.status
        incident = replace(incident, status=status, updated_at=now, last_public_update_at=now)
        await tx.incidents.save(incident)
        entry = await tx.incidents.add_entry(TimelineEntry(incident.id, now, EntryKind.UPDATE, body=body, author=author,
                                                           status=status, public=True,
                                                           data={"status_changed": changed_status}))
        if notify:
            await self._notify_update(tx, incident, entry)
        if status.is_open:
            await self._schedule_reminder(tx, incident, now)
        return incident

    async def _schedule_reminder(self, tx: Tx, incident: Incident, now: datetime) -> None:
        """Replace the pending update reminder with one counted from `now`."""
        await tx.timers.cancel(incident.id, ["remind"], now)
        seconds = self.policy.update_reminder_s.get(incident.impact.value)
        if seconds:
            await tx.timers.schedule(Timer("remind", incident.id, now + timedelta(seconds=seconds), created_at=now))

    async def _remind(self, tx: Tx, incident: Incident, timer: Timer, now: datetime) -> None:
        owner = incident.commander or incident.assignee
        recipients = [p for p in dict.fromkeys([owner, incident.comms]) if p is not None]
        last = incident.last_public_update_at or incident.opened_at
        minutes = int((now - last).total_seconds() // 60)
        context = self._context(await self._snapshot(tx, incident), None)
        context["reminder"] = {"minutes_since_update": minutes, "last_update_at": last.isoformat()}
        for person_id in recipients:
            await self._send_to_person(tx, person_id, "reminder", context, key=f"remind:{timer.id}",
                                       incident=incident, created_at=now)
        await tx.incidents.add_entry(TimelineEntry(
            incident.id, now, EntryKind.REMINDER, data={"people": recipients, "minutes": minutes},
            body=f"No public update for {minutes} min: reminded {', '.join(map(self._name, recipients)) or 'nobody'}"))
        if self.observer:
            self.observer.reminder(incident)
        await self._schedule_reminder(tx, incident, now)

    async def _remind_handoff(self, tx: Tx, incident: Incident, now: datetime) -> None:
        handoff = incident.handoff
        assert handoff is not None
        context = self._context(await self._snapshot(tx, incident), None, handoff=self._handoff_context(handoff))
        for person_id in (handoff["to"], handoff["from"]):
            if person_id is not None:
                await self._send_to_person(tx, person_id, "handoff", context,
                                           key=f"handoff-reminder:{incident.id}:{handoff['at']}",
                                           incident=incident, created_at=now)
        await tx.incidents.add_entry(TimelineEntry(
            incident.id, now, EntryKind.HANDOFF, data=handoff,
            body=f"{self._name(handoff['to'])} has not accepted the handoff yet; "
                 f"{self._name(handoff['from'])} still owns the incident"))

    def _handoff_context(self, handoff: dict[str, Any]) -> dict[str, Any]:
        return {"from": self._name(handoff["from"]), "to": self._name(handoff["to"]), "note": handoff["note"],
                "at": handoff["at"]}

    async def _resolve(self, tx: Tx, incident: Incident, body: str, author: str, now: datetime, *,
                       notify: bool) -> Incident:
        incident = replace(incident, resolved_at=now, handoff=None)
        incident = await self._public_update(tx, incident, IncidentStatus.RESOLVED, body, author, now, notify=notify)
        await tx.timers.cancel(incident.id, ALL_TIMERS, now)
        await self._restore_components(tx, incident.components, now, ignoring=incident.id)
        return incident

    async def _notify_update(self, tx: Tx, incident: Incident, entry: TimelineEntry) -> None:
        """Outbox rows for one public update: subscribers, the clients whose reports are linked, and the owner
        when it resolves — each address once."""
        context = self._context(await self._snapshot(tx, incident), entry)
        recipients = {(sub.notifier, sub.target): None for sub in await tx.subscribers.for_components(incident.components)}
        recipients.update({r.contact: None for r in await tx.reports.for_incident(incident.id) if r.contact})
        await tx.outbox.enqueue(
            OutboxMessage(key=f"update:{entry.id}:{notifier}:{address}", notifier=notifier, recipient=address,
                          template="update", context=context, created_at=entry.at)
            for notifier, address in recipients)
        if entry.status == IncidentStatus.RESOLVED:
            for person_id in dict.fromkeys(p for p in (incident.commander or incident.assignee, incident.comms) if p):
                await self._send_to_person(tx, person_id, "update", context, key=f"update:{entry.id}",
                                           incident=incident, created_at=entry.at)

    async def _snapshot(self, tx: Tx, incident: Incident) -> dict[str, Any]:
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
            "assignee": self._name(incident.assignee) if incident.assignee else None,
            "commander": self._name(incident.commander) if incident.commander else None,
            "url": f"{self.page.url}/incidents/{incident.id}",
        }

    def _context(self, incident: dict[str, Any], entry: TimelineEntry | None, **extra: Any) -> dict[str, Any]:
        context: dict[str, Any] = {"incident": incident, "page": {"title": self.page.title, "url": self.page.url},
                                   **extra}
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


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
