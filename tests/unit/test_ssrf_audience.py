"""Operators' recipients against outsiders': who is which, and what an outsider's payload keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from statusd.core.model import OutboxMessage, Rendered
from statusd.notify.audience import Audience, public_view

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Named:
    """A stand-in notifier: the audience only picks one, it never sends."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        raise AssertionError("not sent in these tests")


def message(notifier: str, recipient: str) -> OutboxMessage:
    return OutboxMessage(key="k", notifier=notifier, recipient=recipient, template="update", context={},
                         created_at=NOW)


def test_config_names_the_operators_and_everyone_else_is_an_outsider() -> None:
    plain, guarded = Named("hooks"), Named("hooks-guarded")
    audience = Audience({("hooks", "http://127.0.0.1:9000/ann")}, {"hooks": guarded})
    ann = message("hooks", "http://127.0.0.1:9000/ann")
    subscriber = message("hooks", "http://127.0.0.1:9000/ann?x")  # any other spelling is someone else's
    assert not audience.is_outsider(ann) and audience.notifier_for(ann, plain) is plain
    assert audience.is_outsider(subscriber) and audience.notifier_for(subscriber, plain) is guarded
    # A channel whose recipients are no hosts (a mailbox) has no guarded twin: its own notifier sends.
    mail = Named("mail")
    assert audience.notifier_for(message("mail", "x@example.com"), mail) is mail


def test_the_public_view_keeps_only_the_public_fields() -> None:
    payload: dict[str, Any] = {
        "event": "update",
        "incident": {"id": 7, "title": "API errors", "status": "identified", "impact": "major",
                     "components": ["Public API"], "component_ids": ["api"], "opened_at": NOW.isoformat(),
                     "url": "https://status.example.com/incidents/7", "source": "probe:api-health",
                     "assignee": "Ann Duty", "commander": "Bob", "internal_note": "db01 disk full"},
        "update": {"id": 3, "status": "identified", "body": "Rolling back.", "author": "Dana", "at": NOW.isoformat()},
        "page": {"title": "Example status", "url": "https://status.example.com"},
        "actions": [{"id": "ack", "url": "https://status.example.com/ack/7/ann/sig"}],
        "recipient": {"id": "ann", "name": "Ann Duty"},
        "handoff": {"from": "Ann Duty", "to": "Bob", "note": "taking over"},
    }
    view = public_view(payload)
    assert set(view) == {"event", "incident", "update", "page"}
    assert set(view["incident"]) == {"id", "title", "status", "impact", "components", "component_ids",
                                     "opened_at", "url"}
    assert view["update"] == payload["update"] and view["page"] == payload["page"]
