"""A page visitor's process path stays small: importing the status page loads no coordinator,
no write API, no report detector and no numpy — checked in a fresh interpreter, where nothing
another test imported can hide a stray import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PAGE_MODULES = ("status_page", "status_page.views", "status_page.api_v2", "status_page.uptime", "status_page.markdown")

# What the page must never pull in (DESIGN.md, "Layout"), by module name prefix.
FORBIDDEN = {
    "numpy": "numpy",
    "statusd.incidents": "the coordinator",
    "statusd.api": "the write API",
    "statusd.reports": "the report detector",
    "statusd.alerts.intake": "the alert intake",
    "statusd.store": "a concrete store",
}


def modules_loaded_by(*imports: str) -> set[str]:
    """Every module in sys.modules after importing `imports` in a new interpreter."""
    code = "".join(f"import {name}\n" for name in ("json", "sys", *imports))
    code += "print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=True)
    return set(json.loads(done.stdout))


def forbidden_in(modules: set[str]) -> dict[str, str]:
    """Loaded modules the page must not reach, each with what it is."""
    return {module: what for module in sorted(modules) for prefix, what in FORBIDDEN.items()
            if module == prefix or module.startswith(prefix + ".")}


def test_importing_the_status_page_loads_no_coordinator_write_api_reports_or_numpy() -> None:
    loaded = modules_loaded_by(*PAGE_MODULES)
    assert "status_page.views" in loaded
    assert forbidden_in(loaded) == {}


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param("numpy", "numpy", id="numpy"),
    pytest.param("statusd.incidents.coordinator", "statusd.incidents.coordinator", id="coordinator"),
    pytest.param("statusd.api.routes", "statusd.api.routes", id="write-api"),
])
def test_the_import_check_names_a_forbidden_module_when_one_is_loaded(extra: str, expected: str) -> None:
    """The check above can fail: the same probe with one forbidden import added names it."""
    assert expected in forbidden_in(modules_loaded_by(*PAGE_MODULES, extra))
