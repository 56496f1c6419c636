"""Ack links are signed for one page cycle; a cycle-0 link is what links were before cycles existed."""

from __future__ import annotations

from statusd.web.signing import Signer
from statusd.web.urls import ack_link_cycle, ack_link_valid, ack_url

BASE = "https://status.example.com"


def signature(url: str) -> str:
    return url.rpartition("/")[2]


def test_a_link_is_valid_in_its_own_cycle_only() -> None:
    signer = Signer("k" * 32)
    sig = signature(ack_url(BASE, signer, 42, "ann", cycle=1))
    assert ack_link_valid(signer, sig, 42, "ann", 1)
    assert not ack_link_valid(signer, sig, 42, "ann", 0)
    assert not ack_link_valid(signer, sig, 42, "ann", 2)
    assert ack_link_cycle(signer, sig, 42, "ann", current=3) == 1  # stale: sent before two re-opens
    assert ack_link_cycle(signer, sig, 42, "ann", current=0) is None  # not yet a cycle the incident reached
    assert ack_link_cycle(signer, sig, 42, "bob", current=3) is None


def test_cycle_zero_keeps_the_links_already_sent() -> None:
    signer = Signer("k" * 32)
    assert signature(ack_url(BASE, signer, 42, "ann")) == signer.sign("ack", 42, "ann")


def test_no_person_id_stands_in_for_a_cycle() -> None:
    signer = Signer("k" * 32)
    sig = signature(ack_url(BASE, signer, 42, "ann", cycle=1))
    assert ack_link_cycle(signer, sig, 42, "ann:1", current=5) is None
    assert ack_link_cycle(signer, signature(ack_url(BASE, signer, 42, "ann:1")), 42, "ann", current=5) is None
