"""The whole configuration: one frozen dataclass holding every section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statusd.alerts.config import AlertsConfig
from statusd.config.incidents import EscalationPolicyConfig, IncidentsConfig
from statusd.config.notifications import NotificationsConfig
from statusd.config.oncall import ScheduleConfig
from statusd.config.page import ComponentConfig, PageConfig
from statusd.config.people import PersonConfig, TokenConfig
from statusd.config.reports import ReportsConfig
from statusd.config.server import ServerConfig, StoreConfig


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
        """The SQLite file: `store.path`, relative to the config file's folder unless absolute."""
        path = Path(self.store.path)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path

    @property
    def store_description(self) -> str:
        """Which store this config selects, for people (never the URL: it may hold a password)."""
        return "PostgreSQL (store.url)" if self.store.url else f"SQLite {self.store_path}"
