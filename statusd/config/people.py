"""`[people]` and `[tokens]`: who can be on duty, and who may call the API with which rights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from statusd.core.schema import Problems, Secret

# incidents:read is every internal read (timelines, linked reports and their contacts, on call, KPIs);
# incidents:write brings it, and admin brings every scope (statusd.web.auth.IMPLIED).
Scope = Literal["incidents:read", "incidents:write", "components:write", "subscribers:write", "reports:write",
                "admin"]
SCOPES: tuple[str, ...] = ("incidents:read", "incidents:write", "components:write", "subscribers:write",
                           "reports:write", "admin")


@dataclass(frozen=True)
class PersonConfig:
    """`[people.<id>]`: someone who can be on duty, with an address on each notifier they are reached by."""

    id: str
    name: str
    contacts: dict[str, str] = field(default_factory=dict)  # notifier name → address on it


@dataclass(frozen=True)
class TokenConfig:
    """`[tokens.<id>]`: an API bearer token, its scopes, and the person it acts as (if any)."""

    id: str
    name: str  # whose token: signs public updates posted with it
    secret: Secret
    scopes: list[Scope] = field(default_factory=list)
    person: str | None = None  # acknowledgements and handoffs with this token act as this person

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        return [] if len(self.secret.reveal()) >= 16 else [("secret", "must be at least 16 characters")]
