"""Rendering of notifications from jinja2 templates, in a sandbox, with HTML autoescaped.

A message named `alert` is rendered from `alert.subject.txt`, `alert.txt` and (when
present) `alert.html`; a directory given in config overrides any of these files. Webhooks
get the message's context as JSON with an `event` field instead of rendered text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from statusd.core.model import Rendered
from statusd.notify.failure import RenderError


class Templates:
    """Renders outbox messages; user templates run sandboxed and cannot reach Python internals."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
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
