"""Build the adapters whose credentials are set."""
from __future__ import annotations

from bot.config import Settings
from bot.platforms.base import Platform


def enabled_platforms(settings: Settings) -> dict[str, Platform]:
    platforms: dict[str, Platform] = {}
    if settings.bluesky_enabled:
        from bot.platforms.bluesky import BlueskyPlatform

        platforms["bluesky"] = BlueskyPlatform(
            settings.bluesky_handle, settings.bluesky_app_password, settings.bluesky_pds_url, keywords=settings.brand_keywords
        )
    return platforms
