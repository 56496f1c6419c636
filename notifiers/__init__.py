"""Notifier plugins: one module per channel, each a `<Kind>Config` and a `<Kind>Notifier`.

Built-in kinds are registered exactly like third-party ones, through `builtin_kinds()`.
"""

from __future__ import annotations

from notifiers.base import NotifierKind


def builtin_kinds() -> dict[str, NotifierKind]:
    """The notifier kinds shipped with statusd, by config `type`."""
    from notifiers import email, telegram, webhook

    return {
        "email": NotifierKind(email.EmailConfig, email.EmailNotifier),
        "telegram": NotifierKind(telegram.TelegramConfig, telegram.TelegramNotifier),
        "webhook": NotifierKind(webhook.WebhookConfig, webhook.WebhookNotifier),
    }
