"""The signed links statusd hands out, next to the routes that take them, so the two cannot drift apart."""

from __future__ import annotations

from statusd.web.signing import Signer

ACK_ROUTE = "/ack/{id}/{person}/{sig}"  # one-click acknowledgement from an alert
ICAL_ROUTE = "/schedules/{id}.ics"  # an on-call schedule as a private iCal feed


def _ack_signed(signer: Signer, incident_id: int, person: str, cycle: int) -> tuple[str, tuple[object, ...]]:
    """What an ack link signs: its incident, person and page cycle; cycle 0 signs as links did before cycles."""
    if cycle == 0:
        return "ack", (incident_id, person)
    # Another purpose, and the numbers ahead of the person id, so no person id can stand in for a cycle.
    return "ack-cycle", (cycle, incident_id, person)


def ack_url(base_url: str, signer: Signer, incident_id: int, person: str, cycle: int = 0) -> str:
    """The link with which `person` acknowledges `incident_id` in one click, in page cycle `cycle` only.

    An incident's page cycle advances each time it re-opens, so a link from an earlier page stops working.
    """
    purpose, parts = _ack_signed(signer, incident_id, person, cycle)
    return f"{base_url}/ack/{incident_id}/{person}/{signer.sign(purpose, *parts)}"


def ack_link_valid(signer: Signer | None, signature: str, incident_id: int, person: str, cycle: int = 0) -> bool:
    """Whether `signature` is the one ack_url gave `person` for `incident_id` in `cycle`; never without a signer."""
    if signer is None:
        return False
    purpose, parts = _ack_signed(signer, incident_id, person, cycle)
    return signer.verify(signature, purpose, *parts)


def ack_link_cycle(signer: Signer | None, signature: str, incident_id: int, person: str,
                   current: int) -> int | None:
    """The page cycle, at most `current`, whose ack link `signature` is for `person` and `incident_id`; else None."""
    for cycle in range(max(current, 0), -1, -1):
        if ack_link_valid(signer, signature, incident_id, person, cycle):
            return cycle
    return None


def ical_url(base_url: str, signer: Signer, schedule: str) -> str:
    """The private iCal feed URL of `schedule`."""
    return f"{base_url}/schedules/{schedule}.ics?sig={signer.sign('ical', schedule)}"


def ical_link_valid(signer: Signer | None, signature: str, schedule: str) -> bool:
    """Whether `signature` is the one ical_url gave `schedule`; never without a signer."""
    return signer is not None and signer.verify(signature, "ical", schedule)
