"""statusd's configuration: one TOML file → frozen dataclasses, every problem reported at once.

`load_config` raises ConfigError listing every problem as `key.path: message`.
Secrets are `Secret` values and never appear in repr or errors.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import notifiers
import probes
from notifiers.base import NotifierKind
from probes.base import ProbeKind
from statusd.alerts.config import AlertsConfig
from statusd.core.clock import FIRST_YEAR, LAST_YEAR, supported
from statusd.core.errors import ConfigError
from statusd.core.model import WINDOW_FLOOR
from statusd.core.schema import (MISSING, Problems, Secret, http_url, interpolate, is_missing, join, load_section,
                                 non_negative, positive)

Scope = Literal["incidents:write", "components:write", "subscribers:write", "reports:write", "admin"]
SCOPES: tuple[str, ...] = ("incidents:write", "components:write", "subscribers:write", "reports:write", "admin")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how visitors reach statusd; defaults to http://host:port
    max_body_bytes: int = 1_048_576
    secret_key: Secret | None = None  # signs one-click acknowledge links and iCal feed URLs

    def check(self) -> Problems:
        problems: Problems = []
        if not 0 <= self.port <= 65535:
            problems.append(("port", "must be between 0 and 65535"))
        if self.public_url and not http_url(self.public_url):
            problems.append(("public_url", "expected an absolute http:// or https:// URL such as https://status.example.com"))
        if self.secret_key is not None and len(self.secret_key.reveal()) < 16:
            problems.append(("secret_key", "must be at least 16 characters"))
        return problems + positive(self.max_body_bytes, "max_body_bytes")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class StoreConfig:
    path: str = "statusd.db"  # SQLite file; relative paths are relative to the config file
    # PostgreSQL instead of SQLite: "postgresql://user:password@host:5432/database" (asyncpg's DSN);
    # a Secret, because it may carry the password.
    url: Secret | None = None
    probe_retention_days: int = 7

    def check(self) -> Problems:
        problems = positive(self.probe_retention_days, "probe_retention_days")
        if self.url is not None:
            if not self.url.reveal().startswith(("postgresql://", "postgres://")):
                problems.append(("url", "must be a postgresql:// URL (leave it out for SQLite at store.path)"))
            elif importlib.util.find_spec("asyncpg") is None:
                problems.append(("url", "PostgreSQL needs the postgres extra: pip install 'statusd[postgres]'"))
        return problems


@dataclass(frozen=True)
class PageConfig:
    title: str = "Service status"
    description: str = ""
    history_days: int = 14  # how far back the page lists resolved incidents
    cache_s: float = 5.0  # public pages and /api/v2 are served from a cache this old at most
    time_zone: str = "Etc/UTC"  # shown in /api/v2 page.time_zone

    def check(self) -> Problems:
        problems = positive(self.history_days, "history_days", at_most=3650)
        problems += non_negative(self.cache_s, "cache_s")
        return problems + _zone(self.time_zone, "time_zone")


def _zone(name: str, key: str) -> Problems:
    """No problem when `name` is an IANA time zone ("Europe/Moscow"); "Europe" is a folder, not a zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return [(key, f"unknown time zone {name!r}; expected an IANA name such as 'Europe/Moscow'")]
    return []


@dataclass(frozen=True)
class ComponentConfig:
    id: str
    name: str
    description: str = ""
    group: str | None = None
    # How its probes combine: "any" (each failing probe sets its own severity), "all" (down only when
    # every probe fails; some failing = degraded) or "quorum" (a majority failing = major, fewer = partial).
    probe_policy: Literal["any", "all", "quorum"] = "any"


@dataclass(frozen=True)
class PersonConfig:
    id: str
    name: str
    contacts: dict[str, str] = field(default_factory=dict)  # notifier name → address on it


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _clock_time(value: str) -> bool:
    hours, _, minutes = value.partition(":")
    # ASCII digits only: int() also takes "-0" and other scripts' digits, which time.fromisoformat refuses.
    return (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit() and len(minutes) == 2
            and 0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59)


def _local_datetime(value: str) -> datetime | None:
    """The local date and time, or None (also outside the supported years, `statusd.core.clock.supported`)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None and supported(parsed) else None


@dataclass(frozen=True)
class RestrictionConfig:
    days: list[Weekday] = field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    start: str = "00:00"  # local time the window opens on each of `days`
    end: str = "00:00"  # local time it closes; at or before `start` means the next day

    def check(self) -> Problems:
        return [(key, "expected a time like 09:30") for key in ("start", "end")
                if not _clock_time(getattr(self, key))]


@dataclass(frozen=True)
class LayerConfig:
    participants: list[str]
    name: str = ""
    shift_h: float = 12.0
    start: str = "2026-01-05T08:00"  # local time when participants[0] begins the first shift
    restrictions: list[RestrictionConfig] = field(default_factory=list)  # empty = always

    def check(self) -> Problems:
        problems = positive(self.shift_h, "shift_h", at_most=24 * 366)
        if 0 < self.shift_h < 0.25:  # a day of 15-minute shifts is 96; shorter ones only make the schedule huge
            problems.append(("shift_h", "must be at least 0.25 (15 minutes)"))
        if not self.participants:
            problems.append(("participants", "must name at least one person"))
        if len(set(self.participants)) != len(self.participants):
            problems.append(("participants", "lists someone twice"))
        if not _local_datetime(self.start):
            problems.append(("start", "expected a local date and time like 2026-01-05T08:00 (no offset)"))
        return problems


@dataclass(frozen=True)
class OverrideConfig:
    person: str
    start: str  # local date and time in the schedule's time zone
    end: str

    def check(self) -> Problems:
        start, end = _local_datetime(self.start), _local_datetime(self.end)
        problems = [(key, f"expected a local date and time like 2026-02-01T08:00 (no offset, years {FIRST_YEAR}-{LAST_YEAR})")
                    for key, value in (("start", start), ("end", end)) if value is None]
        if start is not None and end is not None and end <= start:  # as times: "2026-12-24 09:00" vs "...T08:00"
            problems.append(("end", "must be after start"))
        return problems


@dataclass(frozen=True)
class ScheduleConfig:
    id: str
    layers: list[LayerConfig]
    timezone: str = "UTC"
    overrides: list[OverrideConfig] = field(default_factory=list)
    shift_notice_s: float = 900.0  # tell each engineer this long before their shift starts; 0 = never

    def check(self) -> Problems:
        problems = _zone(self.timezone, "timezone")
        if not self.layers:
            problems.append(("layers", "needs at least one layer"))
        problems += non_negative(self.shift_notice_s, "shift_notice_s")
        return problems


@dataclass(frozen=True)
class EscalationLevelConfig:
    targets: list[str]  # person ids, or "schedule:<id>" for whoever is on call then
    ack_timeout_s: float = 300.0

    def check(self) -> Problems:
        problems = positive(self.ack_timeout_s, "ack_timeout_s")
        if not self.targets:
            problems.append(("targets", "must name at least one person or schedule"))
        return problems


@dataclass(frozen=True)
class FallbackConfig:
    notifier: str
    address: str


@dataclass(frozen=True)
class EscalationPolicyConfig:
    id: str
    levels: list[EscalationLevelConfig]
    repeat: int = 0  # run through the levels this many more times before the fallback
    fallback: FallbackConfig | None = None  # who hears when nobody acknowledged at all

    def check(self) -> Problems:
        problems: Problems = [] if self.levels else [("levels", "needs at least one level")]
        problems += non_negative(self.repeat, "repeat")
        return problems


@dataclass(frozen=True)
class IncidentsConfig:
    on_recovery: Literal["resolve", "monitoring", "nothing"] = "resolve"
    notify_subscribers_on_open: bool = True  # send subscribers a first public update when a detector opens an incident
    opened_message: str = "We are investigating reports of problems with {components}."
    resolved_message: str = "This incident has been resolved: {components} recovered."
    escalation_policy: str | None = None  # policy from [escalation_policies] for every incident
    reopen_window_s: float = 1800.0  # a signal returning within this long after resolution re-opens the incident
    update_reminder_s: dict[str, float] = field(  # per impact: remind the commander after this long without a public update
        default_factory=lambda: {"minor": 3600.0, "major": 1800.0, "critical": 900.0})
    handoff_ack_timeout_s: float = 300.0  # remind both sides when a handoff is not accepted within this long
    group_window_s: float = 300.0  # a signal joins an open incident on the same component opened within this long

    def check(self) -> Problems:
        problems: Problems = []
        for impact, seconds in self.update_reminder_s.items():
            if impact not in ("none", "minor", "major", "critical", "maintenance"):
                problems.append((f"update_reminder_s.{impact}", "expected an impact: minor, major, critical, ..."))
            elif seconds <= 0:
                problems.append((f"update_reminder_s.{impact}", "must be greater than 0"))
        for key in ("reopen_window_s", "group_window_s"):
            problems += non_negative(getattr(self, key), key)
        for key in ("opened_message", "resolved_message"):
            try:
                getattr(self, key).format(components="Website")
            except (KeyError, IndexError, ValueError) as exc:
                problems.append((key, f"not a valid message: {exc!r}; the only placeholder is {{components}} "
                                      "(write {{ and }} for braces)"))
        return problems + positive(self.handoff_ack_timeout_s, "handoff_ack_timeout_s")


@dataclass(frozen=True)
class ReportsConfig:
    window_s: float = 1800.0  # surge window: distinct clients counted over this long
    min_clients: int = 5  # a surge needs at least this many distinct clients in the window
    scan_min_clients: int = 4  # also test tighter runs of this many clients within the window (0: off)
    link_quiet_s: float = 900.0  # after a surge, its group's later reports are linked until it is this quiet
    max_window_reports: int = 200_000  # reports the surge windows hold in all (memory bound; longest windows cut first)
    encoder: Literal["tfidf", "use", "blend", "auto"] = "tfidf"  # text similarity; use/blend need the reports-embeddings extra
    rebuild_hours: float = 24.0  # on start, replay this much stored history into the detector
    detector_process: bool = True  # cluster in a child process (a second core); false: in the server process
    model: str | None = None  # text model fitted on your report history (statusd fit-model); tfidf/auto only
    max_text_chars: int = 5000
    max_batch: int = 500  # reports per POST /api/v1/reports/batch
    max_future_s: float = 300.0  # received_at further in the future is refused
    max_age_days: float = 30.0  # received_at further in the past is refused (backfill limit)
    form_notifier: str | None = None  # notifier whose address visitors may leave on the public form (e.g. "mail")
    form_rate_per_min: int = 5  # public form submissions per minute per client address

    def check(self) -> Problems:
        problems = (positive(self.window_s, "window_s") + positive(self.min_clients, "min_clients")
                    + positive(self.link_quiet_s, "link_quiet_s")
                    + positive(self.rebuild_hours, "rebuild_hours", at_most=24 * 365) + positive(self.max_text_chars, "max_text_chars")
                    + positive(self.max_batch, "max_batch") + positive(self.max_age_days, "max_age_days")
                    + positive(self.form_rate_per_min, "form_rate_per_min"))
        problems += non_negative(self.max_future_s, "max_future_s")
        if self.scan_min_clients < 0 or self.scan_min_clients == 1:
            problems.append(("scan_min_clients", "expected 0 (off) or at least 2 clients"))
        if self.max_window_reports < WINDOW_FLOOR:
            problems.append(("max_window_reports", f"expected at least {WINDOW_FLOOR} reports"))
        if self.model is not None:
            if self.encoder in ("use", "blend"):
                problems.append(("model", f"a fitted model replaces TF-IDF: use encoder \"tfidf\" or \"auto\" with it, "
                                          f"not {self.encoder!r}"))
            elif not Path(self.model).is_file():
                problems.append(("model", f"no such file: {self.model} (statusd fit-model HISTORY {self.model})"))
        return problems


@dataclass(frozen=True)
class TokenConfig:
    id: str
    name: str  # whose token: signs public updates posted with it
    secret: Secret
    scopes: list[Scope] = field(default_factory=list)
    person: str | None = None  # acknowledgements and handoffs with this token act as this person

    def check(self) -> Problems:
        return [] if len(self.secret.reveal()) >= 16 else [("secret", "must be at least 16 characters")]


@dataclass(frozen=True)
class NotificationsConfig:
    max_attempts: int = 8
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 900.0
    lease_s: float = 120.0  # a claimed message that is not settled by then is retried
    batch_size: int = 50
    concurrency: int = 16  # in flight per notifier: each has its own lane
    templates_dir: str | None = None  # overrides for the built-in templates

    def check(self) -> Problems:
        return (positive(self.max_attempts, "max_attempts") + positive(self.backoff_initial_s, "backoff_initial_s")
                + positive(self.backoff_max_s, "backoff_max_s") + positive(self.lease_s, "lease_s")
                + positive(self.batch_size, "batch_size") + positive(self.concurrency, "concurrency")
                + ([("templates_dir", f"no such directory: {self.templates_dir}")]
                   if self.templates_dir is not None and not Path(self.templates_dir).is_dir() else []))


@dataclass(frozen=True)
class Config:
    """The whole configuration. `source` is the file it came from."""

    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    page: PageConfig = field(default_factory=PageConfig)
    incidents: IncidentsConfig = field(default_factory=IncidentsConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    components: dict[str, ComponentConfig] = field(default_factory=dict)
    people: dict[str, PersonConfig] = field(default_factory=dict)
    schedules: dict[str, ScheduleConfig] = field(default_factory=dict)
    escalation_policies: dict[str, EscalationPolicyConfig] = field(default_factory=dict)
    tokens: dict[str, TokenConfig] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    notifiers: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def store_path(self) -> Path:
        path = Path(self.store.path)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path

    @property
    def store_description(self) -> str:
        """Which store this config selects, for people (never the URL: it may hold a password)."""
        return "PostgreSQL (store.url)" if self.store.url else f"SQLite {self.store_path}"


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
    _cross_check(Config(**kwargs), problems, broken={tuple(key.split(".")[:2]) for key, _ in problems})
    if problems:
        raise ConfigError(problems)
    return Config(**kwargs, source=source)


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
    return load_section(kinds[kind].config, table, path, problems, extra={"name": name})


def _cross_check(cfg: Config, problems: Problems, *, broken: AbstractSet[tuple[str, ...]] = frozenset()) -> None:
    """References between sections. `broken`: (section, name) of tables that failed to parse, whose own
    problems say why: a reference to one is not reported again as a missing name."""

    def absent(section: str, name: str) -> bool:
        return name not in getattr(cfg, section) and (section, name) not in broken

    for name, probe in cfg.probes.items():
        if probe.component is not None and absent("components", probe.component):
            problems.append((f"probes.{name}.component", f"no component {probe.component!r} in [components]"))
    lease_s = cfg.notifications.lease_s
    for name, notifier_cfg in cfg.notifiers.items():
        timeout = getattr(notifier_cfg, "timeout_s", None)
        if isinstance(timeout, (int, float)) and isinstance(lease_s, (int, float)) and timeout >= lease_s:
            problems.append((f"notifiers.{name}.timeout_s", f"must be shorter than notifications.lease_s "
                             f"({lease_s:g} s): a send still under way when its lease runs out is claimed again"))
    for pid, person in cfg.people.items():
        for notifier, address in person.contacts.items():
            if absent("notifiers", notifier):
                problems.append((f"people.{pid}.contacts.{notifier}", f"no notifier {notifier!r} in [notifiers]"))
            elif (notifier in cfg.notifiers
                  and (problem := cfg.notifiers[notifier].check_recipient(address)) is not None):
                problems.append((f"people.{pid}.contacts.{notifier}", problem))
    for sid, sched in cfg.schedules.items():
        for li, layer in enumerate(sched.layers):
            for i, pid in enumerate(layer.participants):
                if absent("people", pid):
                    problems.append((f"schedules.{sid}.layers[{li}].participants[{i}]", f"no person {pid!r} in [people]"))
        for oi, override in enumerate(sched.overrides):
            if absent("people", override.person):
                problems.append((f"schedules.{sid}.overrides[{oi}].person", f"no person {override.person!r} in [people]"))
    for eid, policy in cfg.escalation_policies.items():
        for li, level in enumerate(policy.levels):
            for i, target in enumerate(level.targets):
                kind, _, name = target.partition(":")
                if kind == "schedule" and absent("schedules", name):
                    problems.append((f"escalation_policies.{eid}.levels[{li}].targets[{i}]",
                                     f"no schedule {name!r} in [schedules]"))
                elif kind != "schedule" and absent("people", target):
                    problems.append((f"escalation_policies.{eid}.levels[{li}].targets[{i}]",
                                     f"no person {target!r} in [people] (use schedule:<id> for a schedule)"))
        if policy.fallback is not None:
            fb = policy.fallback
            if absent("notifiers", fb.notifier):
                problems.append((f"escalation_policies.{eid}.fallback.notifier", f"no notifier {fb.notifier!r}"))
            elif (fb.notifier in cfg.notifiers
                  and (problem := cfg.notifiers[fb.notifier].check_recipient(fb.address)) is not None):
                problems.append((f"escalation_policies.{eid}.fallback.address", problem))
    for key, cid in cfg.alerts.referenced_components():
        if absent("components", cid):
            problems.append((f"alerts.{key}", f"no component {cid!r} in [components]"))
    if cfg.reports.form_notifier is not None and absent("notifiers", cfg.reports.form_notifier):
        problems.append(("reports.form_notifier", f"no notifier {cfg.reports.form_notifier!r} in [notifiers]"))
    policy_name = cfg.incidents.escalation_policy
    if policy_name is not None and absent("escalation_policies", policy_name):
        problems.append(("incidents.escalation_policy", f"no policy {policy_name!r} in [escalation_policies]"))
    for tid, token in cfg.tokens.items():
        if token.person is not None and absent("people", token.person):
            problems.append((f"tokens.{tid}.person", f"no person {token.person!r} in [people]"))
    seen: dict[str, str] = {}
    for tid, token in cfg.tokens.items():
        if token.secret.reveal() in seen:
            problems.append((f"tokens.{tid}.secret", f"same secret as tokens.{seen[token.secret.reveal()]}"))
        seen[token.secret.reveal()] = tid
    beats: dict[str, str] = {}  # a check-in URL names one heartbeat: a shared token would feed two probes
    for pid, probe in cfg.probes.items():
        secret = getattr(probe, "token", None)
        if getattr(probe, "type", None) == "heartbeat" and secret is not None:
            if secret.reveal() in beats:
                problems.append((f"probes.{pid}.token", f"same token as probes.{beats[secret.reveal()]}"))
            beats[secret.reveal()] = pid


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
