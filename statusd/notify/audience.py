"""Whose a recipient is: the operator's own (from config) or an outsider's (a subscriber, a reporting client).

Operators' recipients get everything and are reached over the plain session. Outsiders' recipients
get the public view of a message only — no assignee, commander, source or other internal field —
and are reached through the notifiers built on the guarded session, which refuses private and
loopback addresses at connect time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from statusd.core.model import OutboxMessage
from statusd.core.protocols import Notifier

# What an outsider may see of a message's JSON, by section; anything not named here stays inside.
# These are the fields the public status page shows too.
PUBLIC_FIELDS: dict[str, frozenset[str]] = {
    "incident": frozenset({"id", "title", "status", "impact", "components", "component_ids", "opened_at", "url"}),
    "update": frozenset({"id", "status", "body", "author", "at"}),
    "postmortem": frozenset({"body", "author", "at"}),
    "page": frozenset({"title", "url"}),
}
PUBLIC_SCALARS = frozenset({"event"})


def public_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`payload` with only the fields an outsider may see (an allow-list: a new internal field stays out)."""
    view: dict[str, Any] = {key: payload[key] for key in PUBLIC_SCALARS if key in payload}
    for section, fields in PUBLIC_FIELDS.items():
        value = payload.get(section)
        if isinstance(value, Mapping):
            view[section] = {k: v for k, v in value.items() if k in fields}
    return view


class Audience:
    """Tells operators' recipients from outsiders', and holds the guarded notifiers outsiders are sent through."""

    def __init__(self, operators: Iterable[tuple[str, str]], guarded: Mapping[str, Notifier]) -> None:
        """`operators`: every (notifier, address) config names (people's contacts, fallbacks); `guarded`: the
        notifiers whose recipients are hosts, built on the guarded session, by name."""
        self.operators = frozenset(operators)
        self.guarded = dict(guarded)

    def is_outsider(self, message: OutboxMessage) -> bool:
        """Whether the message goes to a recipient config does not name (a subscriber or a reporting client)."""
        return (message.notifier, message.recipient) not in self.operators

    def notifier_for(self, message: OutboxMessage, notifier: Notifier) -> Notifier:
        """The notifier to send `message` with: the guarded one for an outsider's host, else `notifier`."""
        if self.is_outsider(message):
            return self.guarded.get(message.notifier, notifier)
        return notifier
