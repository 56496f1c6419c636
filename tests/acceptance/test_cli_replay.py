"""`statusd replay` through the real console entry point: JSONL out, metrics with labels, clean errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statusd.cli.main", "replay", *args], capture_output=True, text=True,
                          timeout=120)


def test_replay_writes_incidents_and_metrics(tmp_path) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lines = ["received_at,client_id,text,label"]
    rng = random.Random(7)
    # Unrelated questions share few words: draw them from a vocabulary as large as a real help desk's.
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(600)]
    for i in range(120):  # quiet, varied background, one report a minute
        text = " ".join(rng.sample(vocabulary, 4))
        lines.append(f"{(start + timedelta(minutes=i)).isoformat()},bg{i},{text},")
    for i in range(12):  # a burst: many distinct clients, one problem, within minutes
        at = start + timedelta(minutes=60, seconds=40 * i)
        lines.append(f"{at.isoformat()},c{i},card payment declined at the shop again {i},outage")
    source = tmp_path / "reports.csv"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "incidents.jsonl"
    result = run(str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    incidents = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(incidents) == 1
    assert set(incidents[0]) == {"opened_at", "summary", "report_ids"}
    assert "recall" in result.stdout


def test_replay_bad_rows_name_line_and_field(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("received_at,client_id,text\n2026-03-02T09:00:00+00:00,c1,ok\nsoon,c2,late\n")
    result = run(str(bad))
    assert result.returncode == 2
    assert "line 3, field received_at" in result.stderr and "Traceback" not in result.stderr
    missing = run(str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def statusd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statusd.cli.main", *args], capture_output=True, text=True, timeout=timeout)


def test_serve_reports_a_store_it_cannot_open_and_exits(tmp_path) -> None:
    """It used to print a traceback, and with a file that is no database its connection threads kept it running."""
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database\n" * 100, encoding="utf-8")
    for path in (tmp_path, not_a_db):  # a folder, a file that is no database
        config = tmp_path / "statusd.toml"
        config.write_text(f'[server]\nport = 0\n[store]\npath = "{path}"\n', encoding="utf-8")
        result = statusd("serve", str(config))  # the timeout would raise if it hung
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and "store.path" in result.stderr


def test_global_options_may_come_before_replay(tmp_path) -> None:
    history = tmp_path / "h.csv"
    history.write_text("received_at,client_id,text\n2026-01-05T09:00:00Z,a,card declined\n", encoding="utf-8")
    result = statusd("--log-level", "WARNING", "replay", str(history), "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "1 reports" in result.stdout


def test_replay_refuses_times_and_lines_it_cannot_handle_naming_line_and_field(tmp_path) -> None:
    old = tmp_path / "old.csv"
    old.write_text("received_at,client_id,text\n0001-01-01T00:00:00+01:00,a,x\n", encoding="utf-8")
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"received_at": "2026-01-05T09:00:00Z", "client_id": "a", "text": ' + "[" * 100_000 + "}\n",
                    encoding="utf-8")
    for path, expected in ((old, "line 2, field received_at"), (deep, "line 1")):
        result = run(str(path))
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    for flag in ("--window-min=nan", "--window-min=1e300", "--link-quiet-min=inf"):
        result = run(str(old), flag)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (flag, result.stderr)


def test_serve_exits_when_another_process_holds_the_store_at_start(tmp_path) -> None:
    """Its open connections used to keep the process alive after it had reported the locked store."""
    import sqlite3

    config = tmp_path / "statusd.toml"
    config.write_text('[server]\nport = 0\n[store]\npath = "statusd.db"\n', encoding="utf-8")
    assert statusd("migrate", str(config)).returncode == 0
    holder = sqlite3.connect(tmp_path / "statusd.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = statusd("serve", str(config), timeout=60)  # the timeout raises if it hangs
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1 and "database is locked" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_server_on_the_same_sqlite_file_refuses_to_start(tmp_path) -> None:
    """Two servers would split the reports between two detectors, and neither would see a surge."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "statusd.toml"
    config.write_text(f'[server]\nport = {port}\n[store]\npath = "statusd.db"\n', encoding="utf-8")
    first = subprocess.Popen([sys.executable, "-m", "statusd.cli.main", "serve", str(config)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        second = tmp_path / "second.toml"
        second.write_text(f'[server]\nport = 0\n[store]\npath = "{tmp_path / "statusd.db"}"\n', encoding="utf-8")
        result = statusd("serve", str(second))
        assert result.returncode == 1 and "another statusd serve" in result.stderr, result.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)
    assert first.returncode == 0
