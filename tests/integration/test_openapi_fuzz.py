"""schemathesis against the OpenAPI document: generated requests to a real server on loopback, none answered 5xx.

Each operation gets a bounded number of generated requests (valid and invalid by the
document), derandomized so a CI run is repeatable, with the admin token so requests reach
past authorization. Every answer is checked: no 5xx, a documented status and content type,
and a body that matches the documented schema. Failures are collected rather than shrunk, so
an operation costs at most MAX_EXAMPLES requests and its test names every failing case.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from statusd.api.openapi import document
from statusd.app import build_app
from tests.support.openapi import ADMIN, HEARTBEAT, TELEGRAM_SECRET, openapi_config

MAX_EXAMPLES = 50  # per operation: 48 operations, about 1,700 requests (routes without inputs need one)
TIME_BUDGET_S = 20.0  # per operation, should a slow machine make the examples slow: stop sending after it
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}

# Defects found by this fuzzing in code outside the API contract, each to be fixed where it lives.
KNOWN_DEFECTS: dict[str, str] = {}

# Path values that exist in the test config, so generated requests also get past the lookup, not only 404.
EXISTING = {
    "POST /telegram/{notifier}/webhook": {"notifier": "tg"},
    "GET /api/v1/heartbeat/{token}": {"token": HEARTBEAT},
    "POST /api/v1/heartbeat/{token}": {"token": HEARTBEAT},
    "GET /api/v1/schedules/{id}/shifts": {"id": "primary"},
    "GET /schedules/{id}.ics": {"id": "primary"},
    "PUT /api/v1/components/{id}": {"id": "api"},
    # Incident 1 is opened by the first operation's requests (POST /api/v1/incidents runs first; alone, a 404).
    **{f"{method} /api/v1/incidents/{{id}}{tail}": {"id": "1"} for method, tail in (
        ("GET", ""), ("POST", "/updates"), ("POST", "/acknowledge"), ("POST", "/resolve"), ("POST", "/handoff"),
        ("PUT", "/comms"), ("POST", "/postmortem"), ("POST", "/merge"), ("GET", "/reports"))},
}

STATS = {"requests": 0, "5xx": 0}
STATUSES: dict[int, int] = {}


class LoopbackServer:
    """The whole app on 127.0.0.1 in a thread of its own, since schemathesis sends with blocking requests."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openapi-fuzz-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _start(self) -> None:
        app = build_app(openapi_config(self._tmp_path), run_probes=False, run_worker=False)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)
        self._loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LoopbackServer]:
    with LoopbackServer(tmp_path_factory.mktemp("openapi-fuzz")) as running:
        yield running


def credentials(operation: Any) -> dict[str, str]:
    security = operation.definition.raw.get("security", [])
    if {"bearer": []} in security:
        return {"Authorization": f"Bearer {ADMIN}"}
    if {"telegramSecret": []} in security:
        return {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    return {}


def params() -> list[Any]:
    return [pytest.param(label, marks=pytest.mark.xfail(reason=KNOWN_DEFECTS[label], strict=True))
            if label in KNOWN_DEFECTS else label for label in OPERATIONS]


@pytest.mark.parametrize("label", params())
def test_generated_requests_get_no_5xx_and_answers_match_the_document(server: LoopbackServer, label: str) -> None:
    operation = OPERATIONS[label]
    headers = credentials(operation)
    failures: list[str] = []
    STATUSES.clear()
    session = requests.Session()
    stop_at = time.monotonic() + TIME_BUDGET_S
    strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if label in EXISTING:
        strategies += [operation.as_strategy(mode, path_parameters=EXISTING[label]) for mode in GenerationMode]
    strategy = st.one_of(strategies)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > stop_at:
            return
        response = case.call(base_url=server.base_url, session=session, headers=headers, timeout=30)
        STATS["requests"] += 1
        STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            STATS["5xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - schemathesis' FailureGroup is a BaseExceptionGroup
            what = " / ".join(line.strip() for line in str(exc).strip().splitlines()[1:4]) or type(exc).__name__
            failures.append(f"{response.status_code} for {case.as_curl_command(headers=headers)}: {what}")

    try:
        run()
    finally:
        session.close()
        print(f"\n{label}: {sorted(STATUSES.items())}; {STATS['requests']} requests so far, {STATS['5xx']} answered 5xx")
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures[:10])
