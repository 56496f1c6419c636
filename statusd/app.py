"""The composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

import notifiers as notifier_plugins
import probes as probe_plugins
from notifiers.email import EmailNotifier
from notifiers.guard import OutsiderTargets, guarded_connector
from notifiers.telegram import CallbackQuery, TelegramCallbacks, parse_button
from statusd.alerts.intake import AlertIntake
from statusd.api.routes import WriteApi
from statusd.api.telegram import TelegramWebhook
from statusd.config import Config, ScheduleConfig
from statusd.incidents.coordinator import Coordinator, PageInfo, Policy
from statusd.incidents.escalation import EscalationPolicy, Fallback, Level
from statusd.incidents.lifecycle import Event
from statusd.core.addresses import AddressPolicy
from statusd.core.clock import Clock, SystemClock
from statusd.core.errors import Conflict, NotFound
from statusd.core.model import Component, Person
from statusd.core.protocols import Store
from statusd.oncall.notices import ShiftNotices
from statusd.reports.form import ReportForm
from statusd.reports.http import ReportApi
from statusd.reports.pipeline import ReportPipeline
from statusd.web.application import web_application
from statusd.web.auth import Token
from statusd.web.errors import error_response
from statusd.web.signing import Signer
from statusd.metrics import Metrics
from statusd.monitor.scheduler import Monitor
from statusd.oncall.schedule import WEEKDAYS, Layer, Override, Restriction, Rotation, Schedule
from statusd.notify.audience import Audience
from statusd.notify.outbox import OutboxWorker, RetryPolicy
from statusd.reports.host import InlineDetector, ProcessDetector
from statusd.reports.spec import DetectorSpec
from statusd.reports.validation import IntakeLimits, ReportValidator
from statusd.store.sqlite import SqliteStore
from statusd.notify.templates import Templates
from statusd.incidents.timers import TimerWorker
from status_page import StatusPage

if TYPE_CHECKING:
    from statusd.store.postgres import PostgresStore  # the optional postgres extra

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one running statusd holds; reachable from the app as `app[RUNTIME]`."""

    config: Config
    clock: Clock
    store: Store
    metrics: Metrics
    coordinator: Coordinator
    schedules: dict[str, Schedule]
    http: aiohttp.ClientSession | None = None
    outsider_http: aiohttp.ClientSession | None = None  # for outsiders' targets: refuses non-public addresses
    monitor: Monitor | None = None
    worker: OutboxWorker | None = None
    timers: TimerWorker | None = None
    page: StatusPage | None = None
    intake: ReportPipeline | None = None
    notifiers: dict[str, Any] = field(default_factory=dict)
    telegram: dict[str, TelegramCallbacks] = field(default_factory=dict)  # button presses, by notifier name
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


def schedule_from(name: str, cfg: ScheduleConfig) -> Schedule:
    """A Schedule from its config section (validated already)."""
    tz = ZoneInfo(cfg.timezone)
    layers = tuple(
        Layer(name=layer.name or f"layer {i + 1}",
              rotation=Rotation(tuple(layer.participants), timedelta(hours=layer.shift_h),
                                datetime.fromisoformat(layer.start), tz),
              restrictions=tuple(Restriction(frozenset(WEEKDAYS.index(d) for d in r.days), time.fromisoformat(r.start),
                                             time.fromisoformat(r.end)) for r in layer.restrictions))
        for i, layer in enumerate(cfg.layers))
    overrides = tuple(Override(o.person, datetime.fromisoformat(o.start).replace(tzinfo=tz).astimezone(ZoneInfo("UTC")),
                               datetime.fromisoformat(o.end).replace(tzinfo=tz).astimezone(ZoneInfo("UTC")))
                      for o in cfg.overrides)
    return Schedule(name=name, tz=tz, layers=layers, overrides=overrides)


def schedules_from(config: Config) -> dict[str, Schedule]:
    return {name: schedule_from(name, cfg) for name, cfg in config.schedules.items()}


def escalation_policies_from(config: Config) -> dict[str, EscalationPolicy]:
    """The configured escalation policies, typed; an incident snapshots one when it opens."""
    return {name: EscalationPolicy(
                levels=tuple(Level(tuple(level.targets), level.ack_timeout_s) for level in p.levels), repeat=p.repeat,
                fallback=None if p.fallback is None else Fallback(p.fallback.notifier, p.fallback.address))
            for name, p in config.escalation_policies.items()}


def telegram_acknowledger(coordinator: Coordinator, notifier: str) -> Callable[[CallbackQuery], Awaitable[str]]:
    """What an Acknowledge button press does: find the person by their chat id on `notifier`, then acknowledge."""
    async def on_callback(query: CallbackQuery) -> str:
        button = parse_button(query.data)
        if button is None or button[0] != "ack":
            return "Unknown action"
        _, incident_id, cycle = button
        person = next((p for p in coordinator.people.values()
                       if p.contacts.get(notifier) in (query.chat_id, query.from_user_id)), None)
        if person is None:
            return "This chat is not a contact of anyone on call in statusd"
        try:
            _, event = await coordinator.acknowledge_or_accept(incident_id, by=person.name, person=person.id,
                                                               cycle=cycle)
        except (Conflict, NotFound) as exc:
            return f"Nothing to do: {exc}"
        if event is Event.ACCEPT:
            return f"Handoff accepted: you own #{incident_id} now"
        return f"Acknowledged #{incident_id}: you own it now"

    return on_callback


def people_from(config: Config) -> dict[str, Person]:
    return {pid: Person(id=pid, name=p.name, contacts=dict(p.contacts)) for pid, p in config.people.items()}


def operator_recipients(config: Config) -> set[tuple[str, str]]:
    """Every (notifier, address) config names: people's contacts and escalation fallbacks, trusted as they are."""
    recipients = {(notifier, address) for p in config.people.values() for notifier, address in p.contacts.items()}
    recipients |= {(p.fallback.notifier, p.fallback.address) for p in config.escalation_policies.values()
                   if p.fallback is not None}
    return recipients


def components_from(config: Config) -> list[Component]:
    return [Component(id=cid, name=c.name, description=c.description, group=c.group, position=i)
            for i, (cid, c) in enumerate(config.components.items())]


def policy_from(config: Config) -> Policy:
    ic = config.incidents
    return Policy(on_recovery=ic.on_recovery, notify_subscribers_on_open=ic.notify_subscribers_on_open,
                  opened_message=ic.opened_message, resolved_message=ic.resolved_message,
                  escalation_policy=ic.escalation_policy, reopen_window_s=ic.reopen_window_s,
                  update_reminder_s=dict(ic.update_reminder_s), handoff_ack_timeout_s=ic.handoff_ack_timeout_s,
                  group_window_s=ic.group_window_s)


def make_store(config: Config) -> SqliteStore | PostgresStore:
    """PostgreSQL when `store.url` is set, else SQLite at `store.path` (not opened yet)."""
    if config.store.url is not None:
        from statusd.store.postgres import PostgresStore  # the optional postgres extra

        return PostgresStore(config.store.url.reveal())
    return SqliteStore(config.store_path)


def build_app(config: Config, *, clock: Clock | None = None, run_probes: bool = True,
              run_worker: bool = True) -> web.Application:
    """The whole statusd as an aiohttp application; resources live in its cleanup context."""
    clock = clock or SystemClock()
    app = web_application(config.server.max_body_bytes)
    store = make_store(config)
    schedules = schedules_from(config)
    metrics = Metrics(CollectorRegistry(auto_describe=True), clock=clock,
                      reminder_s=config.incidents.update_reminder_s, schedules=schedules)
    people = people_from(config)
    signer = Signer(config.server.secret_key.reveal()) if config.server.secret_key else None
    page = StatusPage(store, config, clock)
    address_policy = AddressPolicy.from_cidrs(config.notifications.allow_private_targets)
    # Subscribers' and reports' targets are outsiders': vetted against the address policy before they are stored.
    outsider_targets = {name: OutsiderTargets(cfg, address_policy) for name, cfg in config.notifiers.items()}

    def changed() -> None:
        page.invalidate()
        metrics.stale()
        for worker in (runtime.worker, runtime.timers):
            if worker is not None:
                worker.wake()

    coordinator = Coordinator(store, clock, people=people, page=PageInfo(config.page.title, config.server.base_url),
                              schedules=schedules, escalation_policies=escalation_policies_from(config),
                              policy=policy_from(config), signer=signer, on_change=changed, observer=metrics)
    runtime = Runtime(config=config, clock=clock, store=store, metrics=metrics, coordinator=coordinator,
                      schedules=schedules, page=page)
    app[RUNTIME] = runtime

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        try:
            async with store.transaction() as tx:
                await tx.components.sync(components_from(config), clock.now())
            await metrics.load(store)  # from then on the gauges follow changes (statusd.metrics)
            # No connection cap: with hundreds of hanging targets, aiohttp's default of 100 would make
            # healthy checks queue behind them (measured in bench/probes_at_scale.py).
            runtime.http = aiohttp.ClientSession(headers={"User-Agent": "statusd"},
                                                 connector=aiohttp.TCPConnector(limit=0))
            runtime.outsider_http = aiohttp.ClientSession(headers={"User-Agent": "statusd"},
                                                          connector=guarded_connector(address_policy, limit=0))
            notifier_kinds = notifier_plugins.builtin_kinds()
            runtime.notifiers = {name: notifier_kinds[cfg.type].notifier(cfg, runtime.http)
                                 for name, cfg in config.notifiers.items()}
            for notifier in runtime.notifiers.values():
                if isinstance(notifier, EmailNotifier):
                    notifier.installation_id = store.installation_id  # unique Message-IDs per installation
            audience = Audience(operator_recipients(config), {
                name: notifier_kinds[cfg.type].notifier(cfg, runtime.outsider_http)
                for name, cfg in config.notifiers.items() if getattr(cfg, "recipients_are_hosts", False)})
            nc = config.notifications
            runtime.worker = OutboxWorker(
                store, runtime.notifiers, Templates(nc.templates_dir, time_zone=config.page.time_zone), clock,
                retry=RetryPolicy(max_attempts=nc.max_attempts, initial_s=nc.backoff_initial_s, max_s=nc.backoff_max_s),
                lease_s=nc.lease_s, batch_size=nc.batch_size, concurrency=nc.concurrency, observer=metrics,
                audience=audience,
            )
            runtime.timers = TimerWorker(store, coordinator, clock)
            runtime.telegram = {name: TelegramCallbacks(cfg, runtime.http, telegram_acknowledger(coordinator, name),
                                                        clock=clock)
                                for name, cfg in config.notifiers.items() if cfg.type == "telegram"}
            notices = ShiftNotices(store, clock, schedules, {n: s.shift_notice_s for n, s in config.schedules.items()},
                                   people, config.server.base_url, wake=runtime.worker.wake)
            probe_kinds = probe_plugins.builtin_kinds()
            probes = {name: probe_kinds[cfg.type].probe(cfg, runtime.http) for name, cfg in config.probes.items()}
            runtime.monitor = Monitor(store, coordinator, clock, probes, config.probes, observer=metrics,
                                      retention=timedelta(days=config.store.probe_retention_days),
                                      component_policy={cid: c.probe_policy for cid, c in config.components.items()})
            await runtime.monitor.restore()
            if run_worker:
                # Before the server answers: the first reports would otherwise wait ~0.5 s for the detector's process.
                await intake.detector.start()
            # The detector relearns the last hours of reports in the background (half a minute and more for
            # 40,000, bench/restart.py): the status page and the API answer meanwhile, and new reports are
            # detected after that history.
            if replaying := await intake.start_rebuild(config.reports.rebuild_hours):
                log.info("report detector warming up from %d stored reports", replaying)
            if run_worker:
                jobs = [("outbox-worker", runtime.worker.run()), ("timer-worker", runtime.timers.run()),
                        ("shift-notices", notices.run())]
                jobs += [(f"telegram-{name}", callbacks.poll_forever()) for name, callbacks in runtime.telegram.items()]
                for name, job in jobs:
                    runtime.tasks.append(asyncio.create_task(job, name=name))
            if run_probes:
                runtime.monitor.start()
            yield
        finally:  # also after a failed start: an open connection or child would keep the process alive
            if runtime.monitor is not None:
                await runtime.monitor.stop()
            await intake.close()
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            runtime.tasks.clear()
            for session in (runtime.http, runtime.outsider_http):
                if session is not None:
                    await session.close()
            await store.close()

    app.cleanup_ctx.append(lifecycle)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    metrics_token = config.server.metrics_token

    async def metrics_view(request: web.Request) -> web.Response:
        if metrics_token is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), b"Bearer " + metrics_token.reveal().encode()):
            refused = error_response(401, "Authorization",
                                     "/metrics needs Authorization: Bearer <[server] metrics_token>")
            refused.headers["WWW-Authenticate"] = "Bearer"
            return refused
        return web.Response(body=await metrics.scrape(store),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    TelegramWebhook(lambda name: runtime.telegram.get(name)).add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    write_api = WriteApi(store, coordinator, _tokens(config), outsider_targets, render_page=page.simple_page,
                         schedules=schedules, signer=signer, base_url=config.server.base_url)
    write_api.add_routes(app)
    rc = config.reports
    spec = DetectorSpec.from_config(rc)
    limits = IntakeLimits(max_text_chars=rc.max_text_chars, max_batch=rc.max_batch, max_future_s=rc.max_future_s,
                          max_age_days=rc.max_age_days, form_notifier=rc.form_notifier,
                          form_rate_per_min=rc.form_rate_per_min, live_s=rc.window_s)
    component_names = {cid: c.name for cid, c in config.components.items()}
    validator = ReportValidator(clock, components=component_names, notifiers=outsider_targets, limits=limits)
    intake = ReportPipeline(
        store, coordinator, ProcessDetector(spec) if rc.detector_process else InlineDetector(spec.build),
        clock, limits=limits, rebuild_hours=rc.rebuild_hours, observer=metrics)
    ReportApi(store, validator, intake, limits).add_routes(app, write_api)
    ReportForm(validator, intake, metrics, components=component_names, limits=limits).add_routes(app, write_api)
    runtime.intake = intake
    AlertIntake(config.alerts, coordinator, clock, set(config.components)).add_routes(app)

    async def heartbeat(request: web.Request) -> web.Response:
        if runtime.monitor is None:
            raise web.HTTPServiceUnavailable()
        probe = await runtime.monitor.check_in(request.match_info["token"])
        if probe is None:
            return error_response(404, "token", "no heartbeat probe has this token")
        return web.json_response({"probe": probe, "checked_in_at": clock.now().isoformat()})

    app.router.add_route("GET", "/api/v1/heartbeat/{token}", heartbeat)
    app.router.add_route("POST", "/api/v1/heartbeat/{token}", heartbeat)
    page.add_routes(app)
    return app


def _tokens(config: Config) -> dict[str, Token]:
    return {tid: Token(id=tid, name=t.name, secret=t.secret.reveal(), scopes=frozenset(t.scopes), person=t.person)
            for tid, t in config.tokens.items()}
