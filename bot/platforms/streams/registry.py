"""The streams to run, from the settings and the brand's accounts.

X and Reddit have none: Reddit has no push API, and X's filtered stream needs a paid
API tier; both are polled at POLL_INTERVAL_SECONDS.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.accounts import Account
from bot.config import Settings
from bot.platforms.streams.base import MentionStream

if TYPE_CHECKING:
    from bot.brand import Brand


def account_streams(settings: Settings, brand: Brand) -> list[tuple[Account, MentionStream]]:
    """The streams a worker runs, each with the account it reads for."""
    sources = streamed_accounts(settings, brand)
    return [(a, stream_for(settings, a.platform, brand.adapters[a.id])) for a in brand.accounts if a.id in sources]


def streamed_accounts(settings: Settings, brand: Brand) -> dict[str, str]:
    """The source that pushes each account's mentions, by account id; an account only polled is absent.

    Mastodon pushes each account's notifications on that account's own stream: one per account.
    A Bluesky stream (Jetstream, the firehose) carries the whole network's posts, so one
    connection is kept, for the platform's first account; the brand's other Bluesky accounts
    are polled.
    """
    first_bluesky = next(iter(brand.on("bluesky")), None)
    return {account.id: source for account in brand.accounts
            if account.id in brand.adapters and (account.platform != "bluesky" or account == first_bluesky)
            and (source := stream_source(settings, account.platform)) is not None}


def stream_for(settings: Settings, platform: str, adapter) -> MentionStream | None:
    """The stream of one account (its adapter's login), or None when ``platform`` is only polled."""
    source = stream_source(settings, platform)
    if source == "jetstream":
        from bot.platforms.streams.jetstream import JetstreamStream

        return JetstreamStream(adapter, settings.bluesky_jetstream_url, keywords=settings.brand_keywords,
                               domains=settings.brand_allowed_domains)
    if source == "firehose":
        from bot.platforms.streams.firehose import FirehoseStream

        return FirehoseStream(adapter, settings.bluesky_firehose_url, keywords=settings.brand_keywords,
                              domains=settings.brand_allowed_domains)
    if source == "mastodon":
        from bot.platforms.streams.mastodon import MastodonStream

        return MastodonStream(adapter)
    return None


def stream_source(settings: Settings, platform: str) -> str | None:
    """The source that pushes ``platform``'s mentions, or None when it is only polled."""
    if platform == "bluesky" and settings.bluesky_stream != "off":
        return settings.bluesky_stream
    if platform == "mastodon" and settings.mastodon_stream:
        return "mastodon"
    return None
