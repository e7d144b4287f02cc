"""Build the adapters whose credentials are set; half-set credentials are a configuration error."""
from __future__ import annotations

from bot.config import ConfigError, Settings
from bot.platforms.base import Platform

# The variables that together enable each platform (CONTRACT.md).
CREDENTIALS = {
    "bluesky": ("BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD"),
    "mastodon": ("MASTODON_API_BASE_URL", "MASTODON_ACCESS_TOKEN"),
    # Posting needs user context (OAuth 1.0a); the bearer token alone could read but never reply.
    "x": ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"),
    "reddit": ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USERNAME", "REDDIT_PASSWORD"),
}


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


def enabled_platforms(settings: Settings) -> dict[str, Platform]:
    platforms: dict[str, Platform] = {}
    for name in enabled_names(settings):
        platforms[name] = BUILDERS[name](settings)
    return platforms


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
