"""/api/v1/oncall reports the real bounds of a long shift."""

from __future__ import annotations

from statusd.app import build_app
from statusd.config import parse_config

SUPPORT = "support-token-0123456789ab"


def config(tmp_path):
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "components": {"api": {"name": "API"}},
        "people": {"ann": {"name": "Ann"}, "bob": {"name": "Bob"}, "cid": {"name": "Cid"}},
        "schedules": {
            "weekly": {"timezone": "UTC", "layers": [
                {"name": "weekly", "participants": ["ann", "bob"], "shift_h": 168, "start": "2026-01-05T09:00"}]},
            "alone": {"timezone": "UTC", "layers": [{"name": "solo", "participants": ["cid"],
                                                     "start": "2020-01-01T00:00"}]}},
        "tokens": {"support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:read"]}},
    }, {})


async def test_weekly_shift_bounds(tmp_path, aiohttp_client) -> None:
    client = await aiohttp_client(build_app(config(tmp_path), run_probes=False, run_worker=False))
    r = await client.get("/api/v1/oncall?at=2026-03-05T12:00:00%2B00:00",
                         headers={"Authorization": f"Bearer {SUPPORT}"})
    assert r.status == 200
    schedules = (await r.json())["schedules"]
    assert schedules["weekly"] == {"person": "ann", "name": "Ann", "since": "2026-03-02T09:00:00+00:00",
                                   "until": "2026-03-09T09:00:00+00:00"}
    # One person on call for years: no handoff within the horizon either way.
    assert schedules["alone"] == {"person": "cid", "name": "Cid", "since": None, "until": None}
