"""Build one adapter per brand account; half-set credentials are a configuration error.

The accounts come from the accounts file (``CONVERSANT_ACCOUNTS``), else one per platform from
the single-account variables, with the platform's name as the account's id (``bluesky``).
"""
from __future__ import annotations

from dataclasses import replace

from bot.accounts import CREDENTIALS, HANDLE_VARIABLE, Account
from bot.config import ConfigError, Settings
from bot.platforms.base import Platform


def enabled_names(settings: Settings) -> list[str]:
    enabled = []
    for name, variables in CREDENTIALS.items():
        present = [v for v in variables if getattr(settings, v.lower())]
        if present and len(present) < len(variables):
            missing = ", ".join(v for v in variables if v not in present)
            raise ConfigError(f"{missing} must be set too, or {name} stays off (its other credentials are set)")
        if present:
            enabled.append(name)
    if settings.x_bearer_token and "x" not in enabled:
        raise ConfigError("X_BEARER_TOKEN alone cannot reply; set X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET too")
    return enabled


def enabled_accounts(settings: Settings) -> tuple[Account, ...]:
    """The brand's accounts, in the file's order (or Bluesky, Mastodon, X, Reddit)."""
    if settings.accounts_file:
        return settings.accounts
    return tuple(_shorthand_account(settings, name) for name in enabled_names(settings))


def _shorthand_account(settings: Settings, name: str) -> Account:
    handle = getattr(settings, HANDLE_VARIABLE[name].lower()) if name in HANDLE_VARIABLE else None
    return Account(id=name, platform=name, handle=handle, allowed_domains=settings.brand_allowed_domains,
                   keywords=settings.brand_keywords)


def account_platforms(settings: Settings) -> dict[str, Platform]:
    """One adapter (one login) per account, by account id."""
    return {account.id: BUILDERS[account.platform](settings_for(settings, account)) for account in enabled_accounts(settings)}


def settings_for(settings: Settings, account: Account) -> Settings:
    """The settings an adapter reads, with this account's credentials and keywords."""
    if not settings.accounts_file:
        return settings
    values = {name.lower(): value for name, value in account.secrets.items()}
    if "bluesky_handle" in values:
        values["bluesky_handle"] = values["bluesky_handle"].lstrip("@")
    if "reddit_subreddits" in values:
        values["reddit_subreddits"] = tuple(s.strip() for s in values["reddit_subreddits"].split(",") if s.strip()) or ("all",)
    for url in ("bluesky_pds_url", "mastodon_api_base_url"):
        if url in values:
            values[url] = values[url].rstrip("/")
    return replace(settings, brand_keywords=account.keywords, **values)


def _bluesky(s: Settings) -> Platform:
    from bot.platforms.bluesky import BlueskyPlatform

    return BlueskyPlatform(s.bluesky_handle, s.bluesky_app_password, s.bluesky_pds_url, keywords=s.brand_keywords)


def _mastodon(s: Settings) -> Platform:
    from bot.platforms.mastodon import MastodonPlatform

    return MastodonPlatform(s.mastodon_api_base_url, s.mastodon_access_token, keywords=s.brand_keywords)


def _x(s: Settings) -> Platform:
    from bot.platforms.x import XPlatform

    return XPlatform(
        api_key=s.x_api_key, api_secret=s.x_api_secret,
        access_token=s.x_access_token, access_token_secret=s.x_access_token_secret,
        bearer_token=s.x_bearer_token,  # optional: searches then count against the app's larger limit
        keywords=s.brand_keywords, api_base_url=s.x_api_base_url,
    )


def _reddit(s: Settings) -> Platform:
    from bot.platforms.reddit import RedditPlatform

    return RedditPlatform(
        s.reddit_client_id, s.reddit_client_secret, s.reddit_username, s.reddit_password, s.reddit_user_agent,
        subreddits=s.reddit_subreddits, keywords=s.brand_keywords,
        oauth_url=s.reddit_api_base_url, reddit_url=s.reddit_auth_base_url,
    )


BUILDERS = {"bluesky": _bluesky, "mastodon": _mastodon, "x": _x, "reddit": _reddit}
