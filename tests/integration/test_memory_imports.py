"""The idle server stays small: libraries only an optional feature needs are not loaded until it is used.

cryptography (TLS probes, certificate expiry), dnspython (DNS probes), icalendar (on-call feeds),
markdown-it and nh3 (postmortems) together are ~19 MiB of the server's RSS. Each check runs in a
fresh interpreter, where nothing another test imported can hide a stray import; and a config
that does use such a feature still loads its library, or fails, when the config is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"

# Deferred libraries, by top-level module name, with what needs them.
DEFERRED = {
    "cryptography": "TLS probes and certificate expiry checks",
    "dns": "DNS probes",
    "icalendar": "on-call iCal feeds",
    "markdown_it": "postmortems",
    "nh3": "postmortems",
}

TLS_PROBE = """
[probes.cert]
type = "tls"
host = "127.0.0.1"
"""

DNS_PROBE = """
[probes.mx]
type = "dns"
query_name = "example.com"
"""

CERT_EXPIRY_PROBE = """
[probes.shop]
type = "http"
url = "https://127.0.0.1:8443/"
cert_expiry_warn_days = 14
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by a new interpreter in the repository, stdout and stderr captured."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def deferred_loaded(code: str) -> set[str]:
    """The deferred libraries in sys.modules after running `code` in a new interpreter."""
    done = run_python(f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))")
    assert done.returncode == 0, done.stderr
    return {module.partition(".")[0] for module in json.loads(done.stdout.splitlines()[-1])} & set(DEFERRED)


def config_with(tmp_path: Path, extra: str) -> Path:
    """The example config with `extra` tables appended, written to `tmp_path`."""
    path = tmp_path / "statusd.toml"
    path.write_text(EXAMPLE.read_text() + extra)
    return path


def build_app_code(config: Path) -> str:
    """Code that reads `config` and builds the whole app (nothing is started: no store, no child)."""
    return ("from statusd.app import build_app\nfrom statusd.config import load_config\n"
            f"build_app(load_config({str(config)!r}))")


def test_importing_the_composition_root_and_the_command_loads_no_deferred_library() -> None:
    assert deferred_loaded("import statusd.app, statusd.cli.main") == set()


def test_building_the_app_for_the_example_config_loads_no_deferred_library() -> None:
    assert deferred_loaded(build_app_code(EXAMPLE)) == set()


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param(TLS_PROBE, {"cryptography"}, id="tls-probe"),
    pytest.param(DNS_PROBE, {"dns"}, id="dns-probe"),
    pytest.param(CERT_EXPIRY_PROBE, {"cryptography"}, id="http-cert-expiry"),
])
def test_a_config_that_uses_a_feature_loads_its_library_when_it_is_read(tmp_path: Path, extra: str,
                                                                        expected: set[str]) -> None:
    """The check above can fail: the same build with one such probe configured names its library."""
    code = f"from statusd.config import load_config\nload_config({str(config_with(tmp_path, extra))!r})"
    assert deferred_loaded(code) == expected


@pytest.mark.parametrize(("extra", "blocked", "key"), [
    pytest.param(TLS_PROBE, "cryptography", "probes.cert.type", id="tls-probe"),
    pytest.param(DNS_PROBE, "dns", "probes.mx.type", id="dns-probe"),
    pytest.param(CERT_EXPIRY_PROBE, "cryptography", "probes.shop.cert_expiry_warn_days", id="http-cert-expiry"),
])
def test_check_config_names_a_missing_library_that_a_configured_probe_needs(tmp_path: Path, extra: str,
                                                                          blocked: str, key: str) -> None:
    """Deferred is not hidden: without the library, check-config fails on the probe's key, not the first check."""
    config = config_with(tmp_path, extra)
    # None in sys.modules makes every import of that package raise ImportError, as if it were not installed.
    done = run_python(f"import sys\nsys.modules[{blocked!r}] = None\nfrom statusd.cli.main import main\n"
                      f"raise SystemExit(main(['check-config', {str(config)!r}]))")
    assert done.returncode == 2, done.stderr
    assert f"  {key}: " in done.stderr and blocked in done.stderr, done.stderr
