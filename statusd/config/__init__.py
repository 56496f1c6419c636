"""The TOML config file as frozen dataclasses, every problem reported with its key path.

The public face: `from statusd.config import Config, load_config, summary, ...`. One module
per group of sections (`server`, `page`, `people`, `oncall`, `incidents`, `reports`,
`notifications`), `root` for the whole `Config`, `references` for checks across sections,
and `loader` that reads the file and assembles everything.
"""

from statusd.config.incidents import EscalationLevelConfig, EscalationPolicyConfig, FallbackConfig, IncidentsConfig
from statusd.config.loader import load_config, parse_config
from statusd.config.notifications import NotificationsConfig
from statusd.config.oncall import LayerConfig, OverrideConfig, RestrictionConfig, ScheduleConfig, Weekday
from statusd.config.page import ComponentConfig, PageConfig
from statusd.config.people import SCOPES, PersonConfig, Scope, TokenConfig
from statusd.config.reports import ReportsConfig
from statusd.config.root import Config
from statusd.config.server import ServerConfig, StoreConfig
from statusd.config.summary import summary

__all__ = [
    "SCOPES", "ComponentConfig", "Config", "EscalationLevelConfig", "EscalationPolicyConfig", "FallbackConfig",
    "IncidentsConfig", "LayerConfig", "NotificationsConfig", "OverrideConfig", "PageConfig", "PersonConfig",
    "ReportsConfig", "RestrictionConfig", "ScheduleConfig", "Scope", "ServerConfig", "StoreConfig", "TokenConfig",
    "Weekday", "load_config", "parse_config", "summary",
]
