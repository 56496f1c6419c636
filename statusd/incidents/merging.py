"""Merging: one open incident folded into another — timelines, reports and components combine, the source closes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from statusd.core.model import EntryKind, Incident, TimelineEntry
from statusd.core.protocols import Tx
from statusd.incidents import grouping, lifecycle
from statusd.incidents.lifecycle import ALL_TIMERS, Event
from statusd.incidents.updates import Updates


class Merger:
    """Folds one open incident into another inside the caller's transaction."""

    def __init__(self, updates: Updates) -> None:
        self.updates = updates

    async def merge(self, tx: Tx, source: Incident, target: Incident, *, by: str, now: datetime) -> Incident:
        """The target after `source` was folded into it; the source is closed with a pointer to the target.

        The source's detector follows: its dedup key moves to the target when the target has
        none, so the next signal joins the target and its recovery resolves the target. When the
        target keeps a key of its own, the source's signals are recorded on it as joined, so that
        its detector's next signal (after a restart too) finds the target as the one it joined.
        """
        lifecycle.check(source, Event.MERGE)
        lifecycle.check(target, Event.ABSORB)
        key = source.dedup_key
        for entry in (await tx.incidents.entries([source.id]))[source.id]:
            data = {**entry.data, "merged_from": source.id}
            if entry.kind is EntryKind.SIGNAL and key is not None and "joined" not in data:
                data["joined"] = key
            await tx.incidents.add_entry(replace(entry, id=None, incident_id=target.id, data=data))
        await tx.reports.move(source.id, target.id)
        await tx.timers.cancel(source.id, ALL_TIMERS, now)
        source = await self.updates.publish(
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
        return target


async def merged_end(tx: Tx, incident: Incident) -> int | None:
    """Where a merged incident's story goes on: its target, or that one's target if it was merged in turn."""
    target = incident.merged_into
    for _ in range(100):  # merges only go into open incidents, so a chain never loops; the bound is a guard
        following = await tx.incidents.get(target) if target is not None else None
        if following is None or following.merged_into is None:
            break
        target = following.merged_into
    return target
