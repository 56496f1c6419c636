"""Customer reports, and which incident each one is linked to: the report intake's hot path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from statusd.core.model import CustomerReport
from statusd.store.dialect import json_text
from statusd.store.session import Repo, Row

_ROWS_PER_INSERT = 2000  # 11 parameters a report, under SQLite's 32,766
_PAIRS_PER_UPDATE = 5000  # three parameters a link, under SQLite's 32,766


class SqlReports(Repo):
    """Customer reports on one session.

    A batch is one statement, whichever the dialect: with array parameters (PostgreSQL) the
    whole batch travels as eleven arrays; without (SQLite) as rows of placeholders, each
    statement a hop to the connection's thread and back.
    """

    async def add(self, report: CustomerReport) -> tuple[CustomerReport, bool]:
        """Store a report; the same (source, external_id) again returns the stored one and False."""
        [result] = await self.add_many([report])
        return result

    async def add_many(self, reports: Sequence[CustomerReport]) -> list[tuple[CustomerReport, bool]]:
        """`add` for each report in order; a repeat within the batch is a repeat of its first."""
        if not reports:
            return []
        if self.dialect.arrays:
            return await self._add_many_as_arrays(reports)
        return await self._add_many_as_rows(reports)

    async def _add_many_as_rows(self, reports: Sequence[CustomerReport]) -> list[tuple[CustomerReport, bool]]:
        # Ids grow in VALUES order, so the new rows sorted by id come back in input order, skipping
        # the repeats (which are then read one by one: rare).
        new: list[Row] = []
        for start in range(0, len(reports), _ROWS_PER_INSERT):
            chunk = reports[start:start + _ROWS_PER_INSERT]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            new += await self.db.all(
                "INSERT INTO reports (source, external_id, client_id, channel, text, tags, contact_notifier,"
                f" contact_address, ticket_url, received_at, created_at) VALUES {values}"
                " ON CONFLICT (source, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING *",
                [v for r in chunk for v in self._values(r)])
        rows = iter(sorted(new, key=lambda r: r["id"]))
        results: list[tuple[CustomerReport, bool]] = []
        row = next(rows, None)
        for report in reports:
            if row is not None and (row["source"], row["external_id"]) == (report.source, report.external_id):
                results.append((self._report(row), True))
                row = next(rows, None)
            else:
                results.append((await self._existing(report), False))
        return results

    def _values(self, r: CustomerReport) -> tuple[Any, ...]:
        d = self.dialect
        notifier, address = r.contact or (None, None)
        return (r.source, r.external_id, r.client_id, r.channel, r.text, d.json(r.tags), notifier, address,
                r.ticket_url, d.time(r.received_at), d.time(r.created_at or r.received_at))

    async def _add_many_as_arrays(self, reports: Sequence[CustomerReport]) -> list[tuple[CustomerReport, bool]]:
        # Ids are drawn per input row up front, so each new row joins back to its position (n) whatever
        # order RETURNING takes; only the first of a batch's repeats is inserted, in key order so that
        # replicas storing overlapping batches wait on each other instead of deadlocking. The second
        # branch reads repeats of rows stored before this statement (it cannot see the new ones).
        d = self.dialect
        rows = await self.db.all(
            "WITH batch AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('reports', 'id')) AS id, i.*"
            " FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
            " ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[]) WITH ORDINALITY"
            " AS i (source, external_id, client_id, channel, text, tags, contact_notifier, contact_address,"
            " ticket_url, received_at, created_at, n)),"
            " inserted AS (INSERT INTO reports (id, source, external_id, client_id, channel, text, tags, contact_notifier,"
            " contact_address, ticket_url, received_at, created_at)"
            " SELECT id, source, external_id, client_id, channel, text, tags::jsonb, contact_notifier,"
            " contact_address, ticket_url, received_at, created_at FROM batch i"
            " WHERE NOT EXISTS (SELECT 1 FROM batch e WHERE e.source = i.source AND e.external_id = i.external_id"
            " AND e.n < i.n) ORDER BY source, external_id, n"
            " ON CONFLICT (source, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING *)"
            " SELECT i.n, inserted.* FROM inserted JOIN batch i USING (id)"
            " UNION ALL SELECT NULL, r.* FROM reports r WHERE r.external_id IS NOT NULL"
            " AND (r.source, r.external_id) IN (SELECT source, external_id FROM batch)",
            ([r.source for r in reports], [r.external_id for r in reports], [r.client_id for r in reports],
             [r.channel for r in reports], [r.text for r in reports], [json_text(dict(r.tags)) for r in reports],
             [r.contact[0] if r.contact else None for r in reports],
             [r.contact[1] if r.contact else None for r in reports], [r.ticket_url for r in reports],
             [d.time(r.received_at) for r in reports], [d.time(r.created_at or r.received_at) for r in reports]))
        new = {row["n"]: row for row in rows if row["n"] is not None}
        stored = {(row["source"], row["external_id"]): row for row in rows if row["external_id"] is not None}
        results: list[tuple[CustomerReport, bool]] = []
        for n, report in enumerate(reports, 1):
            if n in new:
                results.append((self._report(new[n]), True))
            elif (found := stored.get((report.source, report.external_id))) is not None:
                results.append((self._report(found), False))
            else:  # stored by a transaction that committed after this statement began: rare
                results.append((await self._existing(report), False))
        return results

    async def _existing(self, report: CustomerReport) -> CustomerReport:
        row = await self.db.one("SELECT * FROM reports WHERE source = ? AND external_id = ?",
                                (report.source, report.external_id))
        assert row is not None
        return self._report(row)

    async def link(self, report_ids: Iterable[int], incident_id: int) -> list[CustomerReport]:
        """Link reports not linked yet; returns the newly linked ones."""
        ids = list(report_ids)
        if not ids:
            return []
        wanted, params = self.dialect.any_of("id", ids, "bigint")
        rows = await self.db.all(f"UPDATE reports SET incident_id = ? WHERE {wanted} AND incident_id IS NULL"
                                 " RETURNING *", (incident_id, *params))
        return self._in_order(rows)

    async def link_many(self, links: Mapping[int, Sequence[int]]) -> list[CustomerReport]:
        """`link` for several incidents in one statement (per few thousand links without arrays)."""
        pairs = [(report_id, incident_id) for incident_id, ids in links.items() for report_id in ids]
        if not pairs:
            return []
        if self.dialect.arrays:
            return self._in_order(await self.db.all(
                "UPDATE reports AS r SET incident_id = v.incident_id FROM unnest(?::bigint[], ?::bigint[])"
                " AS v(id, incident_id) WHERE r.id = v.id AND r.incident_id IS NULL RETURNING r.*",
                ([p[0] for p in pairs], [p[1] for p in pairs])))
        rows: list[Row] = []
        for start in range(0, len(pairs), _PAIRS_PER_UPDATE):
            chunk = pairs[start:start + _PAIRS_PER_UPDATE]
            cases = " ".join("WHEN ? THEN ?" for _ in chunk)
            wanted, params = self.dialect.any_of("id", [report_id for report_id, _ in chunk], "bigint")
            rows += await self.db.all(f"UPDATE reports SET incident_id = CASE id {cases} END"
                                      f" WHERE {wanted} AND incident_id IS NULL RETURNING *",
                                      (*(v for pair in chunk for v in pair), *params))
        return self._in_order(rows)

    async def for_incident(self, incident_id: int) -> list[CustomerReport]:
        """Reports linked to the incident, oldest first."""
        rows = await self.db.all("SELECT * FROM reports WHERE incident_id = ? ORDER BY received_at, id", (incident_id,))
        return [self._report(r) for r in rows]

    async def recent(self, since: datetime, limit: int = 100_000) -> list[CustomerReport]:
        """Reports received since `since`, oldest first."""
        rows = await self.db.all("SELECT * FROM reports WHERE received_at >= ? ORDER BY received_at, id LIMIT ?",
                                 (self.dialect.time(since), limit))
        return [self._report(r) for r in rows]

    async def move(self, from_incident: int, to_incident: int) -> int:
        """Re-link every report of one incident to another; returns how many."""
        return await self.db.execute("UPDATE reports SET incident_id = ? WHERE incident_id = ?",
                                     (to_incident, from_incident))

    def _in_order(self, rows: Iterable[Row]) -> list[CustomerReport]:
        return sorted((self._report(r) for r in rows), key=lambda r: (r.received_at, r.id or 0))

    def _report(self, r: Row) -> CustomerReport:
        d = self.dialect
        contact = (r["contact_notifier"], r["contact_address"]) if r["contact_notifier"] else None
        return CustomerReport(id=r["id"], source=r["source"], external_id=r["external_id"], client_id=r["client_id"],
                              channel=r["channel"], text=r["text"], tags=d.read_json(r["tags"]), contact=contact,
                              ticket_url=r["ticket_url"], received_at=d.read_instant(r["received_at"]),
                              created_at=d.read_time(r["created_at"]), incident_id=r["incident_id"])
