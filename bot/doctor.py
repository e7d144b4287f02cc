"""`conversant doctor`: check every outside dependency and say how to fix what is wrong."""
from __future__ import annotations

from collections.abc import Callable

from slack_sdk.errors import SlackApiError

from bot.config import ConfigError, Settings
from bot.db import Database, SchemaOutOfDate, check_schema
from bot.llm import Drafter
from bot.platforms.registry import enabled_platforms
from bot.slack.publish import make_client


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    failures = 0

    def report(name: str, check: Callable[[], str]) -> None:
        nonlocal failures
        try:
            out(f"  ok    {name}: {check()}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the other checks
            failures += 1
            out(f"  FAIL  {name}: {error}")

    out("Conversant doctor")
    report("configuration", lambda: _configuration(settings))
    report("database", lambda: _database(settings))
    if settings.slack_bot_token:
        client = make_client(settings.slack_bot_token, settings.slack_api_url)
        report("Slack token", lambda: _slack_auth(client))
        for label, channel in (("review channel", settings.slack_review_channel), ("digest channel", settings.slack_digest_channel)):
            if channel:
                report(f"Slack {label}", lambda channel=channel: _slack_channel(client, channel))
    else:
        report("Slack token", _missing("SLACK_BOT_TOKEN"))
    if settings.model_configured:
        report("model", lambda: Drafter(settings).check())
    else:
        out("  note  model: none configured; cards will come without drafts (set OPENAI_API_KEY or OPENAI_BASE_URL)")
    try:
        platforms = enabled_platforms(settings)
    except ConfigError as error:
        platforms = {}
        report("platforms", _raise(str(error)))
    for platform in platforms.values():
        report(platform.label, platform.check_login)
    _streams(settings, platforms, report)
    if not platforms:
        report("platforms", _missing("the credentials of at least one of Bluesky, Mastodon, X or Reddit"))
    out("All checks passed." if not failures else f"{failures} check(s) failed; fix them and run `conversant doctor` again.")
    return 1 if failures else 0


def _streams(settings: Settings, platforms: dict, report) -> None:
    """Each stream's endpoint answers (polling works without them, but mentions then wait for the cycle)."""
    from bot.platforms.streams.registry import enabled_streams

    for stream in enabled_streams(settings, platforms):
        report(f"{platforms[stream.platform].label} stream ({stream.source})", stream.check)


def _missing(name: str) -> Callable[[], str]:
    return _raise(f"{name} is not set (see .env.example)")


def _raise(message: str) -> Callable[[], str]:
    def check() -> str:
        raise RuntimeError(message)

    return check


def _configuration(settings: Settings) -> str:
    settings.require("BRAND_NAME", "SLACK_REVIEW_CHANNEL")
    who = "anyone in the channel" if not settings.slack_approvers else ", ".join(settings.slack_approvers)
    return f"brand {settings.brand_name!r}; approvers: {who}"


def _database(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        db.ping()
        try:
            check_schema(db, settings.database_url)
        except SchemaOutOfDate as error:
            raise RuntimeError(str(error)) from None
        return f"{db.engine.dialect.name} reachable, schema up to date"
    finally:
        db.dispose()


def _slack_auth(client) -> str:
    try:
        auth = client.auth_test()
    except SlackApiError as error:
        raise RuntimeError(f"Slack refused the token ({error.response.get('error')}): check SLACK_BOT_TOKEN") from None
    return f"bot {auth.get('user')} in {auth.get('team')}"


def _slack_channel(client, channel: str) -> str:
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as error:
        raise RuntimeError(f"{channel}: {error.response.get('error')} (check the ID and invite the bot to the channel)") from None
    if info.get("is_member") is False:
        raise RuntimeError(f"#{info.get('name', channel)}: the bot is not a member; invite it with /invite @Conversant")
    return f"#{info.get('name', channel)}"
