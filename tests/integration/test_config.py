"""Config: the example runs as-is, bad values are reported all at once with key paths, secrets stay hidden."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

import notifiers
import probes
from statusd.config import Config, load_config, parse_config
from statusd.core.errors import ConfigError
from tests.conftest import assert_no_secret

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def problems_of(raw: dict, env: dict | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse_config(raw, env or {})
    return dict(err.value.problems)


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE, env={})
    assert cfg.probes and cfg.notifiers and cfg.schedules and cfg.incidents.escalation_policy == "default"
    assert cfg.store_path == ROOT / "statusd.db"


# A commented-out key or table in the example documents it as much as a live one: uncommented,
# it must still be TOML, so the docs check reads both through the same parser.
_COMMENTED_TOML = re.compile(r"^#\s?(?=\[|[A-Za-z_][\w-]*\s*=)", re.MULTILINE)


def _example_tables(text: str) -> dict[str, Any]:
    """The example as TOML, with every commented-out key and table header taken as live."""
    return tomllib.loads(_COMMENTED_TOML.sub("", text))


def _own_tables(value: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(key path, table) of a sub-table or of each table in an array of tables; none when absent."""
    if isinstance(value, dict):
        return [(path, value)]
    if isinstance(value, list):
        return [(f"{path}[{i}]", item) for i, item in enumerate(value) if isinstance(item, dict)]
    return []


def _section_class(hint: Any) -> tuple[type | None, str]:
    """The dataclass a field holds and how: "table", "tables" (an array) or "named" (a table of tables)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return hint, "table"
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return args[0], "tables"
    if origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1], "named"
    if len(args) == 1 and dataclasses.is_dataclass(args[0]):  # `X | None`
        return args[0], "table"
    return None, ""


def _key_path(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def _gaps(cls: type, tables: list[tuple[str, dict[str, Any]]], where: str, skip: frozenset[str]) -> list[str]:
    """Keys of `cls` that none of `tables` documents, as key paths; then the same for its sub-sections.

    Tables of one kind (every `[components.*]`, every `[[...layers]]`) document a key together:
    a key repeated in a later table is documented at its first use.
    """
    if not tables:
        return [f"{where}: no table of this kind in the example"]
    gaps = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if not any(f.name in table for _, table in tables):
            gaps.append(" | ".join(_key_path(path, f.name) for path, _ in tables))
            continue
        sub, how = _section_class(hints[f.name])
        if sub is None:
            continue
        subtables = [t for path, table in tables if f.name in table
                     for t in (_own_tables(table[f.name], _key_path(path, f.name)) if how != "named" else
                               [(_key_path(path, f.name, n), v) for n, v in table[f.name].items()])]
        gaps += _gaps(sub, subtables, _key_path(where, f.name), frozenset({"id"}) if how == "named" else frozenset())
    return gaps


def undocumented_keys(text: str) -> list[str]:
    """Every config key that the matching table of the example `text` leaves out, as a key path.

    Each section is checked in its own tables: `[server]` keys in `[server]`, a schedule layer's
    keys in `[[schedules.<id>.layers]]`. Probes and notifiers are checked per plugin type: the
    keys a kind adds to the shared settings must appear in a table of that `type`, the shared
    ones in some table of the section.
    """
    from notifiers.base import NotifierSettings
    from probes.base import ProbeSettings

    doc = _example_tables(text)
    gaps = _gaps(Config, [("", doc)], "", frozenset({"source", "probes", "notifiers"}))
    for section, kinds, shared in (("probes", probes.builtin_kinds(), ProbeSettings),
                                   ("notifiers", notifiers.builtin_kinds(), NotifierSettings)):
        tables = list(doc.get(section, {}).items())
        common = frozenset(f.name for f in dataclasses.fields(shared))
        gaps += _gaps(shared, [(f"{section}.{n}", t) for n, t in tables], section, frozenset({"name"}))
        for kind_name, kind in sorted(kinds.items()):
            of_kind = [(f"{section}.{n}", t) for n, t in tables if t.get("type") == kind_name]
            gaps += _gaps(kind.config, of_kind, f"{section}.<type = {kind_name!r}>", common)
    return gaps


def test_every_key_of_every_section_is_in_the_example() -> None:
    """Docs stay true: each config key statusd knows appears (at least commented) in its own table of the example."""
    assert undocumented_keys(EXAMPLE.read_text()) == []


def _without_line(text: str, table: str, key: str) -> str:
    """`text` with the line setting `key` in the table headed `[table]` removed (it must be there)."""
    lines = text.splitlines(keepends=True)
    head = next(i for i, line in enumerate(lines) if line.lstrip("# ").startswith(f"[{table}]"))
    end = next((i for i in range(head + 1, len(lines)) if lines[i].lstrip("# ").startswith("[")), len(lines))
    [hit] = [i for i in range(head + 1, end) if re.match(rf"#?\s*{re.escape(key)}\s*=", lines[i].strip())]
    return "".join(lines[:hit] + lines[hit + 1:])


@pytest.mark.parametrize(("table", "key", "path"), [
    pytest.param("notifiers.hooks", "timeout_s", "notifiers.hooks.timeout_s", id="one-notifier-of-three"),
    pytest.param("page", "cache_s", "page.cache_s", id="simple-section"),
    pytest.param("store", "url", "store.url", id="commented-out-key"),
    pytest.param("probes.mx", "resolver", "probes.mx.resolver", id="commented-out-probe-kind"),
    pytest.param("[schedules.primary.overrides]", "person", "schedules.primary.overrides[0].person",
                 id="array-of-tables"),
    pytest.param("[schedules.primary.layers.restrictions]", "end", "schedules.primary.layers[1].restrictions[0].end",
                 id="nested-array-of-tables"),
    pytest.param("escalation_policies.default", "fallback", "escalation_policies.default.fallback",
                 id="optional-sub-table"),
    pytest.param("components.api", "probe_policy",
                 "components.website.probe_policy | components.api.probe_policy | components.billing.probe_policy",
                 id="named-tables-document-a-key-together"),
])
def test_the_docs_check_names_a_key_missing_from_one_table(table: str, key: str, path: str) -> None:
    """The check above can fail: one key taken out of one table is named by its key path."""
    assert path in undocumented_keys(_without_line(EXAMPLE.read_text(), table, key))


def test_the_docs_check_catches_a_key_removed_from_every_notifier() -> None:
    """Deleting `timeout_s` from all three notifier tables is three gaps, one per table."""
    text = EXAMPLE.read_text()
    for table in ("notifiers.mail", "notifiers.hooks", "notifiers.tg"):
        text = _without_line(text, table, "timeout_s")
    assert sorted(undocumented_keys(text)) == ["notifiers.hooks.timeout_s", "notifiers.mail.timeout_s",
                                               "notifiers.tg.timeout_s"]


def test_every_public_name_comes_from_the_package_and_still_from_the_loader() -> None:
    """`statusd.config` is the public face; code that imports from `statusd.config.loader` keeps working."""
    import statusd.config
    import statusd.config.loader

    assert set(statusd.config.__all__) <= set(statusd.config.loader.__all__)
    for name in statusd.config.loader.__all__:
        value = getattr(statusd.config.loader, name)
        assert getattr(statusd.config, name, value) is value, name


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

