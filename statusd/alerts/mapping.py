"""Where an alert lands: its labels mapped to known components and a severity, by `[[alerts.rules]]` (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from statusd.alerts.config import PLACEHOLDER, SEVERITY_LABELS, AlertsConfig, Intake
from statusd.core.model import ComponentStatus


@dataclass(frozen=True, slots=True)
class Target:
    """Where an alert lands: known components, a severity, and what could not be mapped."""

    components: tuple[str, ...]
    severity: ComponentStatus
    unmapped: tuple[str, ...] = ()
    rule: int | None = None  # index into `rules`; None for the default mapping


class AlertMapper:
    """Labels → components and severity: the first matching rule wins, else the `component`/`severity` labels."""

    def __init__(self, config: AlertsConfig) -> None:
        self.default_severity = config.default_severity
        self._rules = [(i, rule, {key: _matcher(value) for key, value in rule.match.items()})
                       for i, rule in enumerate(config.rules)]

    def map(self, source: Intake, labels: Mapping[str, str], known: AbstractSet[str]) -> Target:
        """Where an alert from `source` with `labels` goes; components not in `known` end up in `unmapped`."""
        for index, rule, matchers in self._rules:
            if rule.sources and source not in rule.sources:
                continue
            if all(matches(labels.get(key, "")) for key, matches in matchers.items()):
                return _target([(t, _fill(t, labels)) for t in rule.components],
                               rule.severity or self._severity(labels), known, index)
        wanted = [(labels["component"], labels["component"])] if labels.get("component") else []
        return _target(wanted, self._severity(labels), known, None)

    def _severity(self, labels: Mapping[str, str]) -> ComponentStatus:
        return SEVERITY_LABELS.get(labels.get("severity", "").strip().lower(), self.default_severity)


def _matcher(value: str) -> Callable[[str], bool]:
    if value.startswith("re:"):
        pattern = re.compile(value[3:])
        return lambda actual: pattern.fullmatch(actual) is not None
    return lambda actual: actual == value


def _fill(template: str, labels: Mapping[str, str]) -> str | None:
    """The template with its `{label}`s filled in; None when one of them is missing or empty."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        value = labels.get(m.group(1), "")
        missing = missing or not value
        return value

    filled = PLACEHOLDER.sub(sub, template)
    return None if missing else filled


def _target(wanted: Iterable[tuple[str, str | None]], severity: ComponentStatus, known: AbstractSet[str],
            rule: int | None) -> Target:
    components: dict[str, None] = {}
    unmapped: dict[str, None] = {}
    for template, cid in wanted:
        if cid is not None and cid in known:
            components[cid] = None
        else:
            unmapped[cid if cid is not None else template] = None
    return Target(tuple(components), severity, tuple(unmapped), rule)
