"""Heartbeat (push) probe: the target checks in at /api/v1/heartbeat/<token>; silence is the failure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from probes.base import ProbeSettings
from statusd.core.model import ProbeResult
from statusd.core.schema import Problems, Secret, non_negative

_TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved URL characters: the token is a path segment
_MIN_TOKEN_CHARS = 16


@dataclass(frozen=True, kw_only=True)
class HeartbeatConfig(ProbeSettings):
    """A push check: `interval_s` is how often the target is expected to check in."""

    token: Secret  # the check-in URL is /api/v1/heartbeat/<token>
    grace_s: float = 60.0  # lateness tolerated on top of interval_s

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = super().check()
        token = self.token.reveal()
        if len(token) < _MIN_TOKEN_CHARS:
            problems.append(("token", f"must be at least {_MIN_TOKEN_CHARS} characters"))
        elif not _TOKEN_RE.fullmatch(token):
            problems.append(("token", "may only contain letters, digits and . _ ~ - (it is part of a URL)"))
        problems += non_negative(self.grace_s, "grace_s")
        return problems


class HeartbeatProbe:
    """Judges the time since the last check-in; it contacts nothing itself."""

    def __init__(self, config: HeartbeatConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.name = config.name
        self.component = config.component
        self.last_check_in: datetime | None = None
        self.created_at: datetime | None = None  # set by the first check: the watch starts then

    @property
    def token(self) -> str:
        """The revealed token that authenticates check-ins; never log it."""
        return self.config.token.reveal()

    def __repr__(self) -> str:
        return f"HeartbeatProbe(name={self.name!r}, last_check_in={self.last_check_in!r})"

    def check_in(self, at: datetime) -> None:
        """Record a check-in; an older one arriving late never moves the last check-in back."""
        if self.last_check_in is None or at > self.last_check_in:
            self.last_check_in = at

    async def check(self, now: datetime) -> ProbeResult:
        """Ok while the last check-in is at most interval_s + grace_s old (or the watch is younger than that)."""
        cfg = self.config
        if self.created_at is None:
            self.created_at = now
        allowed_s = cfg.interval_s + cfg.grace_s
        detail: dict[str, Any] = {
            "last_check_in": self.last_check_in.isoformat() if self.last_check_in else None,
            "expected_every_s": cfg.interval_s,
            "grace_s": cfg.grace_s,
        }
        if self.last_check_in is None:
            silent_s = (now - self.created_at).total_seconds()
            if silent_s > allowed_s:
                return self._result(now, ok=False, error="never checked in", detail=detail)
            return self._result(now, ok=True, detail=detail)
        age_s = (now - self.last_check_in).total_seconds()
        detail["age_s"] = age_s
        if age_s > allowed_s:
            error = f"no check-in for {age_s:.0f}s (expected every {cfg.interval_s:g}s)"
            return self._result(now, ok=False, error=error, detail=detail)
        return self._result(now, ok=True, detail=detail)

    def _result(self, now: datetime, *, ok: bool, detail: dict[str, Any], error: str = "") -> ProbeResult:
        return ProbeResult(probe=self.name, component=self.component, at=now, ok=ok, latency_s=0.0, error=error,
                           detail=detail)
