"""Acceptance: a real Prometheus Alertmanager delivers to statusd's webhook; one incident opens, then resolves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from statusd.core.clock import SystemClock
from statusd.core.model import IncidentStatus
from statusd.store.sqlite import SqliteStore
from tests.support.alerts import CONFIG, TOKEN, all_incidents, build_app, build_coordinator
from tests.support.network import free_port
from tests.support.polling import eventually, log_tail

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
DEADLINE_S = 30.0

pytestmark = [
    pytest.mark.alertmanager,
    pytest.mark.skipif(not ALERTMANAGER.exists(), reason="needs Debian's prometheus-alertmanager at "
                       "/usr/bin/prometheus-alertmanager (apt install prometheus-alertmanager)"),
]


def alertmanager_yml(webhook_url: str) -> str:
    return f"""
route:
  receiver: statusd
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: statusd
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"""


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def test_real_alertmanager_opens_and_resolves_one_incident(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    clock = SystemClock()
    coordinator = await build_coordinator(sqlite_store, clock)
    server = TestServer(build_app(CONFIG, coordinator, clock), host="127.0.0.1")
    await server.start_server()
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_yml(str(server.make_url("/api/v1/alerts/alertmanager"))))
    am_url = f"http://127.0.0.1:{free_port()}"
    log_file = tmp_path / "alertmanager.log"
    # Alertmanager's log says why it never became ready or never delivered, so a timeout shows it.
    wait = partial(eventually, timeout_s=DEADLINE_S, interval_s=0.2, diagnostics=log_tail(log_file, "alertmanager"))
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address={am_url.removeprefix('http://')}", "--cluster.listen-address=",
            stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"{am_url}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    assert process.returncode is None, "alertmanager exited: " + log_file.read_text(errors="replace")
                    return False

            await wait(ready, "alertmanager to be ready")
            started = datetime.now(UTC)
            alert = {"labels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
                     "annotations": {"summary": "Error rate above 5%"},
                     "startsAt": rfc3339(started), "endsAt": rfc3339(started + timedelta(days=1))}
            async with http.post(f"{am_url}/api/v2/alerts", json=[alert]) as response:
                assert response.status == 200, await response.text()

            async def one_open_incident_on_api() -> bool:
                incidents = await all_incidents(sqlite_store, clock)
                return [(i.components, i.status) for i in incidents] == [(("api",), IncidentStatus.INVESTIGATING)]

            await wait(one_open_incident_on_api, "one open incident on the api component")

            async with http.post(f"{am_url}/api/v2/alerts",
                                 json=[{**alert, "endsAt": rfc3339(datetime.now(UTC))}]) as response:
                assert response.status == 200, await response.text()

            async def resolved() -> bool:
                incidents = await all_incidents(sqlite_store, clock)
                return bool(incidents) and all(i.status is IncidentStatus.RESOLVED for i in incidents)

            await wait(resolved, "the incident to be resolved")
        [incident] = await all_incidents(sqlite_store, clock)
        assert incident.dedup_key is not None and incident.dedup_key.startswith("alertmanager:")
        assert not incident.dedup_key.startswith("alertmanager:labels-")  # Alertmanager sent its fingerprint
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await server.close()
