"""`[alerts]`: who may send alerts, and the rules that map their labels to components and a severity."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from statusd.core.model import ComponentStatus
from statusd.core.schema import Problems, Secret

Intake = Literal["alertmanager", "grafana", "pagerduty"]

OUTAGE_STATUSES: tuple[ComponentStatus, ...] = (
    ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.MAJOR_OUTAGE)

# The `severity` label conventions of Prometheus mixins, Grafana and PagerDuty, folded together.
SEVERITY_LABELS: dict[str, ComponentStatus] = {
    "critical": ComponentStatus.MAJOR_OUTAGE,
    "error": ComponentStatus.PARTIAL_OUTAGE,
    "major": ComponentStatus.PARTIAL_OUTAGE,
    "warning": ComponentStatus.PARTIAL_OUTAGE,
    "minor": ComponentStatus.DEGRADED_PERFORMANCE,
    "info": ComponentStatus.DEGRADED_PERFORMANCE,
}

PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INTEGRATION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MIN_SECRET = 16


@dataclass(frozen=True)
class AlertRule:
    """`[[alerts.rules]]`: alerts whose labels match every `match` entry go to `components` at `severity`.

    A `match` value is compared for equality, or with `re:<regex>` must fully match; a
    missing label counts as "" (as in Prometheus). Components may use `{label}`.
    """

    components: list[str]
    match: dict[str, str] = field(default_factory=dict)
    severity: ComponentStatus | None = None  # None: from the alert's `severity` label
    sources: list[Intake] = field(default_factory=list)  # empty: alerts from every intake

    def check(self) -> Problems:
        problems: Problems = []
        if not self.components:
            problems.append(("components", "must name at least one component"))
        for i, template in enumerate(self.components):
            if (problem := _template_problem(template)) is not None:
                problems.append((f"components[{i}]", problem))
        for key, value in self.match.items():
            if not key:
                problems.append(("match", "label names must not be empty"))
            elif value.startswith("re:"):
                try:
                    re.compile(value[3:])
                except re.error as exc:
                    problems.append((f"match.{key}", f"invalid regular expression: {exc}"))
        if self.severity is not None and self.severity not in OUTAGE_STATUSES:
            problems.append(("severity", "expected one of " + ", ".join(repr(s.value) for s in OUTAGE_STATUSES)))
        return problems


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: who may send alerts, and how their labels map to components and a severity."""

    token: Secret | None = None  # Alertmanager/Grafana: `Authorization: Bearer`, Basic password or `?token=`
    pagerduty: dict[str, Secret] = field(default_factory=dict)  # integration name → Events v2 routing key
    max_body_bytes: int = 1_048_576
    default_severity: ComponentStatus = ComponentStatus.PARTIAL_OUTAGE  # when no rule and no severity label says
    rules: list[AlertRule] = field(default_factory=list)  # the first matching rule wins

    def check(self) -> Problems:
        problems: Problems = []
        if self.token is not None and len(self.token.reveal()) < _MIN_SECRET:
            problems.append(("token", f"must be at least {_MIN_SECRET} characters"))
        seen: dict[str, str] = {}
        for name, key in self.pagerduty.items():
            if not _INTEGRATION_NAME.fullmatch(name):
                problems.append((f"pagerduty.{name}", "integration names may use letters, digits, '_', '.', '-' "
                                                     "(at most 64)"))
            if len(key.reveal()) < _MIN_SECRET:
                problems.append((f"pagerduty.{name}", f"routing key must be at least {_MIN_SECRET} characters"))
            elif key.reveal() in seen:
                problems.append((f"pagerduty.{name}", f"same routing key as pagerduty.{seen[key.reveal()]}"))
            seen.setdefault(key.reveal(), name)
        if self.max_body_bytes <= 0:
            problems.append(("max_body_bytes", "must be greater than 0"))
        if self.default_severity not in OUTAGE_STATUSES:
            problems.append(("default_severity",
                             "expected one of " + ", ".join(repr(s.value) for s in OUTAGE_STATUSES)))
        return problems

    def referenced_components(self) -> list[tuple[str, str]]:
        """(key path under `alerts`, component id) of each literal component in `rules`; `{label}` ones left out."""
        return [(f"rules[{r}].components[{c}]", template)
                for r, rule in enumerate(self.rules)
                for c, template in enumerate(rule.components)
                if not PLACEHOLDER.search(template)]


def _template_problem(template: str) -> str | None:
    if not template.strip():
        return "must not be empty"
    if "{" in PLACEHOLDER.sub("", template) or "}" in PLACEHOLDER.sub("", template):
        return "expected a component id, optionally with {label} placeholders (label names: letters, digits, _)"
    return None
