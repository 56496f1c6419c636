"""The read scope: every internal read needs incidents:read, which incidents:write and admin bring with them."""

from __future__ import annotations

import pytest

from statusd.app import build_app
from statusd.config import parse_config
from statusd.config.loader import ConfigError

WRITER = "writer-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef0"
NOSCOPE = "noscope-token-0123456789abcd"
HELPDESK = "helpdesk-token-0123456789abc"
COMPONENTS = "components-token-0123456789a"


def config_dict(tmp_path) -> dict:
    return {
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"secret_key": "signing-key-0123456789abcdef", "public_url": "http://status.test"},
        "components": {"api": {"name": "API"}},
        "people": {"ann": {"name": "Ann"}},
        "schedules": {"primary": {"timezone": "UTC", "layers": [
            {"name": "24/7", "participants": ["ann"], "shift_h": 24, "start": "2020-01-01T08:00"}]}},
        "tokens": {"writer": {"name": "Support", "secret": WRITER, "scopes": ["incidents:write"]},
                   "reader": {"name": "Dashboard", "secret": READER, "scopes": ["incidents:read"]},
                   "admin": {"name": "Admin", "secret": ADMIN, "scopes": ["admin"]},
                   "noscope": {"name": "Nobody", "secret": NOSCOPE, "scopes": []},
                   "helpdesk": {"name": "Helpdesk", "secret": HELPDESK, "scopes": ["reports:write"]},
                   "components": {"name": "Monitor", "secret": COMPONENTS, "scopes": ["components:write"]}},
    }


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    return await aiohttp_client(build_app(parse_config(config_dict(tmp_path), {}), run_probes=False,
                                          run_worker=False))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


READS = ["/api/v1/incidents/{id}", "/api/v1/incidents/{id}/reports", "/api/v1/oncall", "/api/v1/schedules",
         "/api/v1/schedules/primary/shifts", "/api/v1/kpis"]


@pytest.mark.parametrize("path", READS)
async def test_internal_reads_need_the_read_scope(client, path) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(WRITER),
                          json={"title": "API errors", "body": "Investigating.", "components": ["api"]})
    assert r.status == 201
    url = path.format(id=(await r.json())["incident"]["id"])
    for token in (NOSCOPE, HELPDESK, COMPONENTS):
        refused = await client.get(url, headers=auth(token))
        assert refused.status == 403, token
        assert "incidents:read" in (await refused.json())["error"]["message"]
    assert (await client.get(url)).status == 401
    for token in (READER, WRITER, ADMIN):  # incidents:write and admin bring incidents:read with them
        assert (await client.get(url, headers=auth(token))).status == 200, token


async def test_the_read_scope_alone_writes_nothing(client) -> None:
    r = await client.post("/api/v1/incidents", headers=auth(READER), json={"title": "t", "body": "b"})
    assert r.status == 403


def test_config_accepts_the_read_scope_and_refuses_unknown_ones(tmp_path) -> None:
    parse_config(config_dict(tmp_path), {})
    bad = config_dict(tmp_path)
    bad["tokens"]["reader"]["scopes"] = ["incidents:peek"]
    with pytest.raises(ConfigError) as raised:
        parse_config(bad, {})
    assert "tokens.reader.scopes" in str(raised.value)
