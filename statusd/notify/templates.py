"""Rendering of notifications from jinja2 templates, in a sandbox, with HTML autoescaped.

A message named `alert` is rendered from `alert.subject.txt`, `alert.txt` and (when
present) `alert.html`; a directory given in config overrides any of these files. Webhooks
get the message's context as JSON with an `event` field instead of rendered text.

Contexts carry times as ISO strings and durations as numbers (they are JSON snapshots); templates
turn them into words with two filters: `{{ t | local_time }}` ("Tue 8 Dec 2026, 04:05 CET", in the
page's `[page] time_zone`) and `{{ s | duration }}` / `{{ m | duration("minutes") }}` ("1 hour and
5 minutes"). Either gives back a value it cannot read unchanged: a template never fails over one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from statusd.core.model import Rendered
from statusd.notify.failure import RenderError


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
_SECONDS_PER = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def duration(value: Any, unit: str = "seconds") -> str:
    """A duration in words with correct plurals, at most its two largest units: "1 minute", "2 hours and 5 minutes"."""
    try:
        total = int(float(value) * _SECONDS_PER[unit])
    except (TypeError, ValueError, KeyError, OverflowError):
        return str(value)
    if total < 0:
        return str(value)
    # Seconds only matter for durations under a minute; "1 hour and 12 seconds" says nothing useful.
    units = _UNITS if total < 60 else _UNITS[:-1]
    parts: list[str] = []
    for name, size in units:
        count, total = divmod(total, size)
        if count or (name == units[-1][0] and not parts):
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " and ".join(parts[:2])


def local_time(value: Any, zone: ZoneInfo) -> str:
    """An ISO time (or datetime) as "Tue 8 Dec 2026, 04:05 CET" in `zone`; anything else unchanged."""
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # statusd writes UTC-aware times; a naive one is UTC too
    local = at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname() or local.strftime('%z')}"


class Templates:
    """Renders outbox messages; user templates run sandboxed and cannot reach Python internals."""

    def __init__(self, override_dir: str | Path | None = None, *, time_zone: str = "Etc/UTC") -> None:
        """`time_zone` (the page's) is where `local_time` shows times."""
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.PackageLoader("notifiers", "templates"))
        self.env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
        )
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):  # config validation refuses these; a default beats a crash
            zone = ZoneInfo("Etc/UTC")
        self.env.filters["duration"] = duration
        self.env.filters["local_time"] = lambda value: local_time(value, zone)

    def render(self, name: str, context: dict[str, Any]) -> Rendered:
        """Render message `name`; raises RenderError (a StatusdError) when a template is missing or broken."""
        try:
            subject = self.env.get_template(f"{name}.subject.txt").render(context).strip()
            text = self.env.get_template(f"{name}.txt").render(context)
            try:
                html: str | None = self.env.get_template(f"{name}.html").render(context)
            except jinja2.TemplateNotFound:
                html = None
        except jinja2.TemplateError as exc:
            raise RenderError(f"template {name!r} failed: {exc}") from exc
        return Rendered(subject=subject, text=text, html=html, payload={"event": name, **context})

    def check(self, names: tuple[str, ...] = ("alert", "update", "reminder", "handoff", "postmortem", "shift",
                                              "report_ack")) -> list[str]:
        """Names of message templates that fail to load (for check-config)."""
        broken = []
        for name in names:
            for part in (f"{name}.subject.txt", f"{name}.txt"):
                try:
                    self.env.get_template(part)
                except jinja2.TemplateError as exc:
                    broken.append(f"{part}: {exc}")
        return broken
