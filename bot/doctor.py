"""`conversant doctor`: check every outside dependency and say how to fix what is wrong."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot import policy
from bot.brand import Brand
from bot.config import ConfigError, Settings
from bot.db import Database, SchemaOutOfDate, check_schema, describe_url
from bot.draft import PROMPT_FILES, build_messages, load_prompts, prompts_dir, reply_cap
from bot.knowledge import store as knowledge
from bot.llm import TIMEOUT_MARGIN, Drafter, DraftUnavailable
from bot.models import Conversation
from bot.platforms.base import PlatformError
from bot.platforms.formats import format_for
from bot.platforms.registry import account_platforms, enabled_accounts
from bot.slack.publish import make_client
from bot.slack.scopes import missing_scopes


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    failures = 0

    def report(name: str, check: Callable[[], str]) -> None:
        nonlocal failures
        try:
            out(f"  ok    {name}: {check()}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the other checks
            lines = error.problems if isinstance(error, ConfigError) else [_one_line(error)]
            failures += len(lines)
            for line in lines:
                out(f"  FAIL  {name}: {line}")

    _quiet_libraries()
    out("Conversant doctor")
    report("configuration", lambda: _configuration(settings))
    before = failures
    report("database", lambda: _database(settings))
    if failures == before:
        _knowledge(settings, out)
    before = failures
    report("prompts", lambda: _prompts(settings))
    prompts_ok = failures == before
    _check_slack(settings, report)
    if settings.model_configured:
        drafter = Drafter(settings)
        before = failures
        report("model", drafter.check)
        if failures == before and prompts_ok:  # drafts need a server that answers and the prompts
            report("model speed", lambda: _model_speed(settings, drafter))
        elif failures == before:
            out("  note  model speed: not measured until the prompts are fixed")
    else:
        out("  note  model: none configured; cards will come without drafts (set OPENAI_API_KEY or OPENAI_BASE_URL)")
    platform_config_failed = False
    try:
        brand = Brand(enabled_accounts(settings), account_platforms(settings))
    except ConfigError as error:
        brand, platform_config_failed = Brand((), {}), True
        report("platforms", _raise_config(error))
    for account in brand.accounts:  # each account logs in on its own; with several, every line names it
        platform = brand.adapters[account.id]
        name = f"{platform.label} account {account.id!r}" if settings.accounts_file else platform.label
        before = failures
        report(name, lambda platform=platform: _platform_login(platform))
        if failures == before:
            _private_replies(platform, name, out)
    platforms = brand.first_of_each_platform()
    _streams(settings, brand, report)
    if not platforms and not platform_config_failed:
        report("platforms", _raise("no platform is enabled: set the credentials of Bluesky, Mastodon, X or Reddit (see .env.example)"))
    if settings.openai_embedding_model:
        report("embedding model", lambda: _embedding_model(settings))
    out("All checks passed." if not failures else f"{failures} check(s) failed; fix them and run `conversant doctor` again.")
    return 1 if failures else 0


def _streams(settings: Settings, brand: Brand, report) -> None:
    """Each stream's endpoint answers (polling works without them, but mentions then wait for the cycle)."""
    from bot.platforms.streams.registry import account_streams

    for account, stream in account_streams(settings, brand):
        report(f"{brand.label(account)} stream ({stream.source})", stream.check)


def _quiet_libraries() -> None:
    """Each check says in one line what went wrong; the libraries' own error lines would only repeat it, raw."""
    for name in ("slack_sdk", "slack_bolt", "openai", "httpx", "httpcore", "atproto", "atproto_client", "mastodon",
                 "tweepy", "praw", "prawcore", "urllib3", "sqlalchemy", "websockets", "websocket"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _missing(name: str) -> Callable[[], str]:
    return _raise(f"{name} is not set (see .env.example)")


def _raise_config(error: ConfigError) -> Callable[[], str]:
    def check() -> str:
        raise error

    return check


def _raise(message: str) -> Callable[[], str]:
    def check() -> str:
        raise RuntimeError(message)

    return check


def _configuration(settings: Settings) -> str:
    settings.require("BRAND_NAME", "SLACK_REVIEW_CHANNEL")
    who = "anyone in the channel" if not settings.slack_approvers else ", ".join(settings.slack_approvers)
    dotenv = Path(".env").resolve()
    source = f"the environment over {dotenv}" if dotenv.is_file() else "the environment (no .env in this folder)"
    return f"brand {settings.brand_name!r}; approvers: {who}; read from {source}"


def _one_line(error: Exception) -> str:
    """What to do, in one line: our checks raise sentences; anything else is named, never dumped."""
    if isinstance(error, (RuntimeError, ConfigError, DraftUnavailable, PlatformError)):
        return " ".join(str(error).split())
    return f"unexpected {type(error).__name__}; run with LOG_LEVEL=DEBUG for details"


def _database(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        try:
            db.ping()
        except SQLAlchemyError as error:
            reason = str(error.orig).splitlines()[0][:160] if getattr(error, "orig", None) else type(error).__name__
            raise RuntimeError(f"cannot connect to {describe_url(settings.database_url)} ({reason}): "
                               "check DATABASE_URL and that the server is running") from None
        try:
            check_schema(db, settings.database_url)
        except SchemaOutOfDate as error:
            raise RuntimeError(str(error)) from None
        return f"{describe_url(settings.database_url)} reachable, schema up to date"
    finally:
        db.dispose()


def _knowledge(settings: Settings, out: Callable[[str], None]) -> None:
    """How many help articles drafts are grounded in; none is fine, so it is a note, never a failure."""
    db = Database(settings.database_url)
    try:
        known = knowledge.status(db)
    finally:
        db.dispose()
    if not known.articles:
        out("  note  knowledge base: no help articles imported; drafts are not grounded in them (conversant knowledge import PATH)")
    else:
        when = f"last imported {known.last_import:%Y-%m-%d %H:%M} UTC from {known.source}" if known.last_import else "import time unknown"
        out(f"  ok    knowledge base: {known.articles} help article(s), {when}")


def _prompts(settings: Settings) -> str:
    load_prompts(settings)  # raises ConfigError naming a missing or empty file
    return f"{', '.join(PROMPT_FILES)} in {prompts_dir(settings).resolve()}"


def _check_slack(settings: Settings, report) -> None:
    """The bot token and its scopes, the channels, and the token each way of receiving clicks needs."""
    if settings.slack_bot_token:
        client = make_client(settings.slack_bot_token, settings.slack_api_url)
        report("Slack token", lambda: _slack_auth(client))
        for label, channel in (("review channel", settings.slack_review_channel), ("digest channel", settings.slack_digest_channel),
                               *_routed_channels(settings)):
            if channel:
                report(f"Slack {label}", lambda channel=channel: _slack_channel(client, channel))
    else:
        report("Slack token", _missing("SLACK_BOT_TOKEN"))
    report("Slack clicks", lambda: _slack_modes(settings))


def _routed_channels(settings: Settings) -> list[tuple[str, str]]:
    """The accounts' review channels and the routes' channels, each named by its account or route."""
    channels = [(f"review channel of account {a.id!r}", a.review_channel) for a in settings.accounts if a.review_channel]
    routes = (*settings.routes.rules, settings.routes.default)
    return channels + [(f"channel of route {r.name!r}", r.channel) for r in routes if r.channel]


def _slack_modes(settings: Settings) -> str:
    """`web` needs the signing secret, `run` an app-level token that Slack accepts."""
    if not settings.slack_signing_secret and not settings.slack_app_token:
        raise RuntimeError("neither SLACK_SIGNING_SECRET (for `conversant web`) nor SLACK_APP_TOKEN (for `conversant run`, "
                           "Socket Mode) is set: set the one for the command you run (see .env.example)")
    ready = []
    if settings.slack_signing_secret:
        ready.append("`conversant web` (signing secret set)")
    if settings.slack_app_token:
        client = make_client(None, settings.slack_api_url)
        try:
            client.apps_connections_open(app_token=settings.slack_app_token)
        except SlackApiError as error:
            raise RuntimeError(f"Slack refused SLACK_APP_TOKEN ({error.response.get('error')}): create an app-level token with "
                               "connections:write under Basic Information > App-Level Tokens") from None
        except OSError as error:  # network trouble (URLError, timeouts), said in one line
            raise RuntimeError(_unreachable(settings.slack_api_url, error)) from None
        ready.append("`conversant run` (Socket Mode token accepted)")
    if not settings.slack_signing_secret:
        ready.append("`conversant web` needs SLACK_SIGNING_SECRET")
    elif not settings.slack_app_token:
        ready.append("`conversant run` needs SLACK_APP_TOKEN")
    return "; ".join(ready)


def _unreachable(url: str, error: Exception) -> str:
    reason = getattr(error, "reason", None) or error
    text = getattr(reason, "strerror", None) or type(reason).__name__
    return f"cannot reach Slack at {url} ({text}): check the network, or SLACK_API_URL"


def _platform_login(platform) -> str:
    try:
        return platform.check_login()
    except PlatformError as error:
        # A hint about the next poll cycle ("tries again on the next poll") means nothing here.
        retry_hint = error.hint and "tries again" in error.hint
        raise RuntimeError(error.message if retry_hint else str(error)) from None


def _private_replies(platform, name: str, out: Callable[[str], None]) -> None:
    """Where sending privately needs more than the login (Bluesky chat), say whether it works; a note, not a failure:
    public replies work without it."""
    if not hasattr(platform, "check_private"):
        return
    try:
        out(f"  ok    {name} private replies: {platform.check_private()}")
    except PlatformError as error:
        out(f"  note  {name} private replies: unavailable, {error}")


def _embedding_model(settings: Settings) -> str:
    if not settings.model_configured:
        raise RuntimeError("OPENAI_EMBEDDING_MODEL is set but no model server is: set OPENAI_API_KEY or OPENAI_BASE_URL, "
                           "or unset OPENAI_EMBEDDING_MODEL to use the database's full-text ranking")
    vectors = Drafter(settings).embed(["doctor"])
    return f"{settings.openai_embedding_model}: {len(vectors[0])} dimensions"


def _slack_auth(client) -> str:
    try:
        auth = client.auth_test()
    except SlackApiError as error:
        raise RuntimeError(f"Slack refused the token ({error.response.get('error')}): check SLACK_BOT_TOKEN") from None
    except Exception as error:  # noqa: BLE001 - network trouble, said in one line
        raise RuntimeError(_unreachable(client.base_url, error)) from None
    missing = missing_scopes(next((v for k, v in auth.headers.items() if k.lower() == "x-oauth-scopes"), None))
    if missing:
        raise RuntimeError(f"the bot lacks the scope(s) {', '.join(missing)}: add them under OAuth & Permissions "
                           "(or update the app from slack-manifest.yml) and reinstall the app")
    return f"bot {auth.get('user')} in {auth.get('team')}, every scope it needs"


def _slack_channel(client, channel: str) -> str:
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as error:
        if error.response.get("error") == "missing_scope":
            raise RuntimeError(f"{channel}: the bot may not read this channel's details: add groups:read (private channels) "
                               "and channels:read, then reinstall the app") from None
        raise RuntimeError(f"{channel}: {error.response.get('error')} (check the ID and invite the bot to the channel)") from None
    if info.get("is_member") is False:
        raise RuntimeError(f"#{info.get('name', channel)}: the bot is not a member; invite it with /invite @Conversant")
    return f"#{info.get('name', channel)}"


SAMPLE_MENTION = "@brand my order still hasn't arrived after two weeks and nobody answers my emails. What is going on?"


def _model_speed(settings: Settings, drafter: Drafter) -> str:
    """Time real drafts (one alone, then as many at once as the drafter sends) and say what to set."""
    conversation = Conversation(platform="bluesky", author_handle="alice.example", author_name="Alice", reason="mention",
                                text=SAMPLE_MENTION, parent_text=None)
    rules = policy.reply_rules(format_for("bluesky"), conversation, settings.brand_allowed_domains)
    messages = build_messages(load_prompts(settings), conversation, rules)
    started = time.monotonic()
    model = drafter.triage(messages, reply_max_chars=reply_cap(rules.limit)).drafted_by
    one = time.monotonic() - started
    at_once = drafter.concurrency
    if at_once > 1:
        started = time.monotonic()
        with ThreadPoolExecutor(at_once) as pool:
            list(pool.map(lambda _: drafter.triage(messages, reply_max_chars=reply_cap(rules.limit)), range(at_once)))
        per_minute = 60 * at_once / (time.monotonic() - started)
    else:
        per_minute = 60 / one
    lines = [f"{model}: one draft in {one:.1f} s"]
    speed = drafter.speed()
    if speed:
        lines[0] += f" ({speed[1]:.0f} tokens/s)"
    slots = f"the server's {drafter.server_slots} slot(s)" if drafter.server_slots else "OPENAI_CONCURRENCY"
    lines[0] += f"; {at_once} at once ({slots}): about {per_minute:.0f} drafts a minute"
    needed = math.ceil(drafter.adaptive_timeout())
    if settings.openai_timeout_seconds is None:
        lines.append(f"the timeout adapts to this speed: {needed} s now (a whole {settings.openai_max_tokens}-token answer, x{TIMEOUT_MARGIN:g}); "
                     f"to pin it set OPENAI_TIMEOUT_SECONDS={needed}")
    elif settings.openai_timeout_seconds < (drafter.whole_answer_seconds() or 0):
        lines.append(f"warning: OPENAI_TIMEOUT_SECONDS={settings.openai_timeout_seconds:g} may be shorter than a whole answer "
                     f"({settings.openai_max_tokens} tokens, OPENAI_MAX_TOKENS) takes here: set OPENAI_TIMEOUT_SECONDS={needed} or unset it")
    if drafter.server_slots and settings.openai_concurrency > drafter.server_slots:
        lines.append(f"OPENAI_CONCURRENCY={settings.openai_concurrency} is capped at the server's {drafter.server_slots} slot(s); "
                     f"start the server with more slots (llama-server -np N) to draft more at once")
    elif drafter.server_slots and settings.openai_concurrency < drafter.server_slots:
        lines.append(f"the server has {drafter.server_slots} slots: set OPENAI_CONCURRENCY={drafter.server_slots} to use them all")
    cycle = per_minute * settings.poll_interval_seconds / 60
    lines.append(f"a poll cycle (POLL_INTERVAL_SECONDS={settings.poll_interval_seconds:g}) drafts about {cycle:.0f} mention(s); "
                 "more wait for the next cycle")
    return "\n          ".join(lines)

