"""What the report detector answers for one report: the shape both sides of the process boundary share.

Kept apart from the detector (and free of numpy) so the server can read a detector child's
answers without loading what detection needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from statusd.core.model import Signal


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What became of one report: its group, a Signal if it tipped a surge, and what to link to the incident."""

    report_id: str
    group_key: str
    signal: Signal | None
    incident_key: str | None  # dedup key of the incident this report belongs to (None: not part of a surge)
    link_report_ids: tuple[str, ...]  # link these to that incident now: every member when it opens, else this one
    opened: bool = False  # `signal` starts a new surge (False when it only raises an active one's severity)
    merged: tuple[tuple[str, str], ...] = ()  # (absorbed, into) group keys merged while this report came in
