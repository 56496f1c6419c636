"""Reading the config: TOML → `${ENV}` interpolation → every section's dataclass → one `Config`.

`load_config` raises ConfigError listing every problem as `key.path: message`, all at once.
Secrets are `Secret` values and never appear in repr or errors. Each section's dataclass
lives in its own module of `statusd.config`; the names are also importable from here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import notifiers
import probes
from notifiers.base import NotifierKind
from probes.base import ProbeKind
from statusd.alerts.config import AlertsConfig
from statusd.config.incidents import EscalationLevelConfig, EscalationPolicyConfig, FallbackConfig, IncidentsConfig
from statusd.config.notifications import NotificationsConfig
from statusd.config.oncall import LayerConfig, OverrideConfig, RestrictionConfig, ScheduleConfig, Weekday
from statusd.config.page import ComponentConfig, PageConfig
from statusd.config.people import SCOPES, PersonConfig, Scope, TokenConfig
from statusd.config.references import cross_check
from statusd.config.reports import ReportsConfig
from statusd.config.root import Config
from statusd.config.server import ServerConfig, StoreConfig
from statusd.config.summary import summary
from statusd.core.errors import ConfigError
from statusd.core.schema import MISSING, Problems, interpolate, is_missing, join, load_section

# Every section's name stays importable from here, where it was defined before the split.
__all__ = [
    "SCOPES", "AlertsConfig", "ComponentConfig", "Config", "ConfigError", "EscalationLevelConfig",
    "EscalationPolicyConfig", "FallbackConfig", "IncidentsConfig", "LayerConfig", "NotificationsConfig",
    "OverrideConfig", "PageConfig", "PersonConfig", "ReportsConfig", "RestrictionConfig", "ScheduleConfig", "Scope",
    "ServerConfig", "StoreConfig", "TokenConfig", "Weekday", "load_config", "parse_config", "summary",
]

_SIMPLE_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "store": StoreConfig,
    "page": PageConfig,
    "incidents": IncidentsConfig,
    "notifications": NotificationsConfig,
    "alerts": AlertsConfig,
    "reports": ReportsConfig,
}
_NAMED_SECTIONS: dict[str, type[Any]] = {"components": ComponentConfig, "people": PersonConfig, "tokens": TokenConfig,
                                         "schedules": ScheduleConfig, "escalation_policies": EscalationPolicyConfig}


def load_config(path: str | Path, env: Mapping[str, str] | None = None, *,
                probe_kinds: Mapping[str, ProbeKind] | None = None,
                notifier_kinds: Mapping[str, NotifierKind] | None = None) -> Config:
    """Read and validate a config file; raises ConfigError with every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a BOM some editors write is no error
    except FileNotFoundError:
        raise ConfigError([(str(path), "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([(str(path), f"cannot read: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from None
    return parse_config(raw, env, probe_kinds=probe_kinds, notifier_kinds=notifier_kinds, source=path.resolve())


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None, *,
                 probe_kinds: Mapping[str, ProbeKind] | None = None,
                 notifier_kinds: Mapping[str, NotifierKind] | None = None,
                 source: Path | None = None) -> Config:
    """Validate a parsed TOML document; raises ConfigError with every problem."""
    problems: Problems = []
    data = interpolate(dict(raw), os.environ if env is None else env, "", problems)
    interpolated = len(problems)  # the first problems: unset variables
    if source is not None:  # files the config names are found beside it, like store.path, wherever statusd runs
        for section, key in (("reports", "model"), ("notifications", "templates_dir")):
            table = data.get(section)
            if isinstance(table, dict) and isinstance(table.get(key), str) and table[key]:
                data[section] = {**table, key: str(source.parent / table[key])}  # an absolute path stays as it is
    probe_kinds = probes.builtin_kinds() if probe_kinds is None else probe_kinds
    notifier_kinds = notifiers.builtin_kinds() if notifier_kinds is None else notifier_kinds
    known = set(_SIMPLE_SECTIONS) | set(_NAMED_SECTIONS) | {"probes", "notifiers"}
    for key in data:
        if key not in known:
            problems.append((key, f"unknown section (known: {', '.join(sorted(known))})"))
    kwargs: dict[str, Any] = {}
    for key, cls in _SIMPLE_SECTIONS.items():
        if key in data:
            if not isinstance(data[key], dict):
                problems.append((key, "expected a table"))
                continue
            section = load_section(cls, data[key], key, problems)
            if not is_missing(section):
                kwargs[key] = section
    for key, cls in _NAMED_SECTIONS.items():
        kwargs[key] = _named_tables(data.get(key, {}), key, problems,
                                    lambda name, table, p, c=cls: load_section(c, table, p, problems, extra={"id": name}))
    for key, kinds in (("probes", probe_kinds), ("notifiers", notifier_kinds)):
        kwargs[key] = _named_tables(data.get(key, {}), key, problems,
                                    lambda name, table, p, k=kinds: _plugin(k, name, table, p, problems))
    # Cross-references are checked among whatever parsed, so one run reports everything; a reference to
    # a table that failed to parse is not reported again as "no such notifier": its own problems say why.
    cross_check(Config(**kwargs), problems, broken={tuple(key.split(".")[:2]) for key, _ in problems})
    if problems:
        raise ConfigError(_once_per_unset_variable(problems, interpolated))
    return Config(**kwargs, source=source)


def _once_per_unset_variable(problems: Problems, interpolated: int) -> Problems:
    """`problems` without what follows from an unset variable, once reported by interpolation (the first
    `interpolated` problems): such a key reads as "", and its own checks ("at least 16 characters") would
    report the same cause a second time."""
    unset = {key for key, _ in problems[:interpolated]}
    return problems[:interpolated] + [(key, message) for key, message in problems[interpolated:] if key not in unset]


def _named_tables(tables: Any, path: str, problems: Problems, build: Any) -> dict[str, Any]:
    if not isinstance(tables, dict):
        problems.append((path, "expected a table of named tables"))
        return {}
    out = {}
    for name, table in tables.items():
        p = join(path, name)
        if not isinstance(table, dict):
            problems.append((p, "expected a table"))
            continue
        obj = build(name, table, p)
        if not is_missing(obj):
            out[name] = obj
    return out


def _plugin(kinds: Mapping[str, Any], name: str, table: dict[str, Any], path: str, problems: Problems) -> Any:
    kind = table.get("type")
    if kind is None:
        problems.append((join(path, "type"), f"required (one of: {', '.join(sorted(kinds))})"))
        return MISSING
    if kind not in kinds:
        problems.append((join(path, "type"), f"unknown type {kind!r} (one of: {', '.join(sorted(kinds))})"))
        return MISSING
    try:
        plugin = kinds[kind]  # a built-in kind's module, and the library it needs, are imported here
    except ImportError as exc:
        problems.append((join(path, "type"), f"the {kind!r} kind needs a library that is not installed: {exc}"))
        return MISSING
    return load_section(plugin.config, table, path, problems, extra={"name": name})
