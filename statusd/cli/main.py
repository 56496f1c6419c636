"""The `statusd` command: serve, check-config, migrate; replay and fit-model in their own modules."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from statusd import __version__
from statusd.app import build_app, make_store, schedules_from
from statusd.config import Config, load_config, summary
from statusd.config.summary import example_secrets, loopback_only, security_warnings
from statusd.core.errors import ConfigError
from statusd.reports.spec import DetectorSpec
from statusd.notify.templates import Templates
from statusd.web.server import AcceptFailureLog, ConnectionLimits, GuardedAppRunner, default_max_connections

log = logging.getLogger("statusd")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `statusd check-config | head -3`: the reader has gone, and that is fine
        # Python's advice: point stdout at /dev/null, or the flush at exit fails again with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="statusd", description="Incident communication and status system.")
    parser.add_argument("--version", action="version", version=f"statusd {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run probes, the notification worker and the HTTP server"),
                       ("check-config", "validate a config file and print a summary"),
                       ("migrate", "apply pending database migrations and exit")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("config", help="path to the TOML config file")
    # These two have their own options and need no config file.
    replay_help = "replay historical customer reports through report detection (statusd replay --help)"
    sub.add_parser("replay", help=replay_help, description=replay_help, add_help=False)
    fit_help = "fit a report text model on your report history for [reports] model (statusd fit-model --help)"
    sub.add_parser("fit-model", help=fit_help, description=fit_help, add_help=False)
    arguments = list(sys.argv[1:] if argv is None else argv)
    # replay and fit-model parse their own arguments: everything after the command's name is theirs,
    # whatever global options came before it.
    command = next((i for i, a in enumerate(arguments) if a in ("replay", "fit-model")), None)
    if command is not None and not any(a in ("serve", "check-config", "migrate") for a in arguments[:command]):
        args = parser.parse_args(arguments[:command + 1])
        logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # Imported here: the two load numpy and the detector, which serve, migrate and check-config never need.
        if args.command == "replay":
            from statusd.cli import replay

            return replay.main(arguments[command + 1:])
        from statusd.cli import fit_model

        return fit_model.main(arguments[command + 1:])
    args = parser.parse_args(arguments)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    try:
        config = load_config(args.config)
        if args.command == "check-config":
            problems = [("notifications.templates_dir", b) for b in Templates(config.notifications.templates_dir).check()]
            spec: DetectorSpec | None = None
            try:
                spec = DetectorSpec.from_config(config.reports)  # encoder extra, model file: as serve does
            except ConfigError as exc:
                problems += exc.problems
            if problems:
                raise ConfigError(problems)
    except ConfigError as exc:
        return _config_problems(args.config, exc)
    if args.command == "check-config":
        print(summary(config))
        print(f"  reports: encoder {config.reports.encoder}, "
              f"{f'model {spec.model!r}' if spec and spec.model else 'no fitted model'}")
        for warning in [*security_warnings(config), *coverage_warnings(config, datetime.now(UTC))]:
            print(f"  warning: {warning}")
        return 0
    if args.command == "serve" and (placeholders := example_secrets(config)) \
            and not loopback_only(config.server.host):
        # Everyone knows these values: beyond this machine they would sign ack links and open the API to anyone.
        print(f"statusd: refusing to serve on {config.server.host} ([server] host) with the example's placeholder "
              f"secrets: {', '.join(placeholders)}; set your own, or listen on 127.0.0.1 only", file=sys.stderr)
        return 2
    try:
        if args.command == "migrate":
            applied = asyncio.run(_migrate(config))
            print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
            return 0
        return asyncio.run(_serve(config))
    except ConfigError as exc:  # what only building the app finds out (e.g. a model file that is no model)
        return _config_problems(args.config, exc)
    except sqlite3.Error as exc:
        print(f"statusd: cannot use the store {config.store_path}: {exc} (store.path)", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - asyncpg's errors are no OSError; nothing else is expected here
        if config.store.url is not None and _from_postgres(exc):
            print(f"statusd: cannot use the PostgreSQL store: {exc} (store.url)", file=sys.stderr)
            return 1
        if isinstance(exc, OSError):
            print(f"statusd: cannot start: {exc}", file=sys.stderr)
            return 1
        raise


def _from_postgres(exc: BaseException) -> bool:
    """An error connecting to or using PostgreSQL: refused, unknown host or database, bad password."""
    import asyncpg

    return isinstance(exc, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError))


def _config_problems(path: str, exc: ConfigError) -> int:
    print(f"{path}: {len(exc.problems)} problem(s):", file=sys.stderr)
    for key, message in exc.problems:
        print(f"  {key}: {message}", file=sys.stderr)
    return 2


def coverage_warnings(config: Config, now: datetime, days: int = 14) -> list[str]:
    """Stretches of the next `days` with nobody on call, per schedule (the first few of each)."""
    warnings = []
    for name, schedule in schedules_from(config).items():
        gaps = schedule.gaps(now, now + timedelta(days=days))
        total_h = sum((g.end - g.start).total_seconds() for g in gaps) / 3600
        for gap in gaps[:3]:
            warnings.append(f"schedules.{name}: nobody on call {gap.start:%Y-%m-%d %H:%M} - {gap.end:%Y-%m-%d %H:%M} UTC")
        if len(gaps) > 3:
            warnings.append(f"schedules.{name}: {len(gaps) - 3} more gaps; {total_h:.1f} h uncovered in {days} days")
    return warnings


async def _migrate(config: Config) -> list[str]:
    store = make_store(config)
    await store.open()  # opening applies whatever is pending
    await store.close()
    return store.applied_migrations


def _one_server_per_store(path: Path) -> IO[bytes] | bool | None:
    """An exclusive lock on the store file for as long as the returned handle lives; False: another server has it.

    Two servers on one SQLite file split the reports between two detectors, and neither sees a
    surge. flock is separate from SQLite's own (POSIX) locks, so this leaves the database alone.
    None: no lock could be taken (e.g. the path is a folder); opening the store will say why.
    """
    try:
        handle = open(path, "ab")  # noqa: SIM115 - held until the process exits
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    except OSError:
        handle.close()
        return None
    return handle


async def _one_server_per_database(dsn: str) -> Any:
    """PostgreSQL's counterpart of `_one_server_per_store`: a session advisory lock, held by a connection
    of its own for as long as it is open; False: another server holds it. None: no connection
    (opening the store will say why)."""
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn)
    except Exception:  # noqa: BLE001 - refused, no such database, bad password: reported by the store's open
        return None
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SERVER_LOCK_KEY):
        await conn.close()
        return False
    return conn


SERVER_LOCK_KEY = 0x73746174757353  # "statusS": one statusd serve per PostgreSQL database


async def _serve(config: Config) -> int:
    if config.store.url is None:
        config.store_path.parent.mkdir(parents=True, exist_ok=True)
        lock = _one_server_per_store(config.store_path)  # held while this frame lives: until serving ends
        if lock is False:
            print(f"statusd: another statusd serve is using the store {config.store_path} (store.path); "
                  "run one server per SQLite file", file=sys.stderr)
            return 1
        return await _run(config)
    held = await _one_server_per_database(config.store.url.reveal())
    if held is False:
        print("statusd: another statusd serve is using this PostgreSQL database (store.url); "
              "run one server per database", file=sys.stderr)
        return 1
    try:
        return await _run(config)
    finally:
        if held is not None:
            await held.close()


def connection_limits(config: Config) -> ConnectionLimits:
    """The HTTP server's limits from `[server]`; `max_connections = 0` takes 3/4 of the open-file limit."""
    server = config.server
    return ConnectionLimits(header_timeout_s=server.header_timeout_s, body_timeout_s=server.body_timeout_s,
                            keepalive_timeout_s=server.keepalive_timeout_s,
                            max_connections=server.max_connections or default_max_connections())


async def _run(config: Config) -> int:
    app = build_app(config)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptFailureLog(loop.get_exception_handler()))
    runner = GuardedAppRunner(app, limits=connection_limits(config), handle_signals=False, access_log=None)
    await runner.setup()
    # What start-up built (modules, templates, the app) lives as long as the process: keep it
    # out of full garbage collections, which otherwise walk it all and stall the loop 50-70 ms.
    gc.collect()
    gc.freeze()
    site = web.TCPSite(runner, config.server.host, config.server.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"statusd: cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"statusd {__version__} is up. Status page: {config.server.base_url}/  "
          f"(metrics: {config.server.base_url}/metrics, "
          f"store: {config.store_description})", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()  # runs the cleanup context: stops probes, awaits the worker, closes the store
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
