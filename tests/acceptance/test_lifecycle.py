"""`statusd serve` as a real process: clean shutdown on SIGTERM, and a restart picks up where it stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.fakes import Target, WebhookReceiver
from tests.support.network import free_port
from tests.support.polling import eventually

HOOK_SECRET = "lifecycle-hook-secret-01"


def write_config(path: Path, port: int, target: Target, hooks: WebhookReceiver) -> None:
    path.write_text(f"""
[server]
port = {port}
[store]
path = "statusd.db"
[notifications]
backoff_initial_s = 0.5
backoff_max_s = 0.5
max_attempts = 100
[components.api]
name = "API"
[probes.api]
type = "http"
component = "api"
url = "{target.url}"
interval_s = 0.5
timeout_s = 0.5
failure_threshold = 2
success_threshold = 2
[notifiers.hooks]
type = "webhook"
secret = "{HOOK_SECRET}"
[people.ann]
name = "Ann"
contacts = {{ hooks = "{hooks.url('/ann')}" }}
[[schedules.primary.layers]]
participants = ["ann"]
start = "2020-01-01T08:00"
[[escalation_policies.default.levels]]
targets = ["schedule:primary"]
[incidents]
escalation_policy = "default"
""")


class Server:
    """One `statusd serve` process; one a failed test left running is killed when the test ends."""

    running: list[Server] = []

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        Server.running.append(self)

    async def start(self) -> Server:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statusd.cli.main", "serve", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ})
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        while b"is up" not in line:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
            assert line, "statusd exited before it was up"
        return self

    async def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        assert self.proc is not None and self.proc.stdout is not None
        self.proc.send_signal(sig)
        out = await asyncio.wait_for(self.proc.stdout.read(), 30)
        return await asyncio.wait_for(self.proc.wait(), 30), out.decode()


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def checks(db: Path) -> int:
    """How many check results of the `api` probe the server has stored."""
    [(count,)] = rows(db, "SELECT COUNT(*) FROM probe_results WHERE probe = 'api'")
    return int(count)


def undelivered(db: Path) -> int:
    """Outbox messages still waiting for (or in) a delivery attempt."""
    [(count,)] = rows(db, "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")
    return int(count)


@pytest.fixture(autouse=True)
async def no_server_left_behind() -> AsyncIterator[None]:
    yield
    while Server.running:
        proc = Server.running.pop().proc
        if proc is not None and proc.returncode is None:
            proc.kill()  # its detector child exits when the pipe closes
            await proc.wait()


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = await Target().start()
    yield t
    await t.close()


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver(secret=HOOK_SECRET, fail_with=503).start()
    yield receiver
    await receiver.close()


async def test_sigterm_then_restart_resumes_deliveries_without_repeating(tmp_path, target, hooks) -> None:
    config = tmp_path / "statusd.toml"
    db = tmp_path / "statusd.db"
    write_config(config, free_port(), target, hooks)
    target.healthy = False  # down from the start; the receiver is down too

    first = await Server(config).start()

    async def alert_failing() -> bool:
        return hooks.rejected >= 2
    await eventually(alert_failing, "the alert to be attempted and fail")
    code, output = await first.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output and "stopped" in output
    assert rows(db, "SELECT COUNT(*) FROM incidents WHERE resolved_at IS NULL") == [(1,)]
    [(status,)] = rows(db, "SELECT status FROM outbox WHERE template = 'alert'")
    assert status == "pending"  # not lost, not sent
    assert hooks.hooks == []

    hooks.fail_with = None  # the receiver comes back while statusd is down
    second = await Server(config).start()

    async def delivered() -> bool:
        return len(hooks.hooks) >= 1
    await eventually(delivered, "the pending alert after the restart")
    checks_when_delivered = checks(db)

    async def settled() -> bool:
        # The target is still down: a second incident or alert would come from one of these checks,
        # and with nothing left in the outbox it would have reached the receiver by now.
        return checks(db) >= checks_when_delivered + 4 and undelivered(db) == 0
    await eventually(settled, "four more failing checks after the restart and every message delivered")
    assert rows(db, "SELECT COUNT(*) FROM incidents") == [(1,)]  # the restart did not open a second one
    alerts = [h for h in hooks.hooks if h.json["event"] == "alert"]
    assert len(alerts) == 1

    target.healthy = True

    async def resolved() -> bool:
        return rows(db, "SELECT COUNT(*) FROM incidents WHERE resolved_at IS NOT NULL") == [(1,)]
    await eventually(resolved, "the incident to resolve after the restart")
    code, output = await second.stop(signal.SIGINT)
    assert code == 0, output
    assert json.loads(hooks.hooks[0].body)["incident"]["title"] == "API: major outage"


async def test_kill_9_mid_escalation_fires_the_next_step_once_after_restart(tmp_path, target, hooks) -> None:
    """statusd dies hard between two escalation steps; the restarted process pages level 2 once, level 1 never again."""
    hooks.fail_with = None
    config = tmp_path / "statusd.toml"
    db = tmp_path / "statusd.db"
    write_config(config, free_port(), target, hooks)
    text = config.read_text()
    text = text.replace("""[[escalation_policies.default.levels]]
targets = ["schedule:primary"]
""", """[[escalation_policies.default.levels]]
targets = ["schedule:primary"]
ack_timeout_s = 3.0
[[escalation_policies.default.levels]]
targets = ["dan"]
ack_timeout_s = 3.0
""")
    text += f"""
[people.dan]
name = "Dan"
contacts = {{ hooks = "{hooks.url('/dan')}" }}
"""
    config.write_text(text)
    target.healthy = False
    first = await Server(config).start()

    async def ann_paged() -> bool:
        return any(h.path == "/ann" for h in hooks.hooks)
    await eventually(ann_paged, "the first level to be paged")
    code, _ = await first.stop(signal.SIGKILL)  # no cleanup at all
    assert code == -signal.SIGKILL
    [(due,)] = rows(db, "SELECT due_at FROM timers WHERE kind = 'escalate' AND fired_at IS NULL"
                        " AND cancelled_at IS NULL")
    # The step comes due while statusd is dead.
    await asyncio.sleep(max(0.0, (datetime.fromisoformat(due) - datetime.now(UTC)).total_seconds()) + 0.1)

    second = await Server(config).start()

    async def dan_paged() -> bool:
        return any(h.path == "/dan" for h in hooks.hooks)
    await eventually(dan_paged, "the second level after the restart")
    checks_when_paged = checks(db)

    async def settled() -> bool:
        # The overdue step is marked fired and nothing waits in the outbox, and the restarted server has
        # checked the target twice more: a repeated page for either level would have arrived by now.
        [(fired_at,)] = rows(db, f"SELECT fired_at FROM timers WHERE due_at = '{due}'")
        return fired_at is not None and undelivered(db) == 0 and checks(db) >= checks_when_paged + 2
    await eventually(settled, "the overdue step marked fired, two more checks and every message delivered")
    code, output = await second.stop(signal.SIGTERM)
    assert code == 0, output
    alerts = [(h.path, h.json["event"]) for h in hooks.hooks if h.json["event"] == "alert"]
    assert alerts == [("/ann", "alert"), ("/dan", "alert")]
    assert rows(db, "SELECT COUNT(*) FROM incidents") == [(1,)]
    [(fired,)] = rows(db, f"SELECT fired_at FROM timers WHERE due_at = '{due}'")
    assert fired is not None


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_reports_through_a_real_server_and_its_detector_process(tmp_path) -> None:
    """`statusd serve` runs the detector in a child process; a surge opens an incident; both exit on SIGTERM,
    and the child also goes when the server is killed with -9."""
    import aiohttp

    port = free_port()
    config = tmp_path / "statusd.toml"
    config.write_text(f"""
[server]
port = {port}
[store]
path = "statusd.db"
[components.payments]
name = "Payments"
[tokens.helpdesk]
name = "Helpdesk"
secret = "lifecycle-helpdesk-token"
scopes = ["reports:write"]
""")
    server = await Server(config).start()
    assert server.proc is not None
    children = [int(p) for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()]
    results = []
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer lifecycle-helpdesk-token"}) as http:
        for i in range(6):
            async with http.post(f"http://127.0.0.1:{port}/api/v1/reports", json={
                    "client_id": f"c{i}", "text": "card payment declined", "tags": {"component": "payments"}}) as r:
                assert r.status == 202
                results.append((await r.json())["report"])
    assert results[-1]["incident_id"] is not None
    assert any("statusd.reports.worker" in Path(f"/proc/{pid}/cmdline").read_text() for pid in children)
    code, output = await server.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output

    async def children_gone() -> bool:
        return not any(alive(pid) for pid in children)
    await eventually(children_gone, "the detector's process to exit with its server")

    again = await Server(config).start()  # warms up from the stored reports
    assert again.proc is not None
    children = [int(p) for p in Path(f"/proc/{again.proc.pid}/task/{again.proc.pid}/children").read_text().split()]
    code, _ = await again.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    await eventually(children_gone, "the detector's process to exit after its server was killed")
