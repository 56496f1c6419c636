"""Signed links: what statusd hands out is what its routes take, for that purpose and person only."""

from __future__ import annotations

from aiohttp import web

from statusd.web.signing import Signer
from statusd.web.urls import ACK_ROUTE, ICAL_ROUTE, ack_link_valid, ack_url, ical_link_valid, ical_url

BASE = "https://status.example.com"


def matched(route: str, url: str) -> dict[str, str]:
    resource = web.DynamicResource(route)
    info = resource._match(url.removeprefix(BASE).partition("?")[0])
    assert info is not None, f"{url} does not match {route}"
    return info


def test_an_ack_link_matches_its_route_and_is_valid_only_for_its_incident_and_person() -> None:
    signer = Signer("k" * 32)
    info = matched(ACK_ROUTE, ack_url(BASE, signer, 42, "ann"))

    assert (info["id"], info["person"]) == ("42", "ann")
    assert ack_link_valid(signer, info["sig"], 42, "ann")
    assert not ack_link_valid(signer, info["sig"], 43, "ann")
    assert not ack_link_valid(signer, info["sig"], 42, "bob")
    assert not ack_link_valid(Signer("other" * 8), info["sig"], 42, "ann")
    assert not ack_link_valid(None, info["sig"], 42, "ann")


def test_an_ical_link_matches_its_route_and_is_valid_only_for_its_schedule() -> None:
    signer = Signer("k" * 32)
    url = ical_url(BASE, signer, "primary")
    signature = url.partition("?sig=")[2]

    assert matched(ICAL_ROUTE, url)["id"] == "primary"
    assert ical_link_valid(signer, signature, "primary")
    assert not ical_link_valid(signer, signature, "secondary")
    assert not ical_link_valid(signer, ack_url(BASE, signer, 1, "primary").rpartition("/")[2], "primary")
    assert not ical_link_valid(None, signature, "primary")
