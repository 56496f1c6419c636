"""Checks across sections: every name one table refers to exists, and no secret is shared."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from statusd.config.root import Config
from statusd.core.schema import Problems


def cross_check(cfg: Config, problems: Problems, *, broken: AbstractSet[tuple[str, ...]] = frozenset()) -> None:
    """Append a problem for every reference to a name no section defines, and for shared secrets.

    `broken`: (section, name) of tables that failed to parse, whose own problems say why: a
    reference to one is not reported again as a missing name.
    """

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
