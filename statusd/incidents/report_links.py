"""Customer reports linked to incidents: a timeline note for a surge, and each newly affected client told once."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from statusd.core.model import AUTOMATED_AUTHOR, CustomerReport, EntryKind, TimelineEntry
from statusd.core.protocols import Tx
from statusd.incidents.messages import Messages


class ReportLinks:
    """Links reports to incidents inside the caller's transaction, with the note and acknowledgements that follow."""

    def __init__(self, messages: Messages) -> None:
        self.messages = messages

    async def link(self, tx: Tx, links: Mapping[int, Sequence[int]], now: datetime, *,
                   noted: Collection[int] | None, open_only: bool) -> tuple[dict[int, int], bool]:
        """How many reports were newly linked to each incident, and whether anything anyone sees was written.

        See `Coordinator.link_reports_many` for `noted` and `open_only`.
        """
        if open_only:
            still_open = await tx.incidents.open_keys()
            links = {incident_id: ids for incident_id, ids in links.items() if incident_id in still_open}
        by_incident: dict[int, list[CustomerReport]] = {}
        for report in await tx.reports.link_many(links):
            assert report.incident_id is not None
            by_incident.setdefault(report.incident_id, []).append(report)
        wrote = [await self._linked(tx, incident_id, linked, now, note=noted is None or incident_id in noted)
                 for incident_id, linked in by_incident.items()]
        return {incident_id: len(by_incident.get(incident_id, ())) for incident_id in links}, any(wrote)

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
