"""The `conversant` command (see shared/CONTRACT.md for the fixed names)."""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.db import SchemaOutOfDate, check_schema, current_revision, describe_url, migrate
from bot.lifecycle import StopSignal
from bot.logs import configure_logging

log = logging.getLogger("bot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conversant", description="Keeps your brand in the conversation.")
    parser.add_argument("--version", action="version", version=f"conversant {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate_cmd = commands.add_parser("migrate", help="bring the database schema to the newest revision")
    migrate_cmd.add_argument("--to", default="head", metavar="REVISION",
                             help="migrate up or down to this revision instead (downgrades: see Upgrading in the README)")
    poll = commands.add_parser("poll", help="one cycle: poll the platforms, draft, post cards, send approved replies (the schedule: `worker`)")
    poll.add_argument("--once", action="store_true", help="accepted for compatibility: poll always runs one cycle")
    web = commands.add_parser("web", help="serve Slack's HTTP endpoint /slack/events, /healthz, /readyz and /metrics")
    web.add_argument("--port", type=int, help="port to listen on (default: $PORT, else 3000)")
    nudge = commands.add_parser("nudge", help="nudge on-call about cards waiting past the review SLA")
    nudge.add_argument("--once", action="store_true", help="accepted for compatibility: nudge always runs one pass")
    digest = commands.add_parser("digest", help="post the digest of the last 24 hours now")
    digest.add_argument("--now", action="store_true", help="accepted for compatibility: digest always posts now")
    commands.add_parser("worker", help="run the scheduler: polling, nudges, the daily digest, retries; /healthz, /readyz, /metrics on $METRICS_PORT")
    commands.add_parser("run", help="Socket Mode plus the scheduler, in one process")
    commands.add_parser("doctor", help="check configuration, database, Slack, the model and each platform")
    commands.add_parser("demo", help="the offline demo: no credentials, no network")
    purge = commands.add_parser("purge", help="blank the mention text and drafts of settled conversations past a retention window")
    purge.add_argument("--older-than", type=_days, required=True, metavar="DAYS",
                       help="settled conversations received more than DAYS days ago (decimals allowed)")
    knowledge = commands.add_parser("knowledge", help="the brand's help articles that drafts are grounded in")
    knowledge_commands = knowledge.add_subparsers(dest="knowledge_command", required=True, metavar="COMMAND")
    knowledge_import = knowledge_commands.add_parser(
        "import", help="make the knowledge base hold the articles at PATH: added, updated, and removed when gone")
    knowledge_import.add_argument("path", metavar="PATH", help="a folder of .md/.html/.txt files (URL from front matter url: or "
                                  "<link rel=canonical>), a .csv of url,title[,text], or a sitemap .xml (nothing is fetched)")
    evaluate = commands.add_parser("eval", help="check the drafter: replay real customer-care conversations, or draft a file of mentions")
    evaluate.add_argument("file", nargs="?", help="a JSON file of mentions (e.g. bot/demo/eval_mentions.json) or of "
                          "conversations; default: the customer-care conversations shipped with Conversant")
    evaluate.add_argument("--judge", action="store_true", help="also ask a judge model: a 1-5 score per criterion for mentions "
                          "(prompts/judge.md), which reply the customer would rather get for conversations (prompts/preference.md)")
    evaluate.add_argument("--judge-model", help="the judge model (default: OPENAI_MODEL)")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--limit", type=int, help="conversations: replay only the first N of the seeded sample")
    evaluate.add_argument("--brands", help="conversations: only these support accounts, comma-separated (e.g. AdobeCare,HPSupport)")
    evaluate.add_argument("--seed", type=int, help="conversations: the seed of the sample's order (default 11)")
    evaluate.add_argument("--output", help="conversations: also write the JSON report to this file, updated after each turn")
    evaluate.add_argument("--grounding", action="store_true", help="conversations: ground the drafts in each brand's help articles "
                          "(the links its agents posted) and report top-1 and recall@5")
    evaluate.add_argument("--retrieval", action="store_true", help="conversations: only find each turn's help articles and report "
                          "recall@5; no drafts, so no chat model is needed")
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
        for problem in error.problems:  # every bad variable at once, one line each
            print(f"conversant: configuration error: {problem}", file=sys.stderr)
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
    _settle_heap()
    return services


def _settle_heap() -> None:
    """What is built by now lives as long as the process: take it out of the collector's sight.
    Full collections stop walking it, exit no longer spends a second collecting it (every stop,
    every ``poll --once``), and web's forked worker shares those pages instead of copying them."""
    gc.collect()
    gc.freeze()


def _require_platforms(services) -> None:
    if not services.platforms:
        raise ConfigError("no platform is enabled: set the credentials of Bluesky, Mastodon, X or Reddit (see .env.example)")


def cmd_migrate(settings: Settings, args) -> int:
    from alembic.util.exc import CommandError

    print(f"conversant: database: {describe_url(settings.database_url)}")
    try:
        migrate(settings.database_url, to=args.to)
    except CommandError as error:
        print(f"conversant: cannot migrate to {args.to!r}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    revision = current_revision(settings.database_url)
    print("conversant: database schema is up to date" if args.to == "head" else f"conversant: database schema is at revision {revision}")
    return 0


def cmd_poll(settings: Settings, args) -> int:
    from bot.pipeline import poll_once

    settings.require("BRAND_NAME")
    services = _services(settings)
    _require_platforms(services)
    paused = _paused(services)
    report = poll_once(services)
    print(f"conversant: {paused}; nothing polled" if paused else f"conversant: poll cycle done: {report.summary()}")
    return 0


def cmd_nudge(settings: Settings, args) -> int:
    from bot.jobs.nudges import nudge_once

    services = _services(settings)
    report = nudge_once(services)
    print(f"conversant: nudge pass done: {report.summary()}")
    return 0


def cmd_digest(settings: Settings, args) -> int:
    from bot.jobs.digest import send_digest
    from bot.slack.publish import CardPublishError

    services = _services(settings)
    try:
        result = send_digest(services)
    except CardPublishError as error:
        print(f"conversant: the digest was not posted: {error}", file=sys.stderr)
        return 1
    chart = "with its chart" if result.file_id else "without its chart (see the log)"
    print(f"conversant: digest posted to {result.channel} {chart}: {result.missed} missed")
    return 0


def _paused(services) -> str | None:
    from bot.models import get_pause

    with services.db.session() as session:
        pause = get_pause(session)
    return f"paused by {pause.by} since {pause.at:%Y-%m-%d %H:%M} UTC (`/conversant resume` in Slack)" if pause else None


def cmd_web(settings: Settings, args) -> int:
    from bot.slack.web import serve

    port = args.port or int(os.environ.get("PORT") or 3000)
    services = _services(settings)
    log.info("serving /slack/events, /healthz, /readyz and /metrics on port %d", port)
    serve(services, port=port)
    return 0


def cmd_worker(settings: Settings, args) -> int:
    from bot.jobs.scheduler import build_scheduler

    settings.require("BRAND_NAME")
    services = _services(settings)
    _require_platforms(services)
    stop = StopSignal().install()
    scheduler = build_scheduler(services, blocking=False)
    scheduler.start()
    ops = _serve_ops(settings, services)
    log.info("worker started: polling every %ds, nudges, the digest at %s %s", settings.poll_interval_seconds,
             settings.digest_time.strftime("%H:%M"), settings.digest_timezone.key)
    paused = _paused(services)
    if paused:
        log.warning("Conversant is %s: no polling and no nudges until it is resumed", paused)
    streams = _start_streams(services)
    signal_name = stop.wait()
    streams.stop()
    scheduler.shutdown(wait=True)  # the job under way finishes; conversations it claimed are released by it
    if ops:
        ops.shutdown()
    services.db.dispose()
    log.info("worker stopped on %s; the job under way finished", signal_name)
    return 0


def cmd_run(settings: Settings, args) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

    from bot.jobs.scheduler import build_scheduler
    from bot.slack.app import build_app, close, close_socket

    settings.require("BRAND_NAME", "SLACK_APP_TOKEN")
    services = _services(settings)
    _require_platforms(services)
    stop = StopSignal().install()
    app = build_app(services, socket_mode=True)
    handler = SocketModeHandler(app, settings.slack_app_token)
    try:
        handler.connect()
    except SlackApiError as error:
        print(f"conversant: Slack refused the Socket Mode connection ({error.response.get('error')}): "
              "check SLACK_APP_TOKEN (an app-level token with connections:write)", file=sys.stderr)
        return 2
    scheduler = build_scheduler(services, blocking=False)
    scheduler.start()
    streams = _start_streams(services)
    ops = _serve_ops(settings, services)
    log.info("connected over Socket Mode; polling every %ds", settings.poll_interval_seconds)
    signal_name = stop.wait()
    close_socket(handler)  # no new clicks; the ones acked go on on bolt's threads
    close(app)  # its executor takes nothing new once those are done
    streams.stop()
    scheduler.shutdown(wait=True)
    if ops:
        ops.shutdown()
    services.db.dispose()
    log.info("stopped on %s; the job under way finished", signal_name)
    return 0


def _start_streams(services):
    """Bluesky and Mastodon mentions pushed as they are posted (BLUESKY_STREAM, MASTODON_STREAM)."""
    from bot.streaming import start_streams

    return start_streams(services)


def _serve_ops(settings: Settings, services):
    """/healthz, /readyz and /metrics for the scheduler's process, when METRICS_PORT is set."""
    from bot import metrics
    from bot.health import serve_in_background

    metrics.watch(services)
    return serve_in_background(services, settings.metrics_port) if settings.metrics_port else None


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"DAYS must be a number, got {value!r}") from None
    if days < 0:
        raise argparse.ArgumentTypeError(f"DAYS must be 0 or more, got {value!r}")
    return days


def cmd_purge(settings: Settings, args) -> int:
    from datetime import timedelta

    from bot.db import Database
    from bot.purge import purge

    db = Database(settings.database_url)
    try:
        check_schema(db, settings.database_url)
        report = purge(db, older_than=timedelta(days=args.older_than))
    finally:
        db.dispose()
    print(f"conversant: {report.summary()}")
    return 0


def cmd_doctor(settings: Settings, args) -> int:
    from bot.doctor import run_doctor

    return run_doctor(settings)


def cmd_knowledge(settings: Settings, args) -> int:
    """``conversant knowledge import PATH``: the articles at PATH become the knowledge base."""
    from pathlib import Path

    from bot.db import Database
    from bot.knowledge import sources, store
    from bot.llm import Drafter

    path = Path(args.path)
    try:
        source = sources.read(path)
    except sources.SourceError as error:
        print(f"conversant knowledge: {error}; nothing changed", file=sys.stderr)
        return 2
    for problem in source.skipped:
        print(f"conversant knowledge: skipped {problem}", file=sys.stderr)
    if not source.articles:
        print(f"conversant knowledge: no article with a URL in {path}; nothing changed", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        check_schema(db, settings.database_url)
        embedder = Drafter(settings) if settings.openai_embedding_model and settings.model_configured else None
        summary = store.import_articles(db, embedder, source.articles, source=str(path))
    finally:
        db.dispose()
    print(f"conversant knowledge: imported {path}: {summary.line()}")
    if summary.embedded:
        print(f"conversant knowledge: {summary.embedded} chunk(s) embedded with {settings.openai_embedding_model}")
    if source.titles_only:
        print("conversant knowledge: these articles have titles but no text: Conversant fetches nothing over the network, "
              "so they are matched on their titles alone (import the pages as files to match on their text)")
    return 1 if source.skipped else 0


def cmd_eval(settings: Settings, args) -> int:
    import json

    from bot.evaluation import EvalFileError, format_table, load_file, run_eval
    from bot.evaluation.replay import is_conversations_file, run_command

    if args.retrieval and (args.file is None or is_conversations_file(args.file)):
        return run_command(settings, args)  # no chat model needed
    if not settings.model_configured:
        print("conversant eval: no model is configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL "
              "(any OpenAI-compatible server, e.g. Ollama), and OPENAI_MODEL", file=sys.stderr)
        return 2
    if args.file is None or is_conversations_file(args.file):
        return run_command(settings, args)
    if args.limit or args.brands or args.seed is not None or args.output or args.grounding or args.retrieval:
        print("conversant eval: --limit, --brands, --seed, --output, --grounding and --retrieval apply to conversations, "
              "not to a file of mentions",
              file=sys.stderr)
        return 2
    try:
        report = run_eval(settings, load_file(args.file), judge=args.judge, judge_model=args.judge_model)
    except EvalFileError as error:
        print(f"conversant eval: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_json(), ensure_ascii=False, indent=2) if args.json else format_table(report))
    if not any(r.should_reply is not None for r in report.results):
        print(f"conversant eval: the model gave no usable answer ({report.results[0].error})", file=sys.stderr)
        return 1
    every_check = report.totals()["drafts_passing_every_check"]
    if every_check["passed"] < every_check["applicable"]:  # exit 1, so CI and scripts notice a regression
        print(f"conversant eval: {every_check['applicable'] - every_check['passed']} of {every_check['applicable']} drafts "
              "failed a check (see above)", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "migrate": cmd_migrate,
    "poll": cmd_poll,
    "web": cmd_web,
    "worker": cmd_worker,
    "run": cmd_run,
    "nudge": cmd_nudge,
    "digest": cmd_digest,
    "doctor": cmd_doctor,
    "purge": cmd_purge,
    "eval": cmd_eval,
    "knowledge": cmd_knowledge,
}
