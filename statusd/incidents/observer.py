"""What the incident engine tells its observer (the metrics) after each commit."""

from __future__ import annotations

from typing import Protocol

from statusd.core.model import Incident


class IncidentObserver(Protocol):
    """Hears what just happened to an incident, after the transaction that did it committed."""

    def incident_opened(self, incident: Incident) -> None:
        """`incident` was opened (by a detector or by hand)."""

    def first_public_update(self, incident: Incident) -> None:
        """`incident` got its first public update."""

    def incident_acknowledged(self, incident: Incident) -> None:
        """Someone acknowledged `incident`."""

    def incident_resolved(self, incident: Incident) -> None:
        """`incident` was resolved."""

    def reminder(self, incident: Incident) -> None:
        """The people owning `incident` were reminded that a public update is overdue."""
