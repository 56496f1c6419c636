"""A report body → a CustomerReport, or a ValidationError naming the field (`reports[3].contact.address`).

A whole request is validated before anything is stored: a batch with one bad item is refused
whole, naming the item and field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from statusd.web.fields import Fields, parse_time
from statusd.core.clock import Clock
from statusd.core.errors import ValidationError
from statusd.core.model import CustomerReport
from statusd.core.schema import http_url
from statusd.reports.text import TAG_KEYS

REPORT_FIELDS = {"client_id", "text", "channel", "contact", "tags", "received_at", "external_id", "ticket_url"}


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """Bounds on what one report may carry and on the intake's batches (from `[reports]` in config)."""

    max_text_chars: int = 5000
    max_batch: int = 500
    max_future_s: float = 300.0
    max_age_days: float = 30.0
    form_notifier: str | None = None
    form_rate_per_min: int = 5
    commit_batch: int = 1000  # most reports stored in one group commit
    # A report received longer ago than this (the surge window) is backfill: stored and listed, and
    # replayed in time order by a rebuild within `rebuild_hours`, but never part of a live surge.
    live_s: float = 1800.0


class ReportValidator:
    """Turns a JSON object into a CustomerReport; every refusal names the field and says what is wrong."""

    def __init__(self, clock: Clock, *, components: Mapping[str, str], notifiers: Mapping[str, Any],
                 limits: IntakeLimits = IntakeLimits()) -> None:
        self.clock = clock
        self.components = dict(components)  # id → display name
        # name → what vets a contact (`check_recipient`); the app passes `notifiers.guard.OutsiderTargets`, so a
        # contact on a loopback or private host is refused here, naming `contact.address`.
        self.notifiers = dict(notifiers)
        self.limits = limits

    def parse(self, data: Any, path: str, source: str) -> CustomerReport:
        """One report from a JSON object, or ValidationError naming `path.field`."""
        if not isinstance(data, dict):
            raise ValidationError(path or "body", "must be a JSON object")
        body = Fields(data, path, allowed=REPORT_FIELDS)
        now = self.clock.now()
        client_id = body.text("client_id", required=True, max_len=320)  # room for an e-mail address and a prefix
        text = body.text("text", required=True, max_len=self.limits.max_text_chars)
        if not any(c.isprintable() and not c.isspace() for c in text or ""):
            raise ValidationError(body.key("text"), "must contain visible text")
        channel = body.text("channel", max_len=50) or "api"
        external_id = body.text("external_id", max_len=200)
        if external_id == "":  # "" would make every later empty id a duplicate of the first report
            raise ValidationError(body.key("external_id"), "must not be empty (leave it out when there is none)")
        ticket_url = body.text("ticket_url", max_len=2000)
        if ticket_url is not None and not http_url(ticket_url):
            raise ValidationError(body.key("ticket_url"), "expected an absolute http(s) URL")
        contact = self._contact(data.get("contact"), body.key("contact"))
        tags = self._tags(data.get("tags"), body.key("tags"))
        received_at = now
        if data.get("received_at") is not None:
            received_at = parse_time(data["received_at"], body.key("received_at"))
            if received_at > now + timedelta(seconds=self.limits.max_future_s):
                raise ValidationError(body.key("received_at"), "is in the future")
            if received_at < now - timedelta(days=self.limits.max_age_days):
                raise ValidationError(body.key("received_at"), f"is older than {self.limits.max_age_days:g} days")
        return CustomerReport(source=source, client_id=client_id or "", text=text or "", channel=channel,
                              received_at=received_at, tags=tags, contact=contact, external_id=external_id,
                              ticket_url=ticket_url, created_at=now)

    def _contact(self, value: Any, key: str) -> tuple[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"notifier", "address"}:
            raise ValidationError(key, 'expected {"notifier": <name>, "address": <address on it>}')
        notifier, address = value.get("notifier"), value.get("address")
        if not isinstance(notifier, str) or notifier not in self.notifiers:
            raise ValidationError(f"{key}.notifier", "expected one of: " + (", ".join(sorted(self.notifiers)) or "none"))
        if not isinstance(address, str) or not address.strip():
            raise ValidationError(f"{key}.address", "required")
        problem = self.notifiers[notifier].check_recipient(address.strip())
        if problem:
            raise ValidationError(f"{key}.address", problem)
        return notifier, address.strip()

    def _tags(self, value: Any, key: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValidationError(key, "must be an object with component, region or category")
        for tag, tag_value in value.items():
            if tag not in TAG_KEYS:
                raise ValidationError(f"{key}.{tag}", "unknown tag (allowed: " + ", ".join(TAG_KEYS) + ")")
            if not isinstance(tag_value, str) or not tag_value or len(tag_value) > 100:
                raise ValidationError(f"{key}.{tag}", "must be a non-empty string of at most 100 characters")
        if "component" in value and value["component"] not in self.components:
            raise ValidationError(f"{key}.component", f"no component {value['component']!r}")
        return dict(value)
