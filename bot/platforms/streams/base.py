"""Push sources of mentions: what every stream hands to ``bot/streaming.py``.

A stream connects once per ``run`` call, reads until ``stop`` is set or the
connection fails, and hands over what it found with ``deliver``. The runner
stores each batch's mentions and its cursor in one transaction, so a crash
between the two cannot skip a mention; it reconnects, and fills a gap the
stream cannot replay with one polling pass.

Errors: a stream raises ``StreamError`` (or any ``PlatformError``) when its
connection fails; the runner counts it, backs off and reconnects.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.platforms.base import Mention, Unavailable


@dataclass(frozen=True)
class PostEvent:
    """One new Bluesky post read from a stream, before it is known to concern the brand."""

    uri: str
    cid: str
    author_did: str
    record: dict  # the app.bsky.feed.post record, as JSON
    at: datetime  # when the stream saw it


@dataclass
class StreamBatch:
    """Mentions read since the last batch, and where to resume once they are stored."""

    mentions: list[Mention]
    cursor: dict  # the stream's own position; always holds "at" (ISO time of the newest event read)
    newest_at: datetime | None = None
    posts_read: int = 0  # how many posts the stream looked at for this batch
    gap: bool = False  # the server could not replay from our cursor: one polling pass fills the gap


Deliver = Callable[[StreamBatch], None]


class MentionStream(Protocol):
    platform: str  # the platform whose mentions it pushes, e.g. "bluesky"
    source: str  # e.g. "jetstream", "firehose", "mastodon"
    endpoint: str  # what it connects to, for doctor and the logs (no secrets)
    replay_window: timedelta  # how far back a stored cursor can be replayed; older is a gap

    def run(self, cursor: dict | None, deliver: Deliver, stop: threading.Event) -> None:
        """Connect (resuming after ``cursor``), deliver batches until ``stop`` is set; raise when the connection fails."""

    def check(self) -> str:
        """Connect once and describe the endpoint (``doctor``); raise StreamError when it does not answer."""


class StreamError(Unavailable):
    """The stream's connection could not be opened or broke; the runner reconnects."""
