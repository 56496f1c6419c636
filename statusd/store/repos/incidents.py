"""Incidents and their timelines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from statusd.core.model import EntryKind, Impact, Incident, IncidentStatus, NewIncident, TimelineEntry
from statusd.store.session import Repo, Row


class SqlIncidents(Repo):
    """Incidents and their timelines on one session."""

    async def create(self, incident: NewIncident) -> Incident:
        """Insert a new incident; the partial unique index refuses a second open one per dedup key."""
        d = self.dialect
        row = await self.db.one(
            "INSERT INTO incidents (title, status, impact, components, source, dedup_key, assignee, escalation,"
            " opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (incident.title, incident.status.value, incident.impact.value, d.json(list(incident.components)),
             incident.source, incident.dedup_key, incident.assignee, d.json(incident.escalation),
             d.time(incident.opened_at), d.time(incident.opened_at)))
        assert row is not None
        return self._incident(row)

    async def get(self, incident_id: int) -> Incident | None:
        """One incident, or None."""
        row = await self.db.one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return self._incident(row) if row else None

    async def save(self, incident: Incident) -> None:
        """Store every mutable field of an existing incident."""
        d = self.dialect
        await self.db.execute(
            "UPDATE incidents SET title = ?, status = ?, impact = ?, components = ?, assignee = ?,"
            " acknowledged_at = ?, acknowledged_by = ?, first_public_update_at = ?, updated_at = ?,"
            " resolved_at = ?, commander = ?, comms = ?, escalation = ?, handoff = ?, last_public_update_at = ?,"
            " postmortem = ?, postmortem_at = ?, merged_into = ?, dedup_key = ? WHERE id = ?",
            (incident.title, incident.status.value, incident.impact.value, d.json(list(incident.components)),
             incident.assignee, d.time(incident.acknowledged_at), incident.acknowledged_by,
             d.time(incident.first_public_update_at), d.time(incident.updated_at), d.time(incident.resolved_at),
             incident.commander, incident.comms, d.json(incident.escalation), d.json(incident.handoff),
             d.time(incident.last_public_update_at), incident.postmortem, d.time(incident.postmortem_at),
             incident.merged_into, incident.dedup_key, incident.id))

    async def find_open_by_dedup_key(self, dedup_key: str) -> Incident | None:
        """The unresolved incident with this dedup key, or None."""
        row = await self.db.one("SELECT * FROM incidents WHERE dedup_key = ? AND resolved_at IS NULL", (dedup_key,))
        return self._incident(row) if row else None

    async def find_open_joined(self, dedup_key: str) -> Incident | None:
        """The open incident a signal with this key joined, or None."""
        # Only the open incidents' entries are read, through the timeline's (incident_id, …) index.
        joined = self.dialect.json_field("data", "joined")
        row = await self.db.one("SELECT * FROM incidents AS i WHERE resolved_at IS NULL AND EXISTS (SELECT 1 FROM"
                                f" timeline WHERE incident_id = i.id AND kind = 'signal' AND {joined} = ?)"
                                " ORDER BY opened_at DESC, id DESC LIMIT 1", (dedup_key,))
        return self._incident(row) if row else None

    async def find_recent_by_dedup_key(self, dedup_key: str, resolved_since: datetime) -> Incident | None:
        """The latest incident with this key resolved since `resolved_since`, or None."""
        row = await self.db.one("SELECT * FROM incidents WHERE dedup_key = ? AND resolved_at >= ? AND merged_into IS NULL"
                                " ORDER BY resolved_at DESC, id DESC LIMIT 1",
                                (dedup_key, self.dialect.time(resolved_since)))
        return self._incident(row) if row else None

    async def list_open(self) -> list[Incident]:
        """Unresolved incidents, newest first."""
        rows = await self.db.all("SELECT * FROM incidents WHERE resolved_at IS NULL ORDER BY opened_at DESC, id DESC")
        return [self._incident(r) for r in rows]

    async def open_keys(self) -> dict[int, str | None]:
        """Id → dedup key of every unresolved incident."""
        rows = await self.db.all("SELECT id, dedup_key FROM incidents WHERE resolved_at IS NULL")
        return {r["id"]: r["dedup_key"] for r in rows}

    async def list_recent(self, since: datetime, limit: int = 50) -> list[Incident]:
        """Incidents opened or resolved since `since`, open or not, newest first."""
        at = self.dialect.time(since)
        rows = await self.db.all("SELECT * FROM incidents WHERE resolved_at IS NULL OR resolved_at >= ? OR opened_at >= ?"
                                 " ORDER BY opened_at DESC, id DESC LIMIT ?", (at, at, limit))
        return [self._incident(r) for r in rows]

    async def add_entry(self, entry: TimelineEntry) -> TimelineEntry:
        """Append a timeline entry; returns it with its id."""
        d = self.dialect
        row = await self.db.one(
            "INSERT INTO timeline (incident_id, at, kind, body, author, status, public, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (entry.incident_id, d.time(entry.at), entry.kind.value, entry.body, entry.author,
             entry.status.value if entry.status else None, d.flag(entry.public), d.json(entry.data)))
        assert row is not None
        return dataclasses.replace(entry, id=row["id"])

    async def entries(self, incident_ids: Iterable[int], *, public_only: bool = False) -> dict[int, list[TimelineEntry]]:
        """Timeline entries per incident, oldest first."""
        d = self.dialect
        ids = list(incident_ids)
        out: dict[int, list[TimelineEntry]] = {i: [] for i in ids}
        if not ids:
            return out
        wanted, params = d.any_of("incident_id", ids, "bigint")
        where = " AND public" if public_only else ""  # a flag column is true as such in both dialects
        for r in await self.db.all(f"SELECT * FROM timeline WHERE {wanted}{where} ORDER BY at, id", params):
            out[r["incident_id"]].append(TimelineEntry(
                id=r["id"], incident_id=r["incident_id"], at=d.read_instant(r["at"]), kind=EntryKind(r["kind"]),
                body=r["body"], author=r["author"], status=IncidentStatus(r["status"]) if r["status"] else None,
                public=bool(r["public"]), data=d.read_json(r["data"])))
        return out

    def _incident(self, r: Row) -> Incident:
        d = self.dialect
        return Incident(
            id=r["id"], title=r["title"], status=IncidentStatus(r["status"]), impact=Impact(r["impact"]),
            components=tuple(d.read_json(r["components"])), source=r["source"], dedup_key=r["dedup_key"],
            assignee=r["assignee"], acknowledged_at=d.read_time(r["acknowledged_at"]),
            acknowledged_by=r["acknowledged_by"], first_public_update_at=d.read_time(r["first_public_update_at"]),
            opened_at=d.read_instant(r["opened_at"]), updated_at=d.read_instant(r["updated_at"]),
            resolved_at=d.read_time(r["resolved_at"]), commander=r["commander"], comms=r["comms"],
            escalation=d.read_json(r["escalation"]), handoff=d.read_json(r["handoff"]),
            last_public_update_at=d.read_time(r["last_public_update_at"]), postmortem=r["postmortem"],
            postmortem_at=d.read_time(r["postmortem_at"]), merged_into=r["merged_into"])
