"""The streams to run, from the settings and the enabled platforms.

X and Reddit have none: Reddit has no push API, and X's filtered stream needs a paid
API tier; both are polled at POLL_INTERVAL_SECONDS.
"""
from __future__ import annotations

from bot.config import Settings
from bot.platforms.streams.base import MentionStream


def enabled_streams(settings: Settings, platforms: dict) -> list[MentionStream]:
    streams: list[MentionStream] = []
    bluesky = platforms.get("bluesky")
    if bluesky is not None and settings.bluesky_stream == "jetstream":
        from bot.platforms.streams.jetstream import JetstreamStream

        streams.append(JetstreamStream(bluesky, settings.bluesky_jetstream_url, keywords=settings.brand_keywords,
                                       domains=settings.brand_allowed_domains))
    elif bluesky is not None and settings.bluesky_stream == "firehose":
        from bot.platforms.streams.firehose import FirehoseStream

        streams.append(FirehoseStream(bluesky, settings.bluesky_firehose_url, keywords=settings.brand_keywords,
                                      domains=settings.brand_allowed_domains))
    mastodon = platforms.get("mastodon")
    if mastodon is not None and settings.mastodon_stream:
        from bot.platforms.streams.mastodon import MastodonStream

        streams.append(MastodonStream(mastodon))
    return streams


def stream_source(settings: Settings, platform: str) -> str | None:
    """The source that pushes ``platform``'s mentions, or None when it is only polled."""
    if platform == "bluesky" and settings.bluesky_stream != "off":
        return settings.bluesky_stream
    if platform == "mastodon" and settings.mastodon_stream:
        return "mastodon"
    return None
