"""Bluesky's Jetstream: every new post of the network as JSON over a WebSocket.

Wire format (github.com/bluesky-social/jetstream): ``GET /subscribe?wantedCollections=app.bsky.feed.post
&cursor=<time_us>``; each text frame is one event ``{"did", "time_us", "kind": "commit" | "identity" |
"account", "commit": {"rev", "operation", "collection", "rkey", "record", "cid"}}``. ``time_us`` is the
cursor: microseconds since the epoch, and a reconnect with ``cursor`` replays from that time. We
rewind it a few seconds on every reconnect (events around the break may have been read but not
stored); the database drops what was stored already.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from bot.platforms.streams.base import Deliver, PostEvent, StreamBatch, StreamError
from bot.platforms.streams.brand_filter import BrandFilter

log = logging.getLogger(__name__)

POST = "app.bsky.feed.post"
REWIND_US = 5_000_000  # a reconnect replays the last 5 s
FLUSH_SECONDS = 1.0  # with nothing found, the cursor is still saved this often
MAX_FRAME = 2 ** 20


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_micros(time_us: int) -> datetime:
    return datetime.fromtimestamp(time_us / 1_000_000, timezone.utc)


class JetstreamStream:
    platform = "bluesky"
    source = "jetstream"
    replay_window = timedelta(hours=1)  # Jetstream keeps more; past an hour one poll is cheaper than the replay

    def __init__(self, bluesky, url: str, *, keywords: tuple[str, ...] = (), domains: tuple[str, ...] = (),
                 open_timeout: float = 10.0) -> None:
        self.bluesky = bluesky  # BlueskyPlatform: the brand's DID, and posts → mentions
        self.endpoint = url
        self.keywords, self.domains = keywords, domains
        self._open_timeout = open_timeout

    def url(self, cursor: dict | None) -> str:
        query = [("wantedCollections", POST)]
        if cursor and cursor.get("time_us"):
            query.append(("cursor", str(max(0, int(cursor["time_us"]) - REWIND_US))))
        return f"{self.endpoint}?{urlencode(query)}"

    def check(self) -> str:
        with self._connect(None):
            return f"Jetstream answers at {self.endpoint}"

    def _connect(self, cursor: dict | None):
        try:
            return connect(self.url(cursor), open_timeout=self._open_timeout, max_size=MAX_FRAME, compression=None,
                           user_agent_header="Conversant", proxy=None)
        except (OSError, WebSocketException, TimeoutError) as error:
            raise StreamError(self.platform, f"cannot connect to Jetstream at {self.endpoint}: {_describe(error)}") from None

    def run(self, cursor: dict | None, deliver: Deliver, stop: threading.Event) -> None:
        self.bluesky.check_login()  # the brand's DID
        reader = FrameReader(BrandFilter(self.bluesky.did, keywords=self.keywords, domains=self.domains))
        with self._connect(cursor) as socket:
            log.info("bluesky: reading Jetstream at %s", self.endpoint)
            deliver(StreamBatch(mentions=[], cursor=None))  # connected
            last_flush = time.monotonic()
            while not stop.is_set():
                try:
                    frame = socket.recv(timeout=0.5)
                except TimeoutError:
                    frame = None
                except (WebSocketException, OSError) as error:
                    raise StreamError(self.platform, f"Jetstream connection lost: {_describe(error)}") from None
                if frame is not None:
                    reader.read(frame)
                if reader.found or (reader.cursor_moved and time.monotonic() - last_flush >= FLUSH_SECONDS):
                    deliver(reader.batch(self.bluesky))
                    last_flush = time.monotonic()


class FrameReader:
    """Jetstream frames in, the posts that concern the brand out, and the cursor after them."""

    def __init__(self, brand: BrandFilter) -> None:
        self.brand = brand
        self.found: list[tuple[PostEvent, str]] = []
        self.time_us: int | None = None
        self.cursor_moved = False
        self.posts_read = 0

    def read(self, frame: str | bytes) -> tuple[PostEvent, str] | None:
        raw = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        if not self.brand.might_match(raw):
            self._advance(_time_us(raw))
            self.posts_read += 1
            return None
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("bluesky: Jetstream sent a frame that is not JSON; skipped")
            return None
        if not isinstance(event, dict):
            return None
        self._advance(event.get("time_us"))
        commit = event.get("commit")
        if event.get("kind") != "commit" or not isinstance(commit, dict):
            return None
        if commit.get("operation") != "create" or commit.get("collection") != POST:
            return None
        self.posts_read += 1
        did, record = event.get("did"), commit.get("record")
        reason = self.brand.reason(did, record) if isinstance(did, str) else None
        if reason is None:
            return None
        post = PostEvent(uri=f"at://{did}/{POST}/{commit.get('rkey')}", cid=str(commit.get("cid") or ""),
                         author_did=did, record=record, at=from_micros(self.time_us or 0))
        self.found.append((post, reason))
        return post, reason

    def _advance(self, time_us) -> None:
        if isinstance(time_us, int) and (self.time_us is None or time_us > self.time_us):
            self.time_us, self.cursor_moved = time_us, True

    def batch(self, bluesky) -> StreamBatch:
        found, self.found = self.found, []
        mentions = bluesky.mentions_from_posts(found) if found else []
        newest = from_micros(self.time_us) if self.time_us else None
        batch = StreamBatch(mentions=mentions, cursor={"time_us": self.time_us, "at": newest.isoformat() if newest else None},
                            newest_at=newest, posts_read=self.posts_read)
        self.cursor_moved, self.posts_read = False, 0
        return batch


def _time_us(raw: str) -> int | None:
    """The event's ``time_us`` without parsing the whole frame."""
    start = raw.find('"time_us":')
    if start < 0:
        return None
    start += 10
    end = start
    while end < len(raw) and (raw[end].isdigit() or raw[end] == " "):
        end += 1
    try:
        return int(raw[start:end])
    except ValueError:
        return None


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
