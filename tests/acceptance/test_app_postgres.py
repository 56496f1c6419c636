"""The whole app on PostgreSQL (`[store] url`): reports surge into an incident, a restart carries on."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config
from tests.support.alerts import am_alert, am_payload
from tests.support.network import free_port
from tests.support.postgres import fresh_postgres_database
from tests.support.reports import SUPPORT, TOKEN, auth, report

pytestmark = pytest.mark.postgres  # `postgres_server` (tests/conftest.py) skips where no PostgreSQL answers


@pytest.fixture
async def dsn(postgres_server: str) -> AsyncIterator[str]:
    async with fresh_postgres_database(postgres_server) as url:
        yield url


def config(dsn: str, tmp_path) -> Any:
    return parse_config({
        "store": {"url": dsn, "path": str(tmp_path / "never-used.db")},
        "page": {"cache_s": 0},
        "components": {"payments": {"name": "Card payments"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}},
        "reports": {"min_clients": 5},
        "tokens": {"helpdesk": {"name": "Helpdesk", "secret": TOKEN, "scopes": ["reports:write"]},
                   "support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})


async def test_reports_surge_into_an_incident_and_a_restart_carries_on(dsn, tmp_path, aiohttp_client) -> None:
    first = await aiohttp_client(build_app(config(dsn, tmp_path), run_probes=False, run_worker=False))
    answers = []
    for i in range(5):
        r = await first.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
        assert r.status == 202, await r.text()
        answers.append((await r.json())["report"])
    incident_id = answers[-1]["incident_id"]
    assert incident_id is not None and [a["incident_id"] for a in answers[:4]] == [None] * 4
    linked = await (await first.get(f"/api/v1/incidents/{incident_id}/reports", headers=auth(SUPPORT))).json()
    assert len(linked["clients"]) == 5
    summary = await (await first.get("/api/v2/summary.json")).json()
    assert [c["status"] for c in summary["components"]] == ["degraded_performance"]
    async with first.app[RUNTIME].store.read() as r:
        acks = sorted(m.recipient for m in await r.outbox.list(100) if m.template == "report_ack")
    assert acks == [f"client{i}@example.com" for i in range(5)]
    await first.close()
    assert not (tmp_path / "never-used.db").exists()

    # A restart on the same database relearns the reports; the sixth client joins the open incident.
    second = await aiohttp_client(build_app(config(dsn, tmp_path), run_probes=False, run_worker=False))
    await second.app[RUNTIME].intake.replayed()  # before that, a report is answered "detection": "pending"
    r = await second.post("/api/v1/reports", headers=auth(), json=report(5, tags={"component": "payments"}))
    assert r.status == 202 and (await r.json())["report"]["incident_id"] == incident_id


async def test_serve_names_store_url_when_postgres_cannot_be_used(dsn, tmp_path) -> None:
    missing = dsn.rsplit("/", 1)[0] + "/statusd_no_such_database"
    path = tmp_path / "statusd.toml"
    path.write_text(f'[server]\nport = 0\n[store]\nurl = "{missing}"\n', encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "statusd.cli.main", "serve", str(path),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "Traceback" not in err.decode() and "statusd_no_such_database\" does not exist (store.url)" in err.decode()


async def test_a_second_server_on_the_same_database_refuses_to_start(dsn, tmp_path) -> None:
    """As on one SQLite file: two servers would split the reports between two detectors."""
    import signal

    port = free_port()
    first_config, second_config = tmp_path / "first.toml", tmp_path / "second.toml"
    first_config.write_text(f'[server]\nport = {port}\n[store]\nurl = "{dsn}"\n', encoding="utf-8")
    second_config.write_text(f'[server]\nport = 0\n[store]\nurl = "{dsn}"\n', encoding="utf-8")
    first = await asyncio.create_subprocess_exec(sys.executable, "-m", "statusd.cli.main", "serve", str(first_config),
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert first.stdout is not None
        line = b""
        while b"is up" not in line:
            line = await asyncio.wait_for(first.stdout.readline(), 60)
            assert line, "the first server exited before it was up"
        second = await asyncio.create_subprocess_exec(sys.executable, "-m", "statusd.cli.main", "serve", str(second_config),
                                                      stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(second.communicate(), 60)
        finally:
            if second.returncode is None:  # it started after all: the test fails, and leaves no server behind
                second.kill()
                await second.wait()
        assert second.returncode == 1 and "another statusd serve is using this PostgreSQL database" in err.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.communicate(), 30)
    assert first.returncode == 0


async def test_an_alert_with_a_nul_reaches_postgresql(dsn, tmp_path, aiohttp_client) -> None:
    """PostgreSQL's text cannot hold a NUL: the alert is stored with U+FFFD in its place, not refused."""
    client = await aiohttp_client(build_app(config(dsn, tmp_path), run_probes=False, run_worker=False))
    payload = am_payload(am_alert(summary="Card\u0000 payments failing", service="payments", instance="pay-1\u0000"))
    r = await client.post("/api/v1/alerts/alertmanager", json=payload)
    assert r.status == 200, await r.text()
    [result] = (await r.json())["alerts"]
    async with client.app[RUNTIME].store.read() as rd:
        entries = (await rd.incidents.entries([result["incident"]]))[result["incident"]]
    [signal] = [e for e in entries if e.data.get("labels")]
    assert signal.body == "Card\ufffd payments failing" and signal.data["labels"]["instance"] == "pay-1\ufffd"
