"""Ecosystem: a real Prometheus scrapes statusd's /metrics, and README's alerting rules load and evaluate."""

from __future__ import annotations

import asyncio
import re
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from statusd.app import build_app
from tests.support.network import free_port
from tests.support.polling import eventually, log_tail
from tests.support.reports import auth, config, report

PROMETHEUS, PROMTOOL = Path("/usr/bin/prometheus"), Path("/usr/bin/promtool")
README = Path(__file__).resolve().parents[2] / "README.md"
DEADLINE_S = 30.0

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(not (PROMETHEUS.exists() and PROMTOOL.exists()),
                       reason="needs Debian's prometheus at /usr/bin/prometheus (apt install prometheus)"),
]


def readme_rules() -> str:
    """The `# statusd-rules.yml` block of README's Prometheus section, as an operator would copy it."""
    match = re.search(r"```yaml\n# statusd-rules\.yml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README.md has no ```yaml block starting with '# statusd-rules.yml'"
    return match.group(1)


async def promtool(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(str(PROMTOOL), *args, stdin=asyncio.subprocess.PIPE,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_readme_rules_pass_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "statusd-rules.yml"
    rules.write_text(readme_rules(), encoding="utf-8")
    code, out = await promtool("check", "rules", str(rules))
    assert code == 0 and "SUCCESS: 5 rules found" in out, out


async def test_readme_rules_fire_on_the_first_failure_and_a_gap_in_the_schedule(tmp_path: Path) -> None:
    """promtool's rule unit tests: the series as statusd exposes them (every reason from 0) make the alerts fire."""
    (tmp_path / "statusd-rules.yml").write_text(readme_rules(), encoding="utf-8")
    (tmp_path / "tests.yml").write_text("""
rule_files: [statusd-rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'statusd_reports_undetected_total{reason="detector_failed"}'
        values: '0 0 0 3 3 3'
      - series: 'statusd_oncall_covered{schedule="primary"}'
        values: '1 1 0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 2m
        alertname: StatusdReportsUndetected
        exp_alerts: []
      - eval_time: 4m
        alertname: StatusdReportsUndetected
        exp_alerts:
          - exp_labels: {reason: detector_failed}
            exp_annotations: {summary: "Customer reports were stored but not checked for a surge"}
      - eval_time: 6m
        alertname: StatusdNobodyOnCall
        exp_alerts: []
      - eval_time: 8m
        alertname: StatusdNobodyOnCall
        exp_alerts:
          - exp_labels: {schedule: primary}
            exp_annotations: {summary: "Nobody is on call in schedule primary: new incidents have no owner"}
""", encoding="utf-8")
    code, out = await promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert code == 0, out


async def test_prometheus_scrapes_statusd_and_evaluates_the_readme_rules(tmp_path: Path) -> None:
    app = build_app(config(tmp_path), run_probes=False, run_worker=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rules = tmp_path / "statusd-rules.yml"
    rules.write_text(readme_rules(), encoding="utf-8")
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: statusd
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""", encoding="utf-8")
    prom = f"127.0.0.1:{free_port()}"
    log_file = tmp_path / "prometheus.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={prom}", stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession(base_url=server.make_url("/"),
                                         timeout=aiohttp.ClientTimeout(total=10)) as statusd:
            for i in range(6):  # a surge: five clients open an incident, the sixth joins it
                r = await statusd.post("/api/v1/reports", headers=auth(), json=report(i, tags={"component": "payments"}))
                assert r.status == 202, await r.text()
            assert (await statusd.post("/report", data={"text": "buy pills", "website": "http://spam"})).status == 200
            exposition = await (await statusd.get("/metrics")).read()
        code, out = await promtool("check", "metrics", stdin=exposition)
        assert code == 0, out  # the exposition parses, and Prometheus's naming lint has nothing to say
        # A rule on a misspelt series evaluates fine, to nothing: every series the rules name must exist.
        named = set(re.findall(r"\bstatusd_[a-z_]+", "\n".join(re.findall(r"expr: (.*)", readme_rules()))))
        assert len(named) == 5 and {n for n in named if f"# HELP {n} ".encode() not in exposition} == set()

        async with aiohttp.ClientSession(base_url=f"http://{prom}", timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def query(expr: str) -> list[dict[str, Any]]:
                try:
                    async with http.get("/api/v1/query", params={"query": expr}) as response:
                        return (await response.json())["data"]["result"] if response.status == 200 else []
                except aiohttp.ClientError:
                    assert process.returncode is None, "prometheus exited: " + log_file.read_text(errors="replace")
                    return []

            async def rule_health() -> list[tuple[str, str]]:
                async with http.get("/api/v1/rules") as response:
                    groups = (await response.json())["data"]["groups"]
                rules = [(rule["name"], rule["health"]) for group in groups for rule in group["rules"]]
                return rules if rules and all(health == "ok" for _, health in rules) else []  # "unknown" at first

            # Prometheus's log says why a scrape or a rule never came through, so a timeout shows it.
            wait = partial(eventually, timeout_s=DEADLINE_S, interval_s=0.25,
                           diagnostics=log_tail(log_file, "prometheus"))

            async def answer(expr: str) -> list[dict[str, Any]]:
                """The first non-empty answer to `expr`."""
                return await wait(lambda: query(expr), f"a result for {expr}")

            # Each query names the value it waits for: a scrape may come while the reports are still arriving.
            [up] = await answer('up{job="statusd"} == 1')
            assert up["metric"]["instance"] == f"127.0.0.1:{server.port}"
            [stored] = await answer('statusd_reports_received_total{outcome="stored"} == 6')
            assert stored["metric"]["source"] == "api:helpdesk"
            await answer("statusd_reports_linked_total == 6")
            await answer("statusd_report_surges_total == 1")
            await answer('statusd_incidents_opened_total{source="reports"} == 1')
            await answer('statusd_report_form_refused_total{reason="honeypot"} == 1')
            await answer('statusd_reports_undetected_total{reason="detector_failed"} == 0')
            assert len(await wait(rule_health, "every rule evaluated")) == 5
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await server.close()
