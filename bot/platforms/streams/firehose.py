"""The AT Protocol firehose (``com.atproto.sync.subscribeRepos``) through the atproto SDK's client.

Each frame is a commit of one repo: DAG-CBOR, with the new records in a CAR file.
The cursor is the relay's (or PDS's) ``seq``; a reconnect with ``cursor`` replays
every event after it. A ``#info OutdatedCursor`` says the server no longer holds
the events after our cursor: the runner fills that gap with one polling pass.

Post texts and DIDs are UTF-8 strings inside the CBOR, so the brand filter's
substring pre-check runs on the raw frame before anything is decoded.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from atproto import CAR, FirehoseSubscribeReposClient, models, parse_subscribe_repos_message

from bot.platforms.streams.base import Deliver, PostEvent, StreamBatch, StreamError
from bot.platforms.streams.brand_filter import BrandFilter

log = logging.getLogger(__name__)

POST = "app.bsky.feed.post"
FLUSH_SECONDS = 1.0


class _OneConnection(FirehoseSubscribeReposClient):
    """The SDK's client, but a broken connection ends ``start`` (our runner reconnects, counts and tells)."""

    failure: BaseException | None = None
    on_connected = None

    def _get_client(self):
        client = super()._get_client()  # the handshake is done: the stream is open
        if self.on_connected is not None:
            self.on_connected()
        return client

    def _handle_websocket_error_or_stop(self, exception: Exception) -> bool:
        if not self._stopped:
            self.failure = exception
        return True


class FirehoseStream:
    platform = "bluesky"
    source = "firehose"
    replay_window = timedelta(hours=1)

    def __init__(self, bluesky, url: str, *, keywords: tuple[str, ...] = (), domains: tuple[str, ...] = ()) -> None:
        self.bluesky = bluesky
        self.endpoint = url
        self.keywords, self.domains = keywords, domains

    def _client(self, cursor: dict | None) -> _OneConnection:
        params = {"cursor": int(cursor["seq"])} if cursor and cursor.get("seq") is not None else None
        # No idle timeout: a quiet PDS may send nothing for minutes; websockets' pings find a dead connection.
        return _OneConnection(params=params, base_uri=f"{self.endpoint.rstrip('/')}/xrpc", recv_timeout=None)

    def check(self) -> str:
        from websockets.sync.client import connect

        try:
            with connect(f"{self.endpoint.rstrip('/')}/xrpc/com.atproto.sync.subscribeRepos", open_timeout=10, proxy=None):
                return f"the firehose answers at {self.endpoint}"
        except Exception as error:  # noqa: BLE001 - any failure to open is the answer
            raise StreamError(self.platform, f"cannot connect to the firehose at {self.endpoint}: {type(error).__name__}") from None

    def run(self, cursor: dict | None, deliver: Deliver, stop: threading.Event) -> None:
        self.bluesky.check_login()
        reader = CommitReader(BrandFilter(self.bluesky.did, keywords=self.keywords, domains=self.domains))
        client = self._client(cursor)
        errors: list[BaseException] = []
        last_flush = time.monotonic()
        client.on_connected = lambda: deliver(StreamBatch(mentions=[], cursor=None))

        def on_frame(frame) -> None:
            nonlocal last_flush
            reader.read(frame)
            if reader.gap or reader.found or (reader.cursor_moved and time.monotonic() - last_flush >= FLUSH_SECONDS):
                deliver(reader.batch(self.bluesky))
                last_flush = time.monotonic()

        def on_error(error: BaseException) -> None:  # a failed delivery (the database): reconnect from the stored cursor
            errors.append(error)
            client.stop()

        def watch() -> None:
            while not stop.wait(0.5) and not client._stopped:
                pass
            client.stop()

        threading.Thread(target=watch, name="firehose-stop", daemon=True).start()
        log.info("bluesky: reading the firehose at %s", self.endpoint)
        try:
            client.start(on_frame, on_error)
        finally:
            client.stop()
        if errors:
            raise errors[0]
        if client.failure is not None and not stop.is_set():
            raise StreamError(self.platform, f"the firehose connection broke: {type(client.failure).__name__}")


class CommitReader:
    """Firehose frames in; the posts that concern the brand out, and the ``seq`` after them."""

    def __init__(self, brand: BrandFilter) -> None:
        self.brand = brand
        self._needles = tuple(n.encode() for n in brand._needles if n.isascii())
        self._check_raw = all(n.isascii() for n in brand._needles)
        self.found: list[tuple[PostEvent, str]] = []
        self.seq: int | None = None
        self.newest_at: datetime | None = None
        self.cursor_moved = False
        self.gap = False
        self.posts_read = 0

    def read(self, frame) -> None:
        message = parse_subscribe_repos_message(frame)
        if isinstance(message, models.ComAtprotoSyncSubscribeRepos.Info):
            if message.name == "OutdatedCursor":
                log.warning("bluesky: the firehose no longer holds the events after our cursor (%s)", message.message)
                self.gap = True
            return
        seq = getattr(message, "seq", None)
        if isinstance(seq, int):
            self.seq, self.cursor_moved = seq, True
            self.newest_at = datetime.now(timezone.utc)
        if not isinstance(message, models.ComAtprotoSyncSubscribeRepos.Commit):
            return
        creates = [op for op in message.ops if op.action == "create" and op.path.startswith(POST + "/")]
        if not creates:
            return
        self.posts_read += len(creates)
        if self._check_raw and not self._might_match(message.blocks):
            return
        blocks = CAR.from_bytes(message.blocks).blocks
        for op in creates:
            record = blocks.get(op.cid)
            reason = self.brand.reason(message.repo, record) if isinstance(record, dict) else None
            if reason is not None:
                uri = f"at://{message.repo}/{op.path}"
                self.found.append((PostEvent(uri=uri, cid=str(op.cid), author_did=message.repo, record=record,
                                             at=self.newest_at or datetime.now(timezone.utc)), reason))

    def _might_match(self, blocks: bytes) -> bool:
        low = blocks.lower()
        return any(needle in low for needle in self._needles)

    def batch(self, bluesky) -> StreamBatch:
        found, self.found = self.found, []
        mentions = bluesky.mentions_from_posts(found) if found else []
        batch = StreamBatch(mentions=mentions, cursor={"seq": self.seq, "at": (self.newest_at or datetime.now(timezone.utc)).isoformat()},
                            newest_at=self.newest_at, posts_read=self.posts_read, gap=self.gap)
        self.cursor_moved, self.posts_read, self.gap = False, 0, False
        return batch
