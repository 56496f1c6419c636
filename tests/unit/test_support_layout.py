"""Test modules share code through tests/support/ and conftest.py only, never by importing each other.

A test module that imports another one runs (and breaks with) the other's module-level setup, hides
which helper is shared, and stops either from moving on its own; the shared part belongs in support/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]  # tests/, this file being in tests/unit/
KINDS = ("unit", "contract", "integration", "acceptance")


def allowed(module: str) -> bool:
    """Whether a test file may import `module`: anything outside tests/, tests/support/ or a conftest."""
    parts = module.split(".")
    return parts[0] != "tests" or len(parts) == 1 or parts[1] == "support" or "conftest" in parts


def imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for each import in `path`; relative ones resolve as if `root`'s parent were on sys.path.

    `from tests import test_x` names the module `tests.test_x`, so each imported name under a package
    counts as a module too; the rule in `allowed` decides whether that matters.
    """
    # The package a relative import starts from: the folder, for a module and for an __init__.py alike.
    package_parts = list(path.relative_to(root.parent).parent.parts)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package_parts[:len(package_parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def cross_test_imports(root: Path) -> list[str]:
    """Every import of one test module by another under `root` (a `tests` folder), as `path:line imports module`."""
    found: dict[tuple[str, int], str] = {}
    for path in sorted(root.rglob("*.py")):
        for line, module in imported(path, root):
            if not allowed(module):  # the module before its names: one line per import statement
                found.setdefault((str(path.relative_to(root.parent)), line), module)
    return [f"{where}:{line} imports {module}" for (where, line), module in found.items()]


def test_no_test_module_imports_another() -> None:
    assert TESTS.name == "tests" and (TESTS / "conftest.py").exists()
    assert cross_test_imports(TESTS) == [], "move what is shared into tests/support/ (or a fixture into conftest.py)"


def test_every_test_module_sits_in_one_of_the_four_folders() -> None:
    misplaced = [str(path.relative_to(TESTS)) for path in sorted(TESTS.rglob("test_*.py"))
                 if path.relative_to(TESTS).parts[0] not in KINDS or len(path.relative_to(TESTS).parts) != 2]
    assert misplaced == [], f"put each test module in tests/{{{','.join(KINDS)}}}/"


FORBIDDEN = [
    pytest.param("test_a.py", "from tests.test_e2e import eventually\n", "tests.test_e2e", id="from-module"),
    pytest.param("test_a.py", "from tests import test_store_contract\n", "tests.test_store_contract",
                 id="from-package-import-module"),
    pytest.param("test_a.py", "import tests.test_alerts\n", "tests.test_alerts", id="import-module"),
    pytest.param("test_a.py", "from .test_alerts import CONFIG\n", "tests.test_alerts", id="relative"),
    pytest.param("test_a.py", "def f():\n    from tests.test_alerts import am_alert\n", "tests.test_alerts",
                 id="inside-a-function"),
    pytest.param("support/helpers.py", "from ..test_alerts import CONFIG\n", "tests.test_alerts",
                 id="support-importing-a-test"),
    pytest.param("unit/test_a.py", "from tests.unit.test_b import helper\n", "tests.unit.test_b",
                 id="in-a-subfolder"),
]


@pytest.mark.parametrize(("where", "source", "module"), FORBIDDEN)
def test_a_cross_test_import_is_caught(tmp_path: Path, where: str, source: str, module: str) -> None:
    root = tmp_path / "tests"
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).write_text(source, encoding="utf-8")
    assert any(v.endswith(f" imports {module}") and v.startswith(f"tests/{where}:")
               for v in cross_test_imports(root)), cross_test_imports(root)


ALLOWED = [
    pytest.param("from tests.support.fakes import WebhookReceiver\n", id="support"),
    pytest.param("from tests.support import polling\n", id="support-module"),
    pytest.param("from tests import support\n", id="support-package"),
    pytest.param("from tests.conftest import free_port\n", id="conftest"),
    pytest.param("from .support.alerts import CONFIG\n", id="relative-support"),
    pytest.param("from tests.unit.conftest import helper\n", id="a-subfolder-conftest"),
    pytest.param("import asyncio\nfrom statusd.app import build_app\n", id="not-a-test-module"),
]


@pytest.mark.parametrize("source", ALLOWED)
def test_imports_of_support_and_conftest_pass(tmp_path: Path, source: str) -> None:
    root = tmp_path / "tests"
    root.mkdir()
    (root / "test_a.py").write_text(source, encoding="utf-8")
    assert cross_test_imports(root) == []
