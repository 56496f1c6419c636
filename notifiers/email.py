"""E-mail notifier: sends each message over SMTP (plain, STARTTLS or implicit TLS) with aiosmtplib.

Each delivery gets a Message-ID derived from its idempotency key and the installation's id, so a
re-sent message carries the same Message-ID and mail clients and archives can recognise it as a
duplicate, while another installation (or this one after a database reset) never reuses it.
The key itself travels in the `X-Statusd-Delivery` header.

SMTP answers are classified by their code: 4xx (try later) is retried, 5xx is permanent;
either is a `rejected` failure. Timeouts and connection failures are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal

import aiohttp
import aiosmtplib

from notifiers.base import DeliveryError, NotifierSettings, SendFailure
from statusd.core.clock import Clock, SystemClock
from statusd.core.model import Rendered
from statusd.core.schema import Problems, Secret, positive

DELIVERY_HEADER = "X-Statusd-Delivery"

# One mailbox, no display name, no list: what a contact address or envelope address may be.
# No control characters either: SMTP refuses them in RCPT TO, so such an address could never be delivered to.
_ADDRESS = re.compile(r"[^@\s<>(),;:\"\[\]\\\x00-\x1f\x7f]+@[^@\s<>(),;:\"\[\]\\\x00-\x1f\x7f]+")


def is_address(value: str) -> bool:
    """Whether `value` is a single bare e-mail address (`local@domain`)."""
    return _ADDRESS.fullmatch(value) is not None


@dataclass(frozen=True, kw_only=True)
class EmailConfig(NotifierSettings):
    """An SMTP channel; recipients are e-mail addresses. `timeout_s` bounds a whole delivery."""

    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["plain", "starttls", "ssl"] = "plain"
    username: str | None = None
    password: Secret | None = None
    from_addr: str = "statusd@localhost"
    timeout_s: float = 15.0
    validate_certs: bool = True

    def check(self) -> Problems:
        problems = positive(self.timeout_s, "timeout_s")
        if not 1 <= self.port <= 65535:
            problems.append(("port", "must be between 1 and 65535"))
        if not self.host:
            problems.append(("host", "must not be empty"))
        if self.password is not None and self.username is None:
            problems.append(("password", "needs a username; set username or remove password"))
        if self.username is not None and self.password is None:
            problems.append(("username", "needs a password; set password or remove username"))
        if not is_address(parseaddr(self.from_addr)[1]) or any(c in self.from_addr for c in "\r\n"):
            problems.append(("from_addr", "expected an e-mail address such as 'status@example.com' "
                                          "or 'Status <status@example.com>'"))
        return problems

    def check_recipient(self, recipient: str) -> str | None:
        """Why `recipient` cannot receive mail from this notifier, or None when it can."""
        return None if is_address(recipient) else "expected a single e-mail address such as 'ann@example.com'"


class EmailNotifier:
    """Delivers a message as one e-mail to one recipient address."""

    def __init__(self, config: EmailConfig, http: aiohttp.ClientSession, *, clock: Clock | None = None) -> None:
        # `http` is unused; every notifier kind is built with the same arguments.
        self.name = config.name
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._sender = parseaddr(config.from_addr)[1]
        # Mixed into every Message-ID: the delivery key alone repeats across installations and after a database
        # reset, and mail providers drop a second, different message under an id they have seen. The composition
        # root sets the store's random installation id once the store is open.
        self.installation_id = ""

    def build(self, recipient: str, message: Rendered, *, key: str) -> EmailMessage:
        """The e-mail that `send` would deliver; the same key always yields the same Message-ID."""
        if not is_address(recipient):
            raise DeliveryError("email recipient must be a single address such as 'ops@example.com'",
                                retryable=False, reason="invalid")
        domain = self._sender.rpartition("@")[2]
        mail = EmailMessage()
        mail["From"] = self._config.from_addr
        mail["To"] = recipient
        # Templates often end a subject with a newline; a header cannot hold one.
        mail["Subject"] = " ".join(message.subject.split())
        mail["Date"] = format_datetime(self._clock.now())
        mail["Message-ID"] = f"<{self.message_id_hash(key)}.statusd@{domain}>"
        mail[DELIVERY_HEADER] = key
        mail.set_content(message.text)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def message_id_hash(self, key: str) -> str:
        """The local part of the Message-ID: the same for every retry of one delivery, new per installation."""
        return hashlib.sha256(f"{self.installation_id}\0{key}".encode()).hexdigest()[:32]

    async def send(self, recipient: str, message: Rendered, *, key: str) -> None:
        """Send `message` to the address `recipient`; raises DeliveryError unless the server accepted it."""
        try:
            mail = self.build(recipient, message, key=key)
        except ValueError as exc:  # a header value the email package refuses, e.g. a key with a newline
            raise DeliveryError(f"email message could not be built: {exc}", retryable=False, reason="invalid") from None
        cfg = self._config
        where = f"smtp {cfg.host}:{cfg.port}"
        password = cfg.password.reveal() if cfg.password is not None else None
        try:
            # aiosmtplib's timeout is per step; the outer one bounds a server that answers slowly forever.
            async with asyncio.timeout(cfg.timeout_s):
                await aiosmtplib.send(
                    mail,
                    sender=self._sender,
                    recipients=[recipient],
                    hostname=cfg.host,
                    port=cfg.port,
                    username=cfg.username,
                    password=password,
                    use_tls=cfg.security == "ssl",
                    start_tls=cfg.security == "starttls",
                    timeout=cfg.timeout_s,
                    validate_certs=cfg.validate_certs,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
            answers = "; ".join(f"{r.code} {r.message}" for r in refused)
            retryable = all(400 <= r.code < 500 for r in refused)
            raise _error(f"{where} refused {recipient}: {answers}", password, retryable, "rejected") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _error(f"{where} answered {exc.code} {exc.message}", password, 400 <= exc.code < 500,
                         "rejected") from None
        except (TimeoutError, aiosmtplib.SMTPTimeoutError):
            raise DeliveryError(f"{where}: no answer within {cfg.timeout_s:g}s", retryable=True,
                                reason="timeout") from None
        except aiosmtplib.SMTPNotSupported as exc:  # e.g. no STARTTLS or AUTH: fixed by config, not by waiting
            raise _error(f"{where}: {exc.message}", password, False, "rejected") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _error(f"{where}: {_describe(exc)}", password, True, "connect") from None


def _describe(exc: aiosmtplib.SMTPException | OSError) -> str:
    if isinstance(exc, aiosmtplib.SMTPException):
        return exc.message
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _error(text: str, password: str | None, retryable: bool, reason: SendFailure) -> DeliveryError:
    # Servers may echo what they were sent; the password must not reach logs or the outbox.
    if password:
        text = text.replace(password, "***")
    return DeliveryError(text, retryable=retryable, reason=reason)
