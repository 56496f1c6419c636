"""The OpenAPI document's tests: a config that reaches every route, and real answers checked against the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from statusd.config import Config, parse_config

ADMIN = "admin-token-0123456789abc"
READER = "reader-token-0123456789ab"
SUPPORT = "support-token-0123456789"
HEARTBEAT = "heartbeat-token-0123456789"
TELEGRAM_SECRET = "telegram-secret-0123456789"


def openapi_config(tmp_path: Path) -> Config:
    """Every kind of route configured: tokens of each reach, a schedule, a heartbeat probe, a Telegram webhook."""
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "server": {"max_body_bytes": 65536, "secret_key": "openapi-test-secret-key-0123456789"},
        "page": {"cache_s": 0},
        "components": {"api": {"name": "API"}, "web": {"name": "Website", "group": "Public"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}, "hooks": {"type": "webhook"},
                      "tg": {"type": "telegram", "bot_token": "123456:ABC-DEF1234ghIkl", "api_url": "http://127.0.0.1:9", "poll_timeout_s": 0,
                             "webhook_secret": TELEGRAM_SECRET}},
        "people": {"ann": {"name": "Ann", "contacts": {"mail": "ann@example.com"}}},
        "schedules": {"primary": {"layers": [{"participants": ["ann"], "start": "2020-01-01T00:00"}]}},
        "escalation_policies": {"default": {"levels": [{"targets": ["schedule:primary"]}]}},
        "incidents": {"escalation_policy": "default"},
        "probes": {"cron": {"type": "heartbeat", "component": "api", "token": HEARTBEAT, "interval_s": 3600}},
        "reports": {"detector_process": False},
        "tokens": {
            "support": {"name": "Dana from Support", "secret": SUPPORT, "person": "ann",
                        "scopes": ["incidents:write", "components:write", "subscribers:write", "reports:write"]},
            "reader": {"name": "Read only", "secret": READER, "scopes": ["incidents:read"]},
            "admin": {"name": "Admin", "secret": ADMIN, "scopes": ["admin"]},
        },
    }, {})


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The document's operation for `method` on the route template `path`."""
    return document["paths"][path][method.lower()]


def check_answer(document: dict[str, Any], method: str, path: str, status: int, content_type: str | None,
                 body: Any) -> None:
    """An answer must have a documented status and content type, and a JSON body must match its schema.

    `content_type` None is an empty body, which any documented answer may have.
    """
    responses = operation(document, method, path)["responses"]
    assert str(status) in responses, f"{method} {path}: {status} is not documented (has {sorted(responses)})"
    content = responses[str(status)].get("content")
    if content is None or content_type is None:
        return
    assert content_type in content, f"{method} {path} {status}: {content_type} is not documented"
    if content_type != "application/json":
        return
    # The response schema with the document as its root, so `#/components/schemas/...` resolves.
    schema = {"components": document["components"], **content[content_type]["schema"]}
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(body)
