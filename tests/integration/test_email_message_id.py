"""E-mail Message-IDs: stable across retries of one delivery, never repeated by another installation."""

from __future__ import annotations

import aiohttp

from notifiers.email import EmailConfig, EmailNotifier
from statusd.app import RUNTIME, build_app
from statusd.config import parse_config
from statusd.core.model import Rendered
from statusd.store.postgres import PostgresStore
from statusd.store.sqlite import SqliteStore
from tests.support.fakes import SmtpSink
from tests.support.postgres import fresh_postgres_database

MESSAGE = Rendered(subject="API down", text="The API is down.\n")
KEY = "alert:1:ann:mail"  # what a fresh database's first incident pages with, on every installation


async def installation_id(store: SqliteStore | PostgresStore) -> str:
    await store.open()
    try:
        return store.installation_id
    finally:
        await store.close()


async def test_each_database_has_its_own_installation_id_kept_across_restarts(tmp_path, postgres_server) -> None:
    first = await installation_id(SqliteStore(tmp_path / "a.db"))
    assert first == await installation_id(SqliteStore(tmp_path / "a.db"))  # a restart keeps it
    reset = await installation_id(SqliteStore(tmp_path / "b.db"))
    async with fresh_postgres_database(postgres_server) as dsn:
        moved = await installation_id(PostgresStore(dsn))
        assert moved == await installation_id(PostgresStore(dsn))
    assert len({first, reset, moved}) == 3 and all(len(i) == 32 for i in (first, reset, moved))


async def test_same_delivery_key_on_two_installations_gets_two_message_ids(tmp_path) -> None:
    sink = SmtpSink().start()
    try:
        config = EmailConfig(name="mail", type="email", host="127.0.0.1", port=sink.port)
        async with aiohttp.ClientSession() as http:
            for db in ("a.db", "a.db", "b.db"):  # a retry on one installation, then the same key on another
                notifier = EmailNotifier(config, http)
                notifier.installation_id = await installation_id(SqliteStore(tmp_path / db))
                await notifier.send("ann@example.com", MESSAGE, key=KEY)
    finally:
        sink.stop()
    ids = [message["Message-ID"] for _, _, message in sink.messages]
    assert len(ids) == 3
    assert ids[0] == ids[1]  # a retry of one delivery: mail clients recognise the duplicate
    assert ids[2] != ids[0]  # another installation: a different message, a different id
    assert all(message["X-Statusd-Delivery"] == KEY for _, _, message in sink.messages)


async def test_the_server_gives_its_email_notifiers_the_store_installation_id(tmp_path, aiohttp_client) -> None:
    config = parse_config({"store": {"path": str(tmp_path / "statusd.db")}, "components": {"api": {"name": "API"}},
                           "notifiers": {"mail": {"type": "email", "port": 2525}}}, {})
    client = await aiohttp_client(build_app(config, run_probes=False, run_worker=False))
    runtime = client.app[RUNTIME]
    notifier = runtime.notifiers["mail"]
    assert isinstance(notifier, EmailNotifier)
    assert runtime.store.installation_id  # type: ignore[attr-defined]
    assert notifier.installation_id == runtime.store.installation_id  # type: ignore[attr-defined]
