"""Mastodon's user notification stream: mentions pushed as server-sent events, through Mastodon.py.

``GET /api/v1/streaming/user/notification`` on the instance's streaming host sends
``event: notification`` with the Notification entity as ``data``. The stream has no
replay, so each connection first opens the stream (buffering what it pushes), then reads
the notifications after the stored cursor (``min_id``, the backfill), then hands over the
buffer; what both saw is dropped by the database.
"""
from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timedelta, timezone

from mastodon import StreamListener
from mastodon.errors import MastodonError

from bot.platforms.streams.base import Deliver, StreamBatch, StreamError

log = logging.getLogger(__name__)

READ_TIMEOUT = 60.0  # Mastodon sends a heartbeat every 15 s: a minute of silence is a dead connection
OPEN_TIMEOUT = 30.0
_CONNECTED, _CLOSED = object(), object()


class _Stopped(Exception):
    pass


class _Listener(StreamListener):
    """Hands events to the consumer's queue; ends the SDK's blocking read once ``stop`` is set."""

    def __init__(self, events: queue.Queue, stop: threading.Event) -> None:
        super().__init__()
        self.events, self.stop = events, stop
        self.connected = False

    def on_notification(self, notification) -> None:
        self._connected()
        self.events.put(notification)

    def handle_heartbeat(self) -> None:
        self._connected()  # Mastodon opens every stream with a comment line
        if self.stop.is_set():
            raise _Stopped

    def _connected(self) -> None:
        if not self.connected:
            self.connected = True
            self.events.put(_CONNECTED)

    def on_abort(self, err) -> None:
        """Nothing to do: the SDK raises the error too, and the pump reports it."""

    def on_unknown_event(self, name, unknown_event=None) -> None:
        """Newer servers send events we do not need: never a reason to drop the stream."""


class MastodonStream:
    platform = "mastodon"
    source = "mastodon"
    replay_window = timedelta(days=7)  # the backfill pages notifications: any gap it can read is no gap

    def __init__(self, mastodon, *, read_timeout: float = READ_TIMEOUT) -> None:
        self.mastodon = mastodon  # MastodonPlatform
        self.endpoint = f"{mastodon.api_base_url} (/api/v1/streaming/user/notification)"
        self._read_timeout = read_timeout

    def check(self) -> str:
        try:
            healthy = self.mastodon._api.stream_healthy()
        except MastodonError as error:
            raise StreamError(self.platform, f"the Mastodon streaming API does not answer: {type(error).__name__}") from None
        if not healthy:
            raise StreamError(self.platform, "the Mastodon streaming API says it is not healthy")
        return f"Mastodon streaming answers for {self.mastodon.api_base_url}"

    def run(self, cursor: dict | None, deliver: Deliver, stop: threading.Event) -> None:
        self.mastodon.check_login()
        events: queue.Queue = queue.Queue()
        ended = threading.Event()  # this connection's end: the pump stops reading
        threading.Thread(target=self._pump, args=(_Listener(events, ended), events), name="mastodon-stream", daemon=True).start()
        try:
            self._wait_connected(events, stop)
            log.info("mastodon: reading the user notification stream")
            deliver(StreamBatch(mentions=[], cursor=None))  # connected
            newest_id = cursor.get("min_id") if cursor else None
            if newest_id:  # the backfill: what came while no stream was open (the stream buffers meanwhile)
                backlog, after = self.mastodon.notifications_after(newest_id)
                if backlog:
                    deliver(self._batch(backlog, after["min_id"]))
                    newest_id = after["min_id"]
            while not stop.is_set():
                try:
                    item = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is _CLOSED or isinstance(item, BaseException):
                    raise StreamError(self.platform, f"the Mastodon notification stream broke: {_describe(item)}")
                if item is _CONNECTED:
                    continue
                if newest_id is None or int(item.id) > int(newest_id):
                    newest_id = str(item.id)
                deliver(self._batch([item], newest_id))
        finally:
            ended.set()

    def _pump(self, listener: _Listener, events: queue.Queue) -> None:
        """The SDK's blocking read, on a thread of its own; its end or error goes into the queue."""
        try:
            self.mastodon._api.stream_user_notifications(listener, run_async=False, timeout=self._read_timeout)
            events.put(_CLOSED)
        except _Stopped:
            pass
        except Exception as error:  # noqa: BLE001 - handed to the consumer, which reconnects
            events.put(error)

    def _wait_connected(self, events: queue.Queue, stop: threading.Event) -> None:
        try:
            item = events.get(timeout=OPEN_TIMEOUT)
        except queue.Empty:
            raise StreamError(self.platform, "the Mastodon notification stream did not open") from None
        if item is not _CONNECTED:
            raise StreamError(self.platform, f"cannot open the Mastodon notification stream: {_describe(item)}")

    def _batch(self, notifications: list, newest_id: str) -> StreamBatch:
        newest_at = max(n.created_at for n in notifications).astimezone(timezone.utc)
        return StreamBatch(mentions=self.mastodon.mentions_from_notifications(notifications),
                           cursor={"min_id": str(newest_id), "at": datetime.now(timezone.utc).isoformat()},
                           newest_at=newest_at, posts_read=len(notifications))


def _describe(error) -> str:
    return (str(error) or type(error).__name__) if isinstance(error, BaseException) else "closed"
