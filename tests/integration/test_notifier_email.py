"""The e-mail notifier against real aiosmtpd servers on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session, SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifiers.base import DeliveryError
from notifiers.email import EmailConfig, EmailNotifier
from statusd.core.clock import FakeClock
from statusd.core.errors import NotifyError
from statusd.core.model import Rendered
from statusd.core.schema import Problems, Secret, load_section

PASSWORD = "smtp-pa55word-77"
MESSAGE = Rendered(subject="API down\n", text="The API is down.\n", html="<p>The API is <b>down</b>.</p>\n")
PLAIN = Rendered(subject="Resolved", text="All good.\n")


@dataclass
class Collector:
    """An aiosmtpd handler that keeps every envelope, or refuses recipients with `rcpt_answer`."""

    rcpt_answer: str | None = None
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[bytes | None] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_answer is not None:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.logins.append(session.login_data)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content or b"", policy=policy.default)  # type: ignore[misc]
                for e in self.envelopes]


def crlf_to_lf(text: str) -> str:
    """Body text as sent: SMTP carries lines with CRLF endings."""
    return text.replace("\r\n", "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[Collector, int]]]:
    """Starts aiosmtpd controllers on free loopback ports; stops them all afterwards."""
    controllers: list[Controller] = []

    def start(handler: Collector | None = None, **kwargs: Any) -> tuple[Collector, int]:
        handler = handler or Collector()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def notifier(http: aiohttp.ClientSession, port: int, **settings: Any) -> EmailNotifier:
    config = EmailConfig(name="mail", type="email", host="127.0.0.1", port=port, **settings)
    return EmailNotifier(config, http, clock=FakeClock())


def closed_port() -> int:
    return free_port()


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    """No secret may reach an error message: they end up in logs and in the outbox."""
    for secret in secrets:
        assert secret not in str(exc)
        assert secret not in repr(exc)


async def test_plain_delivery_with_text_and_html(smtp_server: Callable[..., tuple[Collector, int]],
                                                  http: aiohttp.ClientSession) -> None:
    collector, port = smtp_server()
    mail = notifier(http, port, from_addr="Status <status@example.com>")

    await mail.send("ops@example.com", MESSAGE, key="incident-7/update-2/mail/ops")

    [envelope] = collector.envelopes
    assert envelope.mail_from == "status@example.com"
    assert envelope.rcpt_tos == ["ops@example.com"]
    [msg] = collector.messages()
    assert msg["To"] == "ops@example.com"
    assert msg["From"] == "Status <status@example.com>"
    assert msg["Subject"] == "API down"
    assert msg["X-Statusd-Delivery"] == "incident-7/update-2/mail/ops"
    assert msg["Message-ID"].endswith("@example.com>")
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    assert crlf_to_lf(text.get_content()) == MESSAGE.text
    assert crlf_to_lf(html.get_content()) == MESSAGE.html


async def test_message_id_is_stable_for_a_key_and_differs_between_keys(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession) -> None:
    collector, port = smtp_server()
    mail = notifier(http, port)

    await mail.send("ops@example.com", PLAIN, key="a")
    await mail.send("ops@example.com", PLAIN, key="a")
    await mail.send("ops@example.com", PLAIN, key="b")

    first, again, other = (m["Message-ID"] for m in collector.messages())
    assert first == again
    assert first != other


async def test_text_only_message_is_not_multipart(smtp_server: Callable[..., tuple[Collector, int]],
                                                  http: aiohttp.ClientSession) -> None:
    collector, port = smtp_server()

    await notifier(http, port).send("ops@example.com", PLAIN, key="k")

    [msg] = collector.messages()
    assert msg.get_content_type() == "text/plain"
    assert crlf_to_lf(msg.get_content()) == PLAIN.text


async def test_starttls_delivery_with_a_self_signed_certificate(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession,
        server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls, require_starttls=True)

    await notifier(http, port, security="starttls", validate_certs=False).send("ops@example.com", MESSAGE, key="k")

    [msg] = collector.messages()
    assert msg["Subject"] == "API down"


async def test_starttls_refuses_an_untrusted_certificate_when_validating(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession,
        server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls, require_starttls=True)

    with pytest.raises(NotifyError):
        await notifier(http, port, security="starttls", timeout_s=5).send("ops@example.com", MESSAGE, key="k")

    assert collector.envelopes == []


async def test_plain_security_does_not_reach_a_server_that_requires_starttls(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession,
        server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls, require_starttls=True)

    with pytest.raises(DeliveryError) as caught:
        await notifier(http, port, security="plain").send("ops@example.com", MESSAGE, key="k")

    assert caught.value.retryable is False and caught.value.reason == "rejected"
    assert collector.envelopes == []


async def test_implicit_tls_delivery(smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession,
                                     server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(ssl_context=server_tls)

    await notifier(http, port, security="ssl", validate_certs=False).send("ops@example.com", MESSAGE, key="k")

    [msg] = collector.messages()
    assert msg["To"] == "ops@example.com"


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"statusd" and auth_data.password == PASSWORD.encode()
    # handled=False: aiosmtpd itself answers 535 on failure.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


async def test_auth_with_username_and_password(smtp_server: Callable[..., tuple[Collector, int]],
                                               http: aiohttp.ClientSession) -> None:
    collector, port = smtp_server(authenticator=authenticator, auth_require_tls=False)

    await notifier(http, port, username="statusd", password=Secret(PASSWORD)).send("ops@example.com", PLAIN, key="k")

    assert collector.logins == [b"statusd"]


async def test_failed_auth_is_permanent_and_never_shows_the_password(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession) -> None:
    collector, port = smtp_server(authenticator=authenticator, auth_require_tls=False)
    wrong = "wrong-" + PASSWORD

    with pytest.raises(DeliveryError) as caught:
        await notifier(http, port, username="statusd", password=Secret(wrong)).send("ops@example.com", PLAIN, key="k")

    assert caught.value.retryable is False and caught.value.reason == "rejected"
    assert "535" in str(caught.value)
    assert_no_secret(caught.value, wrong, PASSWORD)
    assert collector.envelopes == []


@pytest.mark.parametrize(("answer", "retryable"), [
    pytest.param("550 no such user", False, id="550-no-such-user"),
    pytest.param("553 mailbox name not allowed", False, id="553-not-allowed"),
    pytest.param("451 try later", True, id="451-try-later"),
    pytest.param("452 mailbox full", True, id="452-mailbox-full"),
])
async def test_refused_recipient_is_classified_by_smtp_code(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession,
        answer: str, retryable: bool) -> None:
    _, port = smtp_server(Collector(rcpt_answer=answer), authenticator=authenticator, auth_require_tls=False)

    with pytest.raises(DeliveryError) as caught:
        await notifier(http, port, username="statusd", password=Secret(PASSWORD)).send("ops@example.com", PLAIN, key="k")

    assert caught.value.retryable is retryable and caught.value.reason == "rejected"
    assert answer in str(caught.value)
    assert_no_secret(caught.value, PASSWORD)


async def test_closed_port_is_retryable(http: aiohttp.ClientSession) -> None:
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, closed_port(), username="statusd", password=Secret(PASSWORD)).send(
            "ops@example.com", PLAIN, key="k")

    assert caught.value.retryable is True and caught.value.reason == "connect"
    assert_no_secret(caught.value, PASSWORD)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_that_never_answers_is_retryable(silent_server: int, http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, silent_server, timeout_s=0.2, username="statusd", password=Secret(PASSWORD)).send(
            "ops@example.com", PLAIN, key="k")

    assert caught.value.retryable is True and caught.value.reason == "timeout"
    assert loop.time() - started < 2
    assert_no_secret(caught.value, PASSWORD)


async def test_cancellation_propagates(silent_server: int, http: aiohttp.ClientSession) -> None:
    task = asyncio.create_task(notifier(http, silent_server, timeout_s=30).send("ops@example.com", PLAIN, key="k"))
    await asyncio.sleep(0.05)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("recipient", [
    pytest.param("not-an-address", id="no-at"),
    pytest.param("Ops <ops@example.com>", id="display-name"),
    pytest.param("a@example.com, b@example.com", id="two-addresses"),
    pytest.param("ops@example.com\r\nBcc: x@example.com", id="header-injection"),
    pytest.param("", id="empty"),
])
async def test_a_recipient_that_is_not_an_address_is_not_retryable(
        smtp_server: Callable[..., tuple[Collector, int]], http: aiohttp.ClientSession, recipient: str) -> None:
    collector, port = smtp_server()

    with pytest.raises(DeliveryError) as caught:
        await notifier(http, port).send(recipient, PLAIN, key="k")

    assert caught.value.retryable is False and caught.value.reason == "invalid"
    assert collector.envelopes == []


def test_password_stays_out_of_repr() -> None:
    config = EmailConfig(name="mail", type="email", username="statusd", password=Secret(PASSWORD))

    assert PASSWORD not in repr(config)


def load(table: dict[str, object]) -> tuple[EmailConfig | None, Problems]:
    problems: Problems = []
    config = load_section(EmailConfig, {"type": "email", **table}, "notifiers.mail", problems, extra={"name": "mail"})
    return (None if problems else config), problems


def test_config_loads_from_a_table() -> None:
    config, problems = load({"host": "smtp.example.com", "port": 465, "security": "ssl", "username": "u",
                             "password": PASSWORD, "from_addr": "Status <status@example.com>"})

    assert problems == []
    assert config is not None and config.password == Secret(PASSWORD) and config.security == "ssl"


@pytest.mark.parametrize(("table", "expected"), [
    pytest.param({"port": 0}, [("notifiers.mail.port", "must be between 1 and 65535")], id="port-zero"),
    pytest.param({"port": 70000}, [("notifiers.mail.port", "must be between 1 and 65535")], id="port-too-big"),
    pytest.param({"timeout_s": 0}, [("notifiers.mail.timeout_s", "must be greater than 0")], id="zero-timeout"),
    pytest.param({"password": "p"}, [("notifiers.mail.password", "needs a username; set username or remove password")],
                 id="password-without-username"),
    pytest.param({"username": "u"}, [("notifiers.mail.username", "needs a password; set password or remove username")],
                 id="username-without-password"),
    pytest.param({"from_addr": "statusd"}, [("notifiers.mail.from_addr", "expected an e-mail address such as "
                                             "'status@example.com' or 'Status <status@example.com>'")],
                 id="from-without-at"),
    pytest.param({"security": "tls"}, [("notifiers.mail.security", "expected one of 'plain', 'starttls', 'ssl', got 'tls'")],
                 id="unknown-security"),
])
def test_config_problems(table: dict[str, object], expected: Problems) -> None:
    assert load(table)[1] == expected
