"""The short summary `statusd check-config` prints for a valid config."""

from __future__ import annotations

from statusd.config.root import Config


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
