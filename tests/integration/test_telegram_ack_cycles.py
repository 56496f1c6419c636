"""The Telegram Acknowledge button is bound to the page cycle it was sent in, like the signed ack links."""

from __future__ import annotations

import pytest

from notifiers.telegram import CallbackQuery
from statusd.app import RUNTIME, build_app, telegram_acknowledger
from statusd.config import parse_config
from statusd.core.model import ComponentStatus, Signal

CHAT = "424242"
SUPPORT = "support-token-0123456789ab"


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    config = parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"secret_key": "signing-key-0123456789abcdef"},  # buttons come with signed ack links
        "components": {"api": {"name": "API"}},
        "notifiers": {"tg": {"type": "telegram", "bot_token": "123456:ABC-DEF1234ghIkl",
                             "api_url": "http://127.0.0.1:9", "poll_timeout_s": 0}},
        "people": {"ann": {"name": "Ann", "contacts": {"tg": CHAT}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})
    return await aiohttp_client(build_app(config, run_probes=False, run_worker=False))


def outage(client) -> Signal:
    return Signal(source="probe", dedup_key="probe:api", components=("api",), severity=ComponentStatus.MAJOR_OUTAGE,
                  summary="api failing", at=client.app[RUNTIME].coordinator.clock.now())


async def buttons(client) -> list[str]:
    """The callback data of each Acknowledge button paged to Ann, oldest first (as the notifier would send it)."""
    async with client.app[RUNTIME].store.read() as r:
        messages = sorted(await r.outbox.list(1000), key=lambda m: m.id or 0)
    out = []
    for m in messages:
        if m.template == "alert" and m.recipient == CHAT:
            [action] = m.context["actions"]
            out.append(f"ack:{m.context['incident']['id']}" + (f"@{action['cycle']}" if action["cycle"] else ""))
    return out


def press(data: str) -> CallbackQuery:
    return CallbackQuery(id="1", chat_id=CHAT, from_user_id=CHAT, from_username=None, data=data)


async def test_a_button_from_before_the_incident_reopened_acknowledges_nothing(client) -> None:
    runtime = client.app[RUNTIME]
    on_press = telegram_acknowledger(runtime.coordinator, "tg")
    opened = await runtime.coordinator.handle(outage(client))
    r = await client.post(f"/api/v1/incidents/{opened.id}/resolve",
                          headers={"Authorization": f"Bearer {SUPPORT}"}, json={"body": "Fixed."})
    assert r.status == 200
    reopened = await runtime.coordinator.handle(outage(client))  # the fix did not hold
    assert reopened.id == opened.id and reopened.status.is_open
    old, new = await buttons(client)
    assert old == f"ack:{opened.id}" and new == f"ack:{opened.id}@1"

    answer = await on_press(press(old))
    assert answer.startswith("Nothing to do") and "re-opened" in answer
    async with runtime.store.read() as r:
        assert (await r.incidents.get(opened.id)).acknowledged_at is None  # escalation goes on

    assert await on_press(press(new)) == f"Acknowledged #{opened.id}: you own it now"
    async with runtime.store.read() as r:
        assert (await r.incidents.get(opened.id)).commander == "ann"
