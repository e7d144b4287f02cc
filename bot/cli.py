"""The `conversant` command (see shared/CONTRACT.md for the fixed names)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from bot.config import ConfigError, Settings, load_settings
from bot.db import SchemaOutOfDate, check_schema, migrate
from bot.logs import configure_logging

log = logging.getLogger("bot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conversant", description="Keeps your brand in the conversation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="bring the database schema to the newest revision")
    poll = commands.add_parser("poll", help="poll the platforms, draft, and post cards")
    poll.add_argument("--once", action="store_true", help="run one cycle and exit")
    web = commands.add_parser("web", help="serve Slack's HTTP endpoint /slack/events and /healthz")
    web.add_argument("--port", type=int, help="port to listen on (default: $PORT, else 3000)")
    commands.add_parser("worker", help="run the scheduler: polling, retries, reconciliation")
    commands.add_parser("run", help="Socket Mode plus the scheduler, in one process")
    commands.add_parser("doctor", help="check configuration, database, Slack, the model and each platform")
    commands.add_parser("demo", help="the offline demo: no credentials, no network")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from bot.demo.run import run_demo

        configure_logging(None, "WARNING")
        return run_demo()
    try:
        settings = load_settings()
        configure_logging(settings)
        return COMMANDS[args.command](settings, args)
    except ConfigError as error:
        print(f"conversant: configuration error: {error}", file=sys.stderr)
        return 2
    except SchemaOutOfDate as error:
        print(f"conversant: {error}", file=sys.stderr)
        return 2
    except OperationalError as error:
        print(f"conversant: cannot use the database ({_db_reason(error)}); check DATABASE_URL and that the server is running", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(f"conversant: database error: {type(error).__name__}; run `conversant migrate` if the schema is old", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _db_reason(error: OperationalError) -> str:
    # The driver's first line, never the URL (it may hold a password).
    return str(error.orig).splitlines()[0][:200] if error.orig else type(error).__name__


def _services(settings: Settings):
    from bot.services import build_services

    services = build_services(settings)
    check_schema(services.db, settings.database_url)
    return services


def _require_platforms(services) -> None:
    if not services.platforms:
        raise ConfigError("no platform is enabled: set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD (see .env.example)")


def cmd_migrate(settings: Settings, args) -> int:
    migrate(settings.database_url)
    print("conversant: database schema is up to date")
    return 0


def cmd_poll(settings: Settings, args) -> int:
    from bot.pipeline import poll_once

    settings.require("BRAND_NAME")
    services = _services(settings)
    _require_platforms(services)
    if args.once:
        report = poll_once(services)
        print(f"conversant: poll cycle done: {report.summary()}")
        return 0
    from bot.jobs.scheduler import build_scheduler

    _stop_on_sigterm()
    build_scheduler(services, blocking=True).start()
    return 0


def cmd_web(settings: Settings, args) -> int:
    from bot.slack.web import serve

    port = args.port or int(os.environ.get("PORT") or 3000)
    services = _services(settings)
    log.info("serving /slack/events and /healthz on port %d", port)
    serve(services, port=port)
    return 0


def cmd_worker(settings: Settings, args) -> int:
    from bot.jobs.scheduler import build_scheduler

    settings.require("BRAND_NAME")
    services = _services(settings)
    _require_platforms(services)
    _stop_on_sigterm()
    log.info("worker started: polling every %ds", settings.poll_interval_seconds)
    build_scheduler(services, blocking=True).start()
    return 0


def cmd_run(settings: Settings, args) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.jobs.scheduler import build_scheduler
    from bot.slack.app import build_app

    settings.require("BRAND_NAME", "SLACK_APP_TOKEN")
    services = _services(settings)
    _require_platforms(services)
    _stop_on_sigterm()
    scheduler = build_scheduler(services, blocking=False)
    scheduler.start()
    log.info("connected over Socket Mode; polling every %ds", settings.poll_interval_seconds)
    try:
        SocketModeHandler(build_app(services, socket_mode=True), settings.slack_app_token).start()
    finally:
        scheduler.shutdown(wait=False)
    return 0


def cmd_doctor(settings: Settings, args) -> int:
    from bot.doctor import run_doctor

    return run_doctor(settings)


def _stop_on_sigterm() -> None:
    """Let a platform's SIGTERM (deploys, scaling down) end the process like Ctrl-C."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


COMMANDS = {
    "migrate": cmd_migrate,
    "poll": cmd_poll,
    "web": cmd_web,
    "worker": cmd_worker,
    "run": cmd_run,
    "doctor": cmd_doctor,
}
