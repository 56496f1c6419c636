"""`statusd serve` refuses the example's placeholder secrets unless it listens on loopback only; the quick start runs."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
EXAMPLE_HOST = 'host = "127.0.0.1"               # address to listen on'


def example_listening_on(tmp_path: Path, host: str) -> Path:
    """The example config beside its own store in `tmp_path`, listening on `host` at a port the system picks."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert EXAMPLE_HOST in text
    config = tmp_path / "statusd.toml"
    config.write_text(text.replace(EXAMPLE_HOST, f'host = "{host}"\nport = 0', 1).replace("\nport = 8080", "\n", 1),
                      encoding="utf-8")
    return config


def serve(config: Path) -> tuple[str, subprocess.Popen[str]]:
    """Start `statusd serve`; its first line on stdout ("" when it exited instead of coming up) and the process."""
    proc = subprocess.Popen([sys.executable, "-m", "statusd.cli.main", "serve", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc.stdout.readline(), proc


def test_serve_refuses_the_example_secrets_on_every_address(tmp_path) -> None:
    first_line, proc = serve(example_listening_on(tmp_path, "0.0.0.0"))
    try:
        assert first_line == ""  # it never came up
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "refusing to serve on 0.0.0.0" in stderr and "Traceback" not in stderr
    for key in ("server.secret_key", "alerts.token", "tokens.admin.secret", "notifiers.hooks.secret"):
        assert key in stderr
    assert "dev-" not in stderr and "change-me" not in stderr  # keys named, values never shown
    assert not (tmp_path / "statusd.db").exists()  # refused before touching the store


def test_the_quick_start_serves_the_example_on_loopback(tmp_path) -> None:
    first_line, proc = serve(example_listening_on(tmp_path, "127.0.0.1"))
    try:
        assert "is up" in first_line
    finally:
        # Its exit status is not checked: "is up" is printed before the SIGTERM handler is installed.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
