"""Acceptance: an outage pages the duty engineer on Telegram; pressing Acknowledge stops the escalation.

The whole app runs against a fake Telegram Bot API on loopback: the alert arrives with an
inline Acknowledge button, a button press is delivered through getUpdates, statusd
acknowledges as the person whose chat it is, and the next escalation level is never paged.
"""

from __future__ import annotations

import asyncio

from statusd.app import RUNTIME, build_app
from statusd.config import parse_config
from tests.support.polling import eventually
from tests.support.telegram import CHAT, TOKEN, api  # noqa: F401 (the fixture)


async def test_acknowledge_button_stops_escalation(tmp_path, aiohttp_client, api) -> None:  # noqa: F811
    config = parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"secret_key": "s" * 32},
        "components": {"api": {"name": "API"}},
        "notifiers": {"tg": {"type": "telegram", "bot_token": TOKEN, "api_url": api.url(), "poll_timeout_s": 1},
                      "hooks": {"type": "webhook"}},
        "people": {"ann": {"name": "Ann", "contacts": {"tg": CHAT}},
                   "dan": {"name": "Dan", "contacts": {"hooks": "http://127.0.0.1:9/dan"}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"], "ack_timeout_s": 2},
                                                       {"targets": ["dan"], "ack_timeout_s": 2}]}},
        "incidents": {"escalation_policy": "default"},
        "tokens": {"t": {"name": "Support", "secret": "t" * 20, "scopes": ["admin"]}},
    }, {})
    client = await aiohttp_client(build_app(config, run_probes=False))
    runtime = client.app[RUNTIME]
    r = await client.post("/api/v1/incidents", headers={"Authorization": "Bearer " + "t" * 20},
                          json={"title": "Checkout down", "body": "Investigating.", "components": ["api"]})
    incident_id = (await r.json())["incident"]["id"]

    async def alerted() -> bool:
        return bool(api.sent)
    await eventually(alerted, "the Telegram alert")
    [alert] = api.sent
    assert alert["chat_id"] == CHAT and "Checkout down" in alert["text"]
    [[button]] = alert["reply_markup"]["inline_keyboard"]
    assert button["callback_data"] == f"ack:{incident_id}"

    async with runtime.store.read() as rd:
        [step] = [t for t in await rd.timers.pending(incident_id) if t.kind == "escalate"]  # Dan, unless acked

    api.press(button["callback_data"], user_id=int(CHAT))

    async def acknowledged() -> bool:
        async with runtime.store.read() as rd:
            incident = await rd.incidents.get(incident_id)
        return incident.acknowledged_at is not None
    await eventually(acknowledged, "the acknowledgement from the button")
    assert api.answers and "Acknowledged" in api.answers[0]["text"]
    async with runtime.store.read() as rd:
        incident = await rd.incidents.get(incident_id)
        assert await rd.timers.pending(incident_id) == [] or all(
            t.kind == "remind" for t in await rd.timers.pending(incident_id))
    assert incident.commander == "ann" and incident.acknowledged_by == "Ann"
    # The barrier: once Dan's step would have come due, fire every due timer ourselves; none pages him.
    await asyncio.sleep(max(0.0, (step.due_at - runtime.clock.now()).total_seconds()) + 0.01)
    assert runtime.timers is not None
    await runtime.timers.fire_due()
    async with runtime.store.read() as rd:
        assert [m.recipient for m in await rd.outbox.list() if m.template == "alert"] == [CHAT]
