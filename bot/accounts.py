"""The brand's accounts: read from the accounts file (``CONVERSANT_ACCOUNTS``), or one per platform
from today's single-account variables (see ``bot/platforms/registry.py``).

The file names the environment variables that hold each account's credentials, never the
secrets themselves. It is read strictly: an unknown key, a duplicate id, an unknown platform,
a missing variable are each one line naming the account (``AccountsError``; config.py turns it
into a ConfigError). Routing rules (bot/routing.py) live in the same file.

    [[accounts]]
    id = "support"
    platform = "bluesky"
    credentials = { BLUESKY_HANDLE = "SUPPORT_BSKY_HANDLE", BLUESKY_APP_PASSWORD = "SUPPORT_BSKY_PASSWORD" }
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.routing import DEFAULT, MATCH_KEYS, Route, Routes

# The variables that together enable each platform (CONTRACT.md), and those an account may add.
CREDENTIALS = {
    "bluesky": ("BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD"),
    "mastodon": ("MASTODON_API_BASE_URL", "MASTODON_ACCESS_TOKEN"),
    # Posting needs user context (OAuth 1.0a); the bearer token alone could read but never reply.
    "x": ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"),
    "reddit": ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USERNAME", "REDDIT_PASSWORD"),
}
OPTIONAL_CREDENTIALS = {
    "bluesky": ("BLUESKY_PDS_URL",),
    "mastodon": (),
    "x": ("X_BEARER_TOKEN",),
    "reddit": ("REDDIT_USER_AGENT", "REDDIT_SUBREDDITS"),
}
# The credential that is the account's own name, for "Replying as @…" and for mentions of it.
HANDLE_VARIABLE = {"bluesky": "BLUESKY_HANDLE", "reddit": "REDDIT_USERNAME"}

ACCOUNT_KEYS = ("id", "platform", "display_name", "handle", "voice", "allowed_domains", "keywords", "review_channel", "credentials")
ROUTE_KEYS = ("name", "channel", "oncall") + MATCH_KEYS
TOP_KEYS = ("accounts", "routes", "default_route")
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,19}")  # short: it keys cursors and the platform status
_CHANNEL = re.compile(r"[CG][A-Z0-9_]+")
_SLACK_ID = re.compile(r"[UWS][A-Z0-9_]+")


class AccountsError(ValueError):
    """The accounts file is wrong: one line per problem."""


@dataclass(frozen=True)
class Account:
    id: str
    platform: str
    display_name: str | None = None
    handle: str | None = None  # without the @: "acmesupport.bsky.social", "AcmeSupport"
    voice: Path | None = None  # its own voice prompt; None: the shared prompts/voice.md
    allowed_domains: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    review_channel: str | None = None
    # setting name (BLUESKY_HANDLE) → its value, read from the variable the file names; never logged
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """How people see the account: ``@handle``, else its display name, else its id."""
        return f"@{self.handle}" if self.handle else self.display_name or self.id


@dataclass(frozen=True)
class AccountsFile:
    accounts: tuple[Account, ...]
    routes: Routes


def load_accounts_file(path: Path, environ: Mapping[str, str]) -> AccountsFile:
    """Read and check the file; ``environ`` holds the variables its credentials name."""
    where = f"CONVERSANT_ACCOUNTS={path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccountsError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise AccountsError(f"{where}: cannot be read ({error.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as error:
        raise AccountsError(f"{where}: not valid TOML ({error})") from None
    problems: list[str] = []
    _unknown_keys(data, TOP_KEYS, where, problems)
    accounts = _accounts(_tables(data, "accounts", where, problems), path.parent, environ, where, problems)
    routes = _routes(data, {a.id for a in accounts}, where, problems)
    if not accounts and not problems:
        problems.append(f"{where}: lists no [[accounts]]")
    if problems:
        raise AccountsError("\n".join(problems))
    return AccountsFile(tuple(accounts), routes)


def first_mentioned(accounts: Iterable[Account], text: str) -> Account | None:
    """Of ``accounts``, the one whose @handle comes first in ``text`` (None: none is mentioned)."""
    found = []
    for account in accounts:
        if not account.handle:
            continue
        # "@acme.bsky.social", Mastodon's "@support" (of "support@mastodon.social"), Reddit's "u/AcmeHelp"
        local = re.escape(account.handle.split("@")[0])
        match = re.search(rf"(?<![\w@])(?:u/|@){local}(?![\w-]|\.\w)", text, re.IGNORECASE)
        if match:
            found.append((match.start(), account))
    return min(found, key=lambda pair: pair[0])[1] if found else None


# -- reading the file ---------------------------------------------------------------------------


def _accounts(tables: list[dict], folder: Path, environ: Mapping[str, str], where: str, problems: list[str]) -> list[Account]:
    accounts: list[Account] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, 1):
        name = f"{where}: account {table.get('id', f'#{number}')!r}"
        before = len(problems)
        _unknown_keys(table, ACCOUNT_KEYS, name, problems)
        account_id, platform = table.get("id"), table.get("platform")
        if not isinstance(account_id, str) or not _ID.fullmatch(account_id):
            problems.append(f"{name}: id must be 1-20 lower-case letters, digits, '-' or '_'")
        elif account_id in seen:
            problems.append(f"{name}: the id is used twice; each account needs its own")
        seen.add(account_id)
        if platform not in CREDENTIALS:
            problems.append(f"{name}: platform must be one of {', '.join(CREDENTIALS)}, got {platform!r}")
            continue
        secrets = _secrets(table.get("credentials"), platform, environ, name, problems)
        voice = _voice(table.get("voice"), folder, name, problems)
        channel = _string(table, "review_channel", name, problems)
        if channel and not _CHANNEL.fullmatch(channel):
            problems.append(f"{name}: review_channel must be a Slack channel ID like C0123ABCD (not a #name)")
        if len(problems) > before:
            continue
        handle = _string(table, "handle", name, problems) or secrets.get(HANDLE_VARIABLE.get(platform, ""))
        accounts.append(Account(
            id=account_id, platform=platform, display_name=_string(table, "display_name", name, problems),
            handle=handle.lstrip("@") if handle else None, voice=voice,
            allowed_domains=tuple(d.lower().removeprefix("www.") for d in _strings(table, "allowed_domains", name, problems)),
            keywords=_strings(table, "keywords", name, problems), review_channel=channel, secrets=secrets,
        ))
    return accounts


def _secrets(credentials: object, platform: str, environ: Mapping[str, str], name: str, problems: list[str]) -> dict[str, str]:
    """Each credential from the variable the file names for it."""
    if not isinstance(credentials, dict):
        problems.append(f"{name}: credentials must be a table naming the variables, e.g. "
                        f"credentials = {{ {CREDENTIALS[platform][0]} = \"MY_{CREDENTIALS[platform][0]}\" }}")
        return {}
    allowed = CREDENTIALS[platform] + OPTIONAL_CREDENTIALS[platform]
    secrets: dict[str, str] = {}
    for setting, variable in credentials.items():
        if setting not in allowed:
            problems.append(f"{name}: unknown credential {setting!r}; {platform} takes {', '.join(allowed)}")
        elif not isinstance(variable, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
            problems.append(f"{name}: credentials.{setting} must be the NAME of an environment variable, not its value")
        elif not (environ.get(variable) or "").strip():
            problems.append(f"{name}: environment variable {variable} (its {setting}) is not set")
        else:
            secrets[setting] = environ[variable].strip()
    missing = [s for s in CREDENTIALS[platform] if s not in credentials]
    if missing:
        problems.append(f"{name}: credentials must name the variables for {', '.join(missing)}")
    return secrets


def _voice(value: object, folder: Path, name: str, problems: list[str]) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{name}: voice must be the path of a prompt file")
        return None
    path = Path(value) if Path(value).is_absolute() else folder / value  # relative to the accounts file
    if not path.is_file():
        problems.append(f"{name}: voice file {path} does not exist")
        return None
    return path


def _routes(data: dict, account_ids: set[str], where: str, problems: list[str]) -> Routes:
    rules = []
    for number, table in enumerate(_tables(data, "routes", where, problems), 1):
        rule = _route(table, f"{where}: route {table.get('name', f'#{number}')!r}", account_ids, problems, number)
        if rule is not None and not rule.when:
            problems.append(f"{where}: route {rule.name!r} matches everything; say what it matches, or make it the [default_route]")
        elif rule is not None:
            rules.append(rule)
    names = [r.name for r in rules]
    for twice in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{where}: route {twice!r} is named twice; each route needs its own name")
    default = Route(DEFAULT)
    if "default_route" in data:
        table = data["default_route"]
        if not isinstance(table, dict):
            problems.append(f"{where}: default_route must be a table ([default_route])")
        else:
            parsed = _route({"name": DEFAULT, **table}, f"{where}: default_route", account_ids, problems, 0)
            if parsed is not None and parsed.when:
                problems.append(f"{where}: default_route catches the rest; it cannot match on {', '.join(k for k, _ in parsed.when)}")
            elif parsed is not None:
                default = parsed
    return Routes(tuple(rules), default)


def _route(table: dict, name: str, account_ids: set[str], problems: list[str], number: int) -> Route | None:
    before = len(problems)
    _unknown_keys(table, ROUTE_KEYS, name, problems)
    channel = _string(table, "channel", name, problems)
    if channel and not _CHANNEL.fullmatch(channel):
        problems.append(f"{name}: channel must be a Slack channel ID like C0123ABCD (not a #name)")
    oncall = _strings(table, "oncall", name, problems)
    bad = [i for i in oncall if not _SLACK_ID.fullmatch(i)]
    if bad:
        problems.append(f"{name}: oncall must list Slack user IDs (U...) or user group IDs (S...); got {', '.join(bad)}")
    when = []
    for key in MATCH_KEYS:
        if key in table:
            values = tuple(v.lower() for v in _strings(table, key, name, problems))
            if not values:
                problems.append(f"{name}: {key} must not be empty")
            when.append((key, values))
    unknown_accounts = [a for k, values in when if k == "account" for a in values if a not in account_ids]
    if unknown_accounts:
        problems.append(f"{name}: no account has the id {', '.join(map(repr, unknown_accounts))}")
    unknown_platforms = [p for k, values in when if k == "platform" for p in values if p not in CREDENTIALS]
    if unknown_platforms:
        problems.append(f"{name}: platform must be one of {', '.join(CREDENTIALS)}, got {', '.join(map(repr, unknown_platforms))}")
    if len(problems) > before:
        return None
    return Route(str(table.get("name") or f"route {number}"), channel, oncall, tuple(when))


def _tables(data: dict, key: str, where: str, problems: list[str]) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(f"{where}: {key} must be a list of tables ([[{key}]])")
        return []
    return value


def _unknown_keys(table: dict, known: tuple[str, ...], name: str, problems: list[str]) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        problems.append(f"{name}: unknown key {', '.join(map(repr, unknown))}; known keys are {', '.join(known)}")


def _string(table: dict, key: str, name: str, problems: list[str]) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{name}: {key} must be a string")
        return None
    return value.strip() or None if value is not None else None


def _strings(table: dict, key: str, name: str, problems: list[str]) -> tuple[str, ...]:
    """A string or a list of strings."""
    value = table.get(key, [])
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        problems.append(f"{name}: {key} must be a string or a list of strings")
        return ()
    return tuple(v.strip() for v in values if v.strip())
