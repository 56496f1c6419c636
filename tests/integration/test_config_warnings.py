"""check-config warns about each setting unsafe beyond loopback: the example's placeholder secrets, an open alerts webhook."""

from __future__ import annotations

from pathlib import Path

import pytest

from statusd.cli.main import main
from statusd.config.summary import loopback_only

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
PLACEHOLDERS = ["server.secret_key", "alerts.token", "alerts.pagerduty.billing", "tokens.support.secret", "tokens.helpdesk.secret",
                "tokens.ann.secret", "tokens.admin.secret", "notifiers.hooks.secret", "notifiers.tg.bot_token"]
OWN_SECRETS = {"STATUSD_SECRET_KEY": "k" * 32, "STATUSD_ALERTS_TOKEN": "a" * 32, "STATUSD_SUPPORT_TOKEN": "s" * 32,
               "STATUSD_HELPDESK_TOKEN": "h" * 32, "STATUSD_ANN_TOKEN": "n" * 32, "STATUSD_ADMIN_TOKEN": "d" * 32,
               "STATUSD_WEBHOOK_SECRET": "w" * 32, "TELEGRAM_BOT_TOKEN": "123456:" + "t" * 30,
               "PD_BILLING_ROUTING_KEY": "p" * 32}


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["check-config", str(path)]) == 0
    return [line.strip().removeprefix("warning: ") for line in capsys.readouterr().out.splitlines()
            if line.strip().startswith("warning: ")]


def test_check_config_warns_about_each_placeholder_secret_of_the_example(capsys) -> None:
    warnings = check_config(EXAMPLE, capsys)
    assert [w.split(":")[0] for w in warnings if "placeholder" in w] == PLACEHOLDERS


def test_check_config_with_own_secrets_warns_about_none(capsys, monkeypatch) -> None:
    for name, value in OWN_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert [w for w in check_config(EXAMPLE, capsys) if not w.startswith("schedules.")] == []


def test_check_config_warns_that_alerts_without_a_token_are_open_to_anyone(tmp_path, capsys) -> None:
    config = tmp_path / "statusd.toml"
    config.write_text('[server]\nsecret_key = "our-own-secret-key-0123"\n', encoding="utf-8")
    assert check_config(config, capsys) == [
        "alerts.token: not set, so the Alertmanager and Grafana webhooks accept alerts from anyone"]


@pytest.mark.parametrize(("host", "loopback"), [
    pytest.param("127.0.0.1", True, id="ipv4-loopback"),
    pytest.param("127.1.2.3", True, id="ipv4-loopback-range"),
    pytest.param("::1", True, id="ipv6-loopback"),
    pytest.param("[::1]", True, id="ipv6-loopback-bracketed"),
    pytest.param("localhost", True, id="localhost"),
    pytest.param("LocalHost", True, id="localhost-any-case"),
    pytest.param("0.0.0.0", False, id="every-ipv4-address"),
    pytest.param("::", False, id="every-ipv6-address"),
    pytest.param("", False, id="empty-means-every-address"),
    pytest.param("192.168.1.10", False, id="private-address"),
    pytest.param("status.example.com", False, id="a-host-name"),
])
def test_loopback_only(host: str, loopback: bool) -> None:
    assert loopback_only(host) is loopback
