"""The signed links statusd hands out, next to the routes that take them, so the two cannot drift apart."""

from __future__ import annotations

from statusd.web.signing import Signer

ACK_ROUTE = "/ack/{id}/{person}/{sig}"  # one-click acknowledgement from an alert
ICAL_ROUTE = "/schedules/{id}.ics"  # an on-call schedule as a private iCal feed


def ack_url(base_url: str, signer: Signer, incident_id: int, person: str) -> str:
    """The link with which `person` acknowledges `incident_id` in one click (valid for them and it only)."""
    return f"{base_url}/ack/{incident_id}/{person}/{signer.sign('ack', incident_id, person)}"


def ack_link_valid(signer: Signer | None, signature: str, incident_id: int, person: str) -> bool:
    """Whether `signature` is the one ack_url gave `person` for `incident_id`; never without a signer."""
    return signer is not None and signer.verify(signature, "ack", incident_id, person)


def ical_url(base_url: str, signer: Signer, schedule: str) -> str:
    """The private iCal feed URL of `schedule`."""
    return f"{base_url}/schedules/{schedule}.ics?sig={signer.sign('ical', schedule)}"


def ical_link_valid(signer: Signer | None, signature: str, schedule: str) -> bool:
    """Whether `signature` is the one ical_url gave `schedule`; never without a signer."""
    return signer is not None and signer.verify(signature, "ical", schedule)
