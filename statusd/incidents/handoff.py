"""A pending handoff of an incident's ownership: typed here, stored as the JSON object `Incident.handoff`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Handoff:
    """`from_person` asked `to` to take the incident over at `at`; `from_person` owns it until `to` accepts.

    Stored as `{"from", "to", "note", "at"}` with `at` in ISO 8601, exactly as before it was typed.
    """

    from_person: str | None  # None when the incident had no owner yet
    to: str
    note: str
    at: datetime

    @property
    def stamp(self) -> str:
        """`at` as stored: names this handoff in its timer's payload and in its outbox keys."""
        return self.at.isoformat()

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object."""
        return {"from": self.from_person, "to": self.to, "note": self.note, "at": self.stamp}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Handoff:
        """The handoff a stored JSON object describes."""
        return cls(from_person=data["from"], to=data["to"], note=data["note"], at=datetime.fromisoformat(data["at"]))

    @classmethod
    def pending(cls, data: Mapping[str, Any] | None) -> Handoff | None:
        """The handoff stored on an incident (`Incident.handoff`), or None when none is pending."""
        return None if data is None else cls.from_json(data)
