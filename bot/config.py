"""Settings read once from the environment, then from `.env` (the environment wins).

A missing or malformed value raises ``ConfigError`` with one line naming the
variable and what is expected; the CLI prints that line and exits.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from bot.accounts import Account, AccountsError, load_accounts_file
from bot.routing import Routes


class ConfigError(Exception):
    """Configuration values are missing or malformed: one line per problem, each naming its variable."""

    @property
    def problems(self) -> list[str]:
        return [str(arg) for arg in self.args]

    def __str__(self) -> str:
        return "\n".join(self.problems)


@dataclass(frozen=True)
class BusinessHours:
    """Opening days (0 = Monday) and daily hours, in the digest time zone."""

    days: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///conversant.db"
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_review_channel: str | None = None
    slack_digest_channel: str | None = None
    slack_messages_per_second: float = 1.0  # Slack's chat.postMessage limit: about 1 per second per channel
    slack_approvers: tuple[str, ...] = ()
    slack_oncall: tuple[str, ...] = ()
    slack_signoffs: tuple[tuple[str, str], ...] = ()  # (user ID, initials): replies they approve end with " ^JD"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str | None = None
    openai_timeout_seconds: float | None = None  # None: the Drafter adapts it to the speed it measures
    openai_concurrency: int = 4  # and never more than the server's slots, when it reports them
    openai_max_retries: int = 2  # connection errors, 429 and 5xx; never a timeout (the request may still be running)
    openai_max_tokens: int = 1024  # an answer cut off there gives no draft, with the reason
    brand_name: str | None = None
    brand_keywords: tuple[str, ...] = ()
    brand_allowed_domains: tuple[str, ...] = ()
    bluesky_handle: str | None = None
    bluesky_app_password: str | None = None
    bluesky_pds_url: str = "https://bsky.social"
    bluesky_stream: str = "jetstream"  # jetstream | firehose | off: how Bluesky mentions are pushed (polling goes on)
    bluesky_jetstream_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    bluesky_firehose_url: str = "wss://bsky.network"  # com.atproto.sync.subscribeRepos of a relay or a PDS
    mastodon_stream: bool = True  # the user notification stream (polling goes on)
    mastodon_api_base_url: str | None = None
    mastodon_access_token: str | None = None
    x_bearer_token: str | None = None
    x_api_key: str | None = None
    x_api_secret: str | None = None
    x_access_token: str | None = None
    x_access_token_secret: str | None = None
    x_api_base_url: str = "https://api.x.com"
    reddit_client_id: str | None = None
    reddit_client_secret: str | None = None
    reddit_username: str | None = None
    reddit_password: str | None = None
    reddit_user_agent: str | None = None
    reddit_subreddits: tuple[str, ...] = ("all",)
    reddit_api_base_url: str = "https://oauth.reddit.com"
    reddit_auth_base_url: str = "https://www.reddit.com"
    poll_interval_seconds: int = 60
    first_run_lookback_hours: float = 6.0
    review_sla_minutes: float = 30.0
    nudge_repeat_minutes: float = 60.0
    digest_time: time = time(9, 0)
    digest_timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    business_hours: BusinessHours | None = None
    prompts_dir: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_port: int | None = None  # the worker's and `run`'s /metrics, /healthz, /readyz; unset: none
    accounts_file: Path | None = None  # CONVERSANT_ACCOUNTS; unset: one account per platform from the variables above
    accounts: tuple[Account, ...] = ()  # the file's accounts
    routes: Routes = field(default_factory=Routes)  # the file's routing rules

    @property
    def digest_channel(self) -> str | None:
        return self.slack_digest_channel or self.slack_review_channel

    @property
    def first_run_lookback(self) -> timedelta:
        return timedelta(hours=self.first_run_lookback_hours)

    @property
    def model_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    def require(self, *names: str) -> None:
        """Stop with a clear line when a variable this command needs is unset."""
        missing = [name for name in names if not getattr(self, name.lower())]
        if missing:
            raise ConfigError(*(f"{name} is required for this command: {_HINTS.get(name, 'set it in .env')}" for name in missing))


_HINTS = {
    "SLACK_BOT_TOKEN": "the bot token (xoxb-...) from your Slack app's OAuth & Permissions page",
    "SLACK_SIGNING_SECRET": "the signing secret from your Slack app's Basic Information page",
    "SLACK_APP_TOKEN": "an app-level token (xapp-...) with connections:write, for Socket Mode",
    "SLACK_REVIEW_CHANNEL": "the ID (C...) of the channel where review cards go",
    "BRAND_NAME": "how the brand is called in prompts and cards, e.g. BRAND_NAME=Acme",
}

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def load_settings(environ: dict[str, str] | None = None, dotenv_path: str | Path = ".env") -> Settings:
    """Read settings from ``environ`` (default: the process) over ``.env``."""
    values = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None} if Path(dotenv_path).is_file() else {}
    values.update(os.environ if environ is None else environ)
    env = {k: v.strip() for k, v in values.items() if v is not None and v.strip() != ""}
    get = env.get

    problems: list[str] = []

    def check(parse, *args, **kwargs):
        """Parse one variable; a bad one is noted and the others still checked, so all are reported at once."""
        try:
            return parse(*args, **kwargs)
        except ConfigError as error:
            problems.append(str(error))
            return None

    settings = Settings(
        database_url=check(_database_url, get("DATABASE_URL", Settings.database_url)),
        slack_bot_token=check(_prefixed, env, "SLACK_BOT_TOKEN", "xoxb-"),
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        slack_app_token=check(_prefixed, env, "SLACK_APP_TOKEN", "xapp-"),
        slack_api_url=check(_url, env, "SLACK_API_URL", Settings.slack_api_url, trailing_slash=True),
        slack_review_channel=check(_channel, env, "SLACK_REVIEW_CHANNEL"),
        slack_digest_channel=check(_channel, env, "SLACK_DIGEST_CHANNEL"),
        slack_messages_per_second=check(_number, env, "SLACK_MESSAGES_PER_SECOND", 1.0, minimum=0.01),
        slack_approvers=check(_slack_ids, env, "SLACK_APPROVERS"),
        slack_oncall=check(_slack_ids, env, "SLACK_ONCALL"),
        slack_signoffs=check(_signoffs, env, "SLACK_SIGNOFFS"),
        openai_api_key=get("OPENAI_API_KEY"),
        openai_base_url=check(_url, env, "OPENAI_BASE_URL", None),
        openai_model=get("OPENAI_MODEL", Settings.openai_model),
        openai_embedding_model=get("OPENAI_EMBEDDING_MODEL"),
        openai_timeout_seconds=check(_number, env, "OPENAI_TIMEOUT_SECONDS", None, minimum=0.1),
        openai_concurrency=check(_number, env, "OPENAI_CONCURRENCY", 4, minimum=1, integer=True),
        openai_max_retries=check(_number, env, "OPENAI_MAX_RETRIES", 2, minimum=0, integer=True),
        openai_max_tokens=check(_number, env, "OPENAI_MAX_TOKENS", 1024, minimum=16, integer=True),
        brand_name=get("BRAND_NAME"),
        brand_keywords=check(_list, env, "BRAND_KEYWORDS"),
        brand_allowed_domains=tuple(d.lower().removeprefix("www.") for d in _list(env, "BRAND_ALLOWED_DOMAINS")),
        bluesky_handle=get("BLUESKY_HANDLE", "").lstrip("@") or None,
        bluesky_app_password=get("BLUESKY_APP_PASSWORD"),
        bluesky_pds_url=check(_url, env, "BLUESKY_PDS_URL", Settings.bluesky_pds_url),
        bluesky_stream=(check(_choice, env, "BLUESKY_STREAM", "jetstream", ("JETSTREAM", "FIREHOSE", "OFF")) or "off").lower(),
        bluesky_jetstream_url=check(_ws_url, env, "BLUESKY_JETSTREAM_URL", Settings.bluesky_jetstream_url),
        bluesky_firehose_url=check(_ws_url, env, "BLUESKY_FIREHOSE_URL", Settings.bluesky_firehose_url),
        mastodon_stream=check(_choice, env, "MASTODON_STREAM", "ON", ("ON", "OFF")) == "ON",
        mastodon_api_base_url=check(_url, env, "MASTODON_API_BASE_URL", None),
        mastodon_access_token=get("MASTODON_ACCESS_TOKEN"),
        x_bearer_token=get("X_BEARER_TOKEN"),
        x_api_key=get("X_API_KEY"),
        x_api_secret=get("X_API_SECRET"),
        x_access_token=get("X_ACCESS_TOKEN"),
        x_access_token_secret=get("X_ACCESS_TOKEN_SECRET"),
        x_api_base_url=check(_url, env, "X_API_BASE_URL", Settings.x_api_base_url),
        reddit_client_id=get("REDDIT_CLIENT_ID"),
        reddit_client_secret=get("REDDIT_CLIENT_SECRET"),
        reddit_username=get("REDDIT_USERNAME"),
        reddit_password=get("REDDIT_PASSWORD"),
        reddit_user_agent=get("REDDIT_USER_AGENT"),
        reddit_subreddits=check(_list, env, "REDDIT_SUBREDDITS") or ("all",),
        reddit_api_base_url=check(_url, env, "REDDIT_API_BASE_URL", Settings.reddit_api_base_url),
        reddit_auth_base_url=check(_url, env, "REDDIT_AUTH_BASE_URL", Settings.reddit_auth_base_url),
        poll_interval_seconds=check(_number, env, "POLL_INTERVAL_SECONDS", 60, minimum=5, integer=True),
        first_run_lookback_hours=check(_number, env, "FIRST_RUN_LOOKBACK_HOURS", 6.0, minimum=0),
        review_sla_minutes=check(_number, env, "REVIEW_SLA_MINUTES", 30.0, minimum=0.01),
        nudge_repeat_minutes=check(_number, env, "NUDGE_REPEAT_MINUTES", 60.0, minimum=0.01),
        digest_time=check(_clock, env, "DIGEST_TIME", "09:00"),
        digest_timezone=check(_timezone, env, "DIGEST_TIMEZONE"),
        business_hours=check(_business_hours, env, "BUSINESS_HOURS"),
        prompts_dir=Path(get("PROMPTS_DIR")) if get("PROMPTS_DIR") else None,
        log_level=check(_log_level, env, "LOG_LEVEL"),
        metrics_port=check(_port, env, "METRICS_PORT"),
        log_format=(check(_choice, env, "LOG_FORMAT", "text", ("TEXT", "JSON")) or "text").lower(),
    )
    accounts_file = Path(get("CONVERSANT_ACCOUNTS")) if get("CONVERSANT_ACCOUNTS") else None
    if accounts_file:
        try:
            found = load_accounts_file(accounts_file, env)
            settings = replace(settings, accounts_file=accounts_file, accounts=found.accounts, routes=found.routes)
        except AccountsError as error:
            problems.extend(str(error).splitlines())
    if problems:
        raise ConfigError(*problems)
    return settings


def _database_url(url: str) -> str:
    if not re.match(r"^(sqlite|postgres(ql)?)(\+\w+)?://", url):
        raise ConfigError("DATABASE_URL must be sqlite:///path.db or postgresql://user:password@host/db")
    return url


def _prefixed(env: dict, name: str, prefix: str) -> str | None:
    value = env.get(name)
    if value and not value.startswith(prefix):
        raise ConfigError(f"{name} must start with {prefix!r}")
    return value


def _url(env: dict, name: str, default: str | None, *, trailing_slash: bool = False) -> str | None:
    value = env.get(name, default)
    if value is None:
        return None
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{name} must be an http(s) URL, e.g. {default or 'https://example.com'}")
    return value.rstrip("/") + "/" if trailing_slash else value.rstrip("/")


def _ws_url(env: dict, name: str, default: str) -> str:
    value = env.get(name, default)
    if not re.match(r"^wss?://[^\s/]+", value):
        raise ConfigError(f"{name} must be a WebSocket URL, e.g. {default}")
    return value.rstrip("/")


def _channel(env: dict, name: str) -> str | None:
    value = env.get(name)
    if value and not re.fullmatch(r"[CGD][A-Z0-9_]+", value):
        raise ConfigError(f"{name} must be a Slack channel ID like C0123ABCD (not a #name)")
    return value


def _list(env: dict, name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _slack_ids(env: dict, name: str) -> tuple[str, ...]:
    ids = _list(env, name)
    bad = [i for i in ids if not re.fullmatch(r"[UWS][A-Z0-9_]+", i)]
    if bad:
        raise ConfigError(f"{name} must list Slack user IDs (U...) or user group IDs (S...); got {', '.join(bad)}")
    return ids


def _signoffs(env: dict, name: str) -> tuple[tuple[str, str], ...]:
    """``U123:JD,U456:AB``: each approver's initials, 1 to 4 letters or digits."""
    pairs = []
    for item in _list(env, name):
        user, _, initials = item.partition(":")
        if not re.fullmatch(r"[UW][A-Z0-9_]+", user.strip()) or not re.fullmatch(r"\w{1,4}", initials.strip()):
            raise ConfigError(f"{name} must list USER_ID:INITIALS pairs, e.g. U123ABC:JD,U456DEF:AB (initials of 1 to 4 "
                              f"letters or digits); got {item!r}")
        pairs.append((user.strip(), initials.strip()))
    return tuple(pairs)


def _number(env: dict, name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _clock(env: dict, name: str, default: str) -> time:
    raw = env.get(name, default)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", raw)
    if not match:
        raise ConfigError(f"{name} must be a time of day as HH:MM, got {raw!r}")
    return time(int(match[1]), int(match[2]))


def _timezone(env: dict, name: str) -> ZoneInfo:
    raw = env.get(name, "UTC")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone like Europe/Berlin, got {raw!r}") from None


def _business_hours(env: dict, name: str) -> BusinessHours | None:
    raw = env.get(name)
    if raw is None:
        return None
    match = re.fullmatch(r"(\w{3})(?:-(\w{3}))?\s+(\d\d:\d\d)-(\d\d:\d\d)", raw)
    if not match or match[1].lower() not in _DAYS or (match[2] and match[2].lower() not in _DAYS):
        raise ConfigError(f"{name} must look like 'Mon-Fri 09:00-18:00', got {raw!r}")
    first = _DAYS.index(match[1].lower())
    last = _DAYS.index((match[2] or match[1]).lower())
    days = frozenset((first + i) % 7 for i in range((last - first) % 7 + 1))
    start = _clock({name: match[3]}, name, "")
    end = _clock({name: match[4]}, name, "")
    if end <= start:
        raise ConfigError(f"{name} must end after it starts, got {raw!r}")
    return BusinessHours(days=days, start=start, end=end)


_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "WARN": "WARNING", "ERROR": "ERROR",
           "CRITICAL": "CRITICAL", "FATAL": "CRITICAL", "10": "DEBUG", "20": "INFO", "30": "WARNING", "40": "ERROR", "50": "CRITICAL"}


def _port(env: dict, name: str) -> int | None:
    if env.get(name) is None:
        return None
    port = _number(env, name, 0, minimum=1, integer=True)
    if port > 65535:
        raise ConfigError(f"{name} must be a TCP port from 1 to 65535, got {env[name]!r}")
    return port


def _log_level(env: dict, name: str) -> str:
    raw = env.get(name, "INFO")
    level = _LEVELS.get(raw.strip().upper())
    if level is None:
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL (any case), got {raw!r}")
    return level


def _choice(env: dict, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).upper()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
