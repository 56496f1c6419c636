"""What `statusd check-config` prints for a valid config: a short summary, and the settings unsafe beyond loopback."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from typing import Any

from statusd.config.root import Config
from statusd.core.schema import Secret, join

#: Parts of the placeholder secrets in config.example.toml: a value holding one is known to everyone.
EXAMPLE_SECRET_MARKERS = ("change-me", "example-token")


def summary(cfg: Config) -> str:
    """A short human summary of a valid config, for `statusd check-config`."""
    lines = [
        f"config OK: {cfg.source}",
        f"  page: {cfg.page.title!r} at {cfg.server.base_url}",
        f"  store: {cfg.store_description}",
        f"  components: {len(cfg.components)} ({', '.join(cfg.components) or 'none'})",
        f"  probes: {len(cfg.probes)} ({', '.join(f'{n}:{p.type}' for n, p in cfg.probes.items()) or 'none'})",
        f"  notifiers: {len(cfg.notifiers)} ({', '.join(f'{n}:{c.type}' for n, c in cfg.notifiers.items()) or 'none'})",
        f"  schedules: {', '.join(cfg.schedules) or 'none'}; escalation policy:"
        f" {cfg.incidents.escalation_policy or 'none (nobody is paged)'}",
        f"  API tokens: {', '.join(f'{t}' for t in cfg.tokens) or 'none'}",
    ]
    return "\n".join(lines)


def example_secrets(cfg: Config) -> list[str]:
    """Key paths of the secrets still set to one of config.example.toml's placeholders, in config order."""
    return [path for path, secret in _secrets(cfg, "")
            if any(marker in secret.reveal().lower() for marker in EXAMPLE_SECRET_MARKERS)]


def security_warnings(cfg: Config) -> list[str]:
    """Settings that let anyone in once statusd is reachable from other hosts: one line per key."""
    warnings = [f"{path}: still the example's placeholder secret; set your own"
                for path in example_secrets(cfg)]
    if cfg.alerts.token is None:
        warnings.append("alerts.token: not set, so the Alertmanager and Grafana webhooks accept alerts from anyone")
    return warnings


def loopback_only(host: str) -> bool:
    """Whether listening on `host` ([server] host) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def _secrets(value: Any, path: str) -> Iterator[tuple[str, Secret]]:
    """Every Secret in a config tree, with its key path."""
    if isinstance(value, Secret):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _secrets(getattr(value, f.name), join(path, f.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets(item, join(path, str(key)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _secrets(item, join(path, i))
