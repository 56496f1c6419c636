"""The composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from zoneinfo import ZoneInfo

import notifiers as notifier_plugins
import probes as probe_plugins
from statusd.api import Token, WriteApi, json_errors
from statusd.config import Config
from statusd.coordinator import Coordinator, PageInfo, Policy
from statusd.core.clock import Clock, SystemClock
from statusd.core.model import Component, Person
from statusd.metrics import Metrics
from statusd.monitor import Monitor
from statusd.oncall import Rotation
from statusd.outbox import OutboxWorker, RetryPolicy
from statusd.store.sqlite import SqliteStore
from statusd.template import Templates
from status_page import StatusPage

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one running statusd holds; reachable from the app as `app[RUNTIME]`."""

    config: Config
    clock: Clock
    store: SqliteStore
    metrics: Metrics
    http: aiohttp.ClientSession | None = None
    coordinator: Coordinator | None = None
    monitor: Monitor | None = None
    worker: OutboxWorker | None = None
    page: StatusPage | None = None
    notifiers: dict[str, Any] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


def rotation_from(config: Config) -> Rotation:
    """The on-call rotation described by `[oncall]`."""
    oc = config.oncall
    return Rotation(participants=tuple(oc.participants), shift=timedelta(hours=oc.shift_h),
                    start=datetime.fromisoformat(oc.start).replace(tzinfo=None), tz=ZoneInfo(oc.timezone))


def people_from(config: Config) -> dict[str, Person]:
    return {pid: Person(id=pid, name=p.name, contacts=dict(p.contacts)) for pid, p in config.people.items()}


def components_from(config: Config) -> list[Component]:
    return [Component(id=cid, name=c.name, description=c.description, group=c.group, position=i)
            for i, (cid, c) in enumerate(config.components.items())]


def build_app(config: Config, *, clock: Clock | None = None, run_probes: bool = True,
              run_worker: bool = True) -> web.Application:
    """The whole statusd as an aiohttp application; resources live in its cleanup context."""
    clock = clock or SystemClock()
    app = web.Application(middlewares=[json_errors], client_max_size=config.server.max_body_bytes)
    runtime = Runtime(config=config, clock=clock, store=SqliteStore(config.store_path),
                      metrics=Metrics(CollectorRegistry(auto_describe=True)))
    app[RUNTIME] = runtime

    page_info = PageInfo(title=config.page.title, url=config.server.base_url)
    runtime.page = StatusPage(runtime.store, config, clock)
    policy = Policy(on_recovery=config.incidents.on_recovery,
                    notify_subscribers_on_open=config.incidents.notify_subscribers_on_open,
                    opened_message=config.incidents.opened_message,
                    resolved_message=config.incidents.resolved_message)
    page = runtime.page

    def changed() -> None:
        page.invalidate()
        if runtime.worker is not None:
            runtime.worker.wake()

    runtime.coordinator = Coordinator(runtime.store, clock, rotation=rotation_from(config), people=people_from(config),
                                      page=page_info, policy=policy, on_change=changed, observer=runtime.metrics)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await runtime.store.open()
        async with runtime.store.transaction() as tx:
            await tx.components.sync(components_from(config), clock.now())
        runtime.http = aiohttp.ClientSession(headers={"User-Agent": "statusd"})
        notifier_kinds = notifier_plugins.builtin_kinds()
        runtime.notifiers = {name: notifier_kinds[cfg.type].notifier(cfg, runtime.http)
                             for name, cfg in config.notifiers.items()}
        nc = config.notifications
        runtime.worker = OutboxWorker(
            runtime.store, runtime.notifiers, Templates(nc.templates_dir), clock,
            retry=RetryPolicy(max_attempts=nc.max_attempts, initial_s=nc.backoff_initial_s, max_s=nc.backoff_max_s),
            lease_s=nc.lease_s, batch_size=nc.batch_size, concurrency=nc.concurrency, observer=runtime.metrics,
        )
        probe_kinds = probe_plugins.builtin_kinds()
        probes = {name: probe_kinds[cfg.type].probe(cfg, runtime.http) for name, cfg in config.probes.items()}
        assert runtime.coordinator is not None
        runtime.monitor = Monitor(runtime.store, runtime.coordinator, clock, probes, config.probes,
                                  observer=runtime.metrics)
        await runtime.monitor.restore()
        if run_worker:
            runtime.tasks.append(asyncio.create_task(runtime.worker.run(), name="outbox-worker"))
        if run_probes:
            runtime.monitor.start()
        try:
            yield
        finally:
            await runtime.monitor.stop()
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            runtime.tasks.clear()
            await runtime.http.close()
            await runtime.store.close()

    app.cleanup_ctx.append(lifecycle)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        await runtime.metrics.refresh(runtime.store)
        return web.Response(body=runtime.metrics.exposition(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    WriteApi(runtime.store, runtime.coordinator, _tokens(config), config.notifiers).add_routes(app)
    page.add_routes(app)
    return app


def _tokens(config: Config) -> dict[str, Token]:
    return {tid: Token(id=tid, name=t.name, secret=t.secret.reveal(), scopes=frozenset(t.scopes))
            for tid, t in config.tokens.items()}
