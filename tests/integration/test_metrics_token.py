"""/metrics behind an optional bearer token (`[server] metrics_token`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from statusd.app import build_app
from statusd.config import parse_config
from statusd.core.errors import ConfigError

TOKEN = "metrics-token-0123456789"


def config(tmp_path: Path, **server: str):
    return parse_config({"store": {"path": str(tmp_path / "statusd.db")}, "server": server,
                         "components": {"api": {"name": "API"}}}, {"METRICS_TOKEN": TOKEN})


async def test_metrics_token_is_required_when_set(tmp_path, aiohttp_client) -> None:
    client = await aiohttp_client(build_app(config(tmp_path, metrics_token="${METRICS_TOKEN}"),
                                            run_probes=False, run_worker=False))
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert (await refused.json())["error"]["field"] == "Authorization"
    scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status == 200
    assert 'statusd_component_status{component="api",status="operational"} 1.0' in await scraped.text()


async def test_metrics_are_open_without_a_token(tmp_path, aiohttp_client) -> None:
    client = await aiohttp_client(build_app(config(tmp_path), run_probes=False, run_worker=False))
    assert (await client.get("/metrics")).status == 200


def test_short_metrics_token_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="server.metrics_token: must be at least 16 characters"):
        config(tmp_path, metrics_token="short")
