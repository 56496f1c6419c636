"""Config: the example runs as-is, bad values are reported all at once with key paths, secrets stay hidden."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from statusd.config import load_config, parse_config
from statusd.core.errors import ConfigError
from tests.conftest import assert_no_secret

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def problems_of(raw: dict, env: dict | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse_config(raw, env or {})
    return dict(err.value.problems)


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE, env={})
    assert cfg.probes and cfg.notifiers and cfg.schedules and cfg.incidents.escalation_policy == "default"
    assert cfg.store_path == ROOT / "statusd.db"


def test_every_key_of_every_section_is_in_the_example() -> None:
    """Docs stay true: each config key statusd knows appears (at least commented) in the example."""
    import dataclasses

    import notifiers
    import probes
    from statusd.config import loader as c

    text = EXAMPLE.read_text()
    sections = [c.ServerConfig, c.StoreConfig, c.PageConfig, c.IncidentsConfig, c.NotificationsConfig,
                c.ComponentConfig, c.PersonConfig, c.TokenConfig, c.ScheduleConfig, c.LayerConfig,
                c.RestrictionConfig, c.OverrideConfig, c.EscalationPolicyConfig, c.EscalationLevelConfig,
                c.FallbackConfig, c.ReportsConfig]
    from statusd.alerts.config import AlertRule, AlertsConfig
    sections += [AlertsConfig, AlertRule]
    sections += [k.config for k in probes.builtin_kinds().values()]
    sections += [k.config for k in notifiers.builtin_kinds().values()]
    missing = []
    for section in sections:
        for f in dataclasses.fields(section):
            if f.name == "id":
                continue  # the table's own key
            if f.name == "name" and section not in (c.ComponentConfig, c.PersonConfig, c.TokenConfig,
                                                    c.LayerConfig):
                continue  # plugins' name is the table key
            if f"{f.name} =" not in text and f".{f.name}]" not in text:
                missing.append(f"{section.__name__}.{f.name}")
    assert missing == []


def test_unknown_keys_and_bad_values_are_all_reported_with_paths() -> None:
    problems = problems_of({
        "server": {"port": 70000, "colour": "red"},
        "page": {"history_days": "two weeks"},
        "schedules": {"s": {"layers": [{"participants": ["ann"], "start": "soon"}]},
                      "t": {"timezone": "Mars/Olympus", "layers": [{"participants": ["ann"]}]}},
        "components": {"api": {"name": "API", "owner": "x"}},
        "probes": {"p1": {"type": "http", "url": "http://x", "component": "nope"},
                   "p2": {"type": "smoke"}, "p3": {"url": "http://x"}},
        "notifiers": {"m": {"type": "email", "port": "25"}},
        "people": {"ann": {"name": "Ann", "contacts": {"pager": "123"}}},
        "tokens": {"t": {"name": "T", "secret": "short", "scopes": ["root"]}},
        "reports": {"scan_min_clients": 1, "max_window_reports": 10},
        "extra": {},
    })
    expected = {"reports.scan_min_clients", "reports.max_window_reports",
        "server.port", "server.colour", "page.history_days", "schedules.t.timezone", "schedules.s.layers[0].start",
        "components.api.owner", "probes.p1.component", "probes.p2.type", "probes.p3.type", "notifiers.m.port",
        "people.ann.contacts.pager", "tokens.t.scopes[0]", "extra",
    }
    assert expected <= set(problems), sorted(problems)


def test_cross_references() -> None:
    problems = problems_of({
        "notifiers": {"mail": {"type": "email"}},
        "people": {"ann": {"name": "Ann", "contacts": {"mail": "not an address"}}},
        "schedules": {"s": {"layers": [{"participants": ["ann", "ghost"]}],
                            "overrides": [{"person": "zed", "start": "2026-01-01T00:00", "end": "2026-01-02T00:00"}]}},
        "escalation_policies": {"p": {"levels": [{"targets": ["schedule:nope", "ann", "ghost"]}],
                                      "fallback": {"notifier": "mail", "address": "bad"}}},
        "incidents": {"escalation_policy": "missing"},
        "tokens": {"a": {"name": "A", "secret": "x" * 20, "person": "ghost"}, "b": {"name": "B", "secret": "x" * 20}},
    })
    assert "schedules.s.layers[0].participants[1]" in problems
    assert "schedules.s.overrides[0].person" in problems
    assert "escalation_policies.p.levels[0].targets[0]" in problems
    assert "escalation_policies.p.levels[0].targets[2]" in problems
    assert "escalation_policies.p.levels[0].targets[1]" not in problems
    assert "escalation_policies.p.fallback.address" in problems
    assert "incidents.escalation_policy" in problems
    assert "tokens.a.person" in problems
    assert "people.ann.contacts.mail" in problems
    assert "tokens.b.secret" in problems


def test_env_interpolation_and_defaults() -> None:
    raw = {"tokens": {"t": {"name": "T", "secret": "${TOKEN}", "scopes": ["admin"]}},
           "page": {"title": "${TITLE:-Our status}"}}
    cfg = parse_config(raw, {"TOKEN": "s3cret-token-from-env"})
    assert cfg.tokens["t"].secret.reveal() == "s3cret-token-from-env"
    assert cfg.page.title == "Our status"
    with pytest.raises(ConfigError) as err:
        parse_config(raw, {})
    assert ("tokens.t.secret", "environment variable TOKEN is not set") in err.value.problems


def test_secrets_never_printed() -> None:
    secret = "very-secret-token-value-42"
    raw = {"tokens": {"t": {"name": "T", "secret": secret, "scopes": ["bogus"]}},
           "notifiers": {"h": {"type": "webhook", "secret": secret, "timeout_s": -1}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, {})
    assert_no_secret(str(err.value), secret)
    cfg = parse_config({"tokens": {"t": {"name": "T", "secret": secret}},
                        "notifiers": {"h": {"type": "webhook", "secret": secret}}}, {})
    assert_no_secret(repr(cfg), secret)


def test_check_config_into_a_pipe_closed_early_prints_no_traceback() -> None:
    # As `statusd check-config config.toml | head -3` when head has left: nobody reads the pipe any more.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run([sys.executable, "-m", "statusd.cli.main", "check-config", str(EXAMPLE)],
                             stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr


def test_check_config_command(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "statusd.cli.main", "check-config", str(EXAMPLE)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout and "billing-backend:http" in ok.stdout
    assert "reports: encoder tfidf, no fitted model" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "x"\n[probes.p]\ntype = "http"\nurl = "gopher://x"\n')
    res = subprocess.run([sys.executable, "-m", "statusd.cli.main", "check-config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "server.port" in res.stderr and "probes.p.url" in res.stderr
    assert "Traceback" not in res.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    res = subprocess.run([sys.executable, "-m", "statusd.cli.main", "check-config", str(broken)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "not valid TOML" in res.stderr and "Traceback" not in res.stderr
    missing = subprocess.run([sys.executable, "-m", "statusd.cli.main", "check-config", str(tmp_path / "nope.toml")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_example_parses_as_toml_with_comments_for_every_key() -> None:
    """Every key line in the example carries a comment, on the line or just above it."""
    lines = EXAMPLE.read_text().splitlines()
    tomllib.loads("\n".join(lines))
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "[")):
            continue
        if "#" not in line and not lines[i - 1].strip().startswith("#"):
            undocumented.append(stripped)
    # Keys repeated in later tables of the same kind are documented at their first use.
    first_uses = {s.split("=")[0].strip() for s in undocumented}
    documented = {ln.strip().split("=")[0].strip() for ln in lines if "#" in ln and "=" in ln.split("#")[0]}
    assert first_uses <= documented, sorted(first_uses - documented)


def test_check_config_reports_coverage_gaps() -> None:
    from datetime import UTC, datetime

    from statusd.cli.main import coverage_warnings

    cfg = parse_config({
        "people": {"ann": {"name": "Ann"}},
        "schedules": {"peak": {"timezone": "UTC", "layers": [{"participants": ["ann"], "shift_h": 168,
                                                               "start": "2026-01-05T00:00",
                                                               "restrictions": [{"days": ["mon"], "start": "10:00",
                                                                                 "end": "18:00"}]}]}},
    }, {})
    warnings = coverage_warnings(cfg, datetime(2026, 3, 2, 0, 0, tzinfo=UTC), days=7)
    assert warnings[0] == "schedules.peak: nobody on call 2026-03-02 00:00 - 2026-03-02 10:00 UTC"
    assert warnings[1] == "schedules.peak: nobody on call 2026-03-02 18:00 - 2026-03-09 00:00 UTC"
    assert coverage_warnings(load_config(EXAMPLE, env={}), datetime(2026, 3, 2, tzinfo=UTC)) == []


def _schedule(**layer: object) -> dict:
    return {"people": {"ann": {"name": "Ann"}},
            "schedules": {"s": {"layers": [{"participants": ["ann"], "start": "2026-01-05T08:00", **layer}]}}}


@pytest.mark.parametrize(("raw", "key"), [
    pytest.param(_schedule(shift_h=float("inf")), "schedules.s.layers[0].shift_h", id="shift-inf"),
    pytest.param(_schedule(shift_h=1e300), "schedules.s.layers[0].shift_h", id="shift-huge"),
    pytest.param(_schedule(shift_h=0.0001), "schedules.s.layers[0].shift_h", id="shift-tiny"),
    pytest.param(_schedule(restrictions=[{"start": "09:00", "end": "-0:00"}]),
                 "schedules.s.layers[0].restrictions[0].end", id="restriction-minus-zero"),
    pytest.param(_schedule(restrictions=[{"start": "09:00", "end": "\u0661\u0668:\u0660\u0660"}]),
                 "schedules.s.layers[0].restrictions[0].end", id="restriction-other-digits"),
    pytest.param({**_schedule(), "schedules": {"s": {**_schedule()["schedules"]["s"], "timezone": "Europe"}}},
                 "schedules.s.timezone", id="zone-is-a-folder"),
    pytest.param({**_schedule(), "schedules": {"s": {**_schedule()["schedules"]["s"], "overrides": [
        {"person": "ann", "start": "0001-01-01T00:00", "end": "2026-01-01T00:00"}]}}},
                 "schedules.s.overrides[0].start", id="override-year-1"),
    pytest.param({**_schedule(), "schedules": {"s": {**_schedule()["schedules"]["s"], "overrides": [
        {"person": "ann", "start": "2026-12-24 09:00", "end": "2026-12-24T08:00"}]}}},
                 "schedules.s.overrides[0].end", id="override-end-before-start-mixed-formats"),
    pytest.param({"probes": {"p": {"type": "http", "url": "http://127.0.0.1/", "interval_s": 1e300}}},
                 "probes.p.interval_s", id="interval-huge"),
    pytest.param({"probes": {"p": {"type": "http", "url": "http://127.0.0.1/", "interval_s": 1e-9,
                                   "timeout_s": 1e-10}}}, "probes.p.interval_s", id="interval-tiny"),
    pytest.param({"probes": {"p": {"type": "http", "url": "http://127.0.0.1/",
                                   "headers": {"Accept": "a\r\nX-Injected: 1"}}}},
                 "probes.p.headers.Accept", id="header-with-line-break"),
    pytest.param({"reports": {"rebuild_hours": 1e12}}, "reports.rebuild_hours", id="rebuild-hours-huge"),
    pytest.param({"page": {"cache_s": float("nan")}}, "page.cache_s", id="cache-nan"),
    pytest.param({"page": {"time_zone": "Mars/Olympus"}}, "page.time_zone", id="page-zone"),
    pytest.param({"notifications": {"lease_s": float("inf")}}, "notifications.lease_s", id="lease-inf"),
    pytest.param({"store": {"url": "mysql://root@127.0.0.1/statusd"}}, "store.url", id="store-url-not-postgres"),
    pytest.param({"notifications": {"lease_s": 30}, "notifiers": {"mail": {"type": "email", "timeout_s": 60}}},
                 "notifiers.mail.timeout_s", id="send-longer-than-its-lease"),
    pytest.param({"notifications": {"templates_dir": "/nonexistent/templates"}}, "notifications.templates_dir",
                 id="templates-dir-missing"),
    pytest.param({"incidents": {"opened_message": "Broken {components"}}, "incidents.opened_message",
                 id="message-unclosed-brace"),
    pytest.param({"incidents": {"resolved_message": "Hi {nope}"}}, "incidents.resolved_message",
                 id="message-unknown-placeholder"),
    pytest.param({"server": {"public_url": "http://"}}, "server.public_url", id="public-url-without-host"),
    pytest.param({"probes": {"a": {"type": "heartbeat", "token": "nightly-backup-0123456789"},
                             "b": {"type": "heartbeat", "token": "nightly-backup-0123456789"}}}, "probes.b.token",
                 id="heartbeat-token-shared"),
])
def test_values_that_would_break_at_runtime_are_config_errors_naming_the_key(raw: dict, key: str) -> None:
    """Found by an adversarial pass: each of these passed check-config, then crashed or hung serve."""
    problems = problems_of(raw)
    assert key in problems, problems


def test_files_a_config_names_are_found_beside_it(tmp_path) -> None:
    (tmp_path / "templates").mkdir()
    path = tmp_path / "statusd.toml"
    path.write_text('[notifications]\ntemplates_dir = "templates"\n', encoding="utf-8")
    assert load_config(path, env={}).notifications.templates_dir == str(tmp_path / "templates")


def test_a_byte_order_mark_is_not_an_error(tmp_path) -> None:
    path = tmp_path / "statusd.toml"
    path.write_bytes(b"\xef\xbb\xbf[page]\ntitle = \"Status\"\n")
    assert load_config(path, env={}).page.title == "Status"


def test_a_table_that_failed_to_parse_is_not_also_reported_missing_wherever_it_is_named() -> None:
    problems = problems_of({"notifiers": {"mail": {"type": "email", "port": 70000}},
                            "people": {"ann": {"name": "Ann", "contacts": {"mail": "ann@example.com", "sms": "1"}}},
                            "reports": {"form_notifier": "mail"}})
    assert set(problems) == {"notifiers.mail.port", "people.ann.contacts.sms"}  # sms is really missing


def test_a_nested_default_is_a_problem_not_a_literal() -> None:
    problems = problems_of({"page": {"title": "${A:-${B:-x}}"}})
    assert "page.title" in problems and "${...}" in problems["page.title"]

