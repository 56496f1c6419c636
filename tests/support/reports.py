"""Customer reports for tests: an app config with report intake, its tokens, request builders and a history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statusd.config import Config, parse_config

TOKEN = "helpdesk-token-0123456789"
SUPPORT = "support-token-0123456789a"


def config(tmp_path: Path, **reports: Any) -> Config:
    """A whole-app config on SQLite in `tmp_path`: two components, a mail notifier, a helpdesk and a support token.

    `reports` overrides the [reports] settings (five clients make a surge by default).
    """
    return parse_config({
        "store": {"path": str(tmp_path / "statusd.db")},
        "page": {"cache_s": 0},
        "components": {"payments": {"name": "Card payments"}, "web": {"name": "Website"}},
        "notifiers": {"mail": {"type": "email", "port": 2525}},
        "reports": {"min_clients": 5, "form_notifier": "mail", "form_rate_per_min": 3, **reports},
        "tokens": {"helpdesk": {"name": "Helpdesk", "secret": TOKEN, "scopes": ["reports:write"]},
                   "support": {"name": "Support", "secret": SUPPORT, "scopes": ["incidents:write"]}},
    }, {})


def auth(token: str = TOKEN) -> dict[str, str]:
    """The Authorization header for `token` (the helpdesk's by default)."""
    return {"Authorization": f"Bearer {token}"}


def report(i: int, text: str = "card payment declined at checkout", **extra: Any) -> dict[str, Any]:
    """Client `i`'s report as the API takes it, with a mail contact; `extra` adds or replaces fields."""
    return {"client_id": f"client-{i}", "text": f"{text} ({i})", "channel": "chat",
            "contact": {"notifier": "mail", "address": f"client{i}@example.com"}, **extra}


def paraphrase_history_csv() -> str:
    """A labelled help-desk history: each category worded in ways that share few letters."""
    kinds = {"refund": ["I want a refund", "please refund my order", "I want my money back",
                        "give me my money back", "refund not received", "return my money"],
             "delivery": ["where is my parcel", "courier never came", "package is late", "the parcel has not arrived",
                          "my delivery is late", "the package never arrived"]}
    body = [f"{t},{k}" for k, texts in kinds.items() for t in texts]
    return "\n".join(["text,label", *body * 3]) + "\n"
