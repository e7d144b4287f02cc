"""FakeMastodon plus its streaming API, as docs.joinmastodon.org/methods/streaming documents it.

``GET /api/v1/streaming/user/notification`` (a token with ``read:notifications``) answers with
server-sent events: ``event: notification`` and ``data: <the Notification entity as JSON>``, a
blank line after each event, and ``:thump`` comment lines as heartbeats. ``GET
/api/v1/streaming/health`` answers ``OK``. The instance advertises this server as its streaming
URL (``urls.streaming_api``), as Mastodon does when streaming runs on its own host.
"""
from __future__ import annotations

import json
import queue
import threading

from .http import Request, Response
from .mastodon_api import FakeMastodon, _STATUS_MESSAGES

HEARTBEAT_SECONDS = 0.5  # Mastodon sends one every 15 s; a short one keeps the tests quick to notice a drop


class FakeMastodonStreaming(FakeMastodon):
    def __init__(self) -> None:
        self.streaming_down = False  # refuse to stream (503), as a restarting streaming server does
        self.stream_requests: list[Request] = []
        self._listeners: list[tuple[str, queue.Queue]] = []  # (account id, events)
        self._listeners_lock = threading.Lock()
        super().__init__()

    @property
    def streaming(self) -> int:
        """How many notification streams are open."""
        with self._listeners_lock:
            return len(self._listeners)

    def drop_streams(self) -> None:
        """Close every open stream, as a restart of the streaming server does."""
        with self._listeners_lock:
            for _, events in self._listeners:
                events.put(None)

    def close(self) -> None:
        self.drop_streams()
        super().close()

    # --- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/api/v1/streaming/health":
            return Response(200, "OK")
        if path != "/api/v1/streaming/user/notification":
            return super().handle(request)
        self.stream_requests.append(request)
        if self.streaming_down:
            return Response(503, {"error": _STATUS_MESSAGES[503]})
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self._tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None:
            return Response(401, {"error": _STATUS_MESSAGES[401]})
        if not token.allows(("read:notifications",)):
            return Response(403, {"error": _STATUS_MESSAGES[403]})
        events: queue.Queue = queue.Queue()
        with self._listeners_lock:
            self._listeners.append((token.account_id, events))
        return Response(200, headers={"Cache-Control": "no-store"}, stream=self._events(token.account_id, events))

    def _events(self, account_id: str, events: queue.Queue):
        try:
            yield b":)\n"  # Mastodon opens every stream with a comment line
            while True:
                try:
                    event = events.get(timeout=HEARTBEAT_SECONDS)
                except queue.Empty:
                    yield b":thump\n"
                    continue
                if event is None:
                    return
                yield event
        finally:
            with self._listeners_lock:
                self._listeners.remove((account_id, events))

    # --- hooks into the fake instance ----------------------------------------------------

    def _notify(self, recipient_id: str, kind: str, from_id: str, status_id: str | None) -> None:
        super()._notify(recipient_id, kind, from_id, status_id)
        notification = self.notifications[-1]
        with self._listeners_lock:
            listeners = [events for account_id, events in self._listeners if account_id == recipient_id]
        if listeners:
            view = self._notification_view(notification, self.accounts[recipient_id])
            frame = f"event: notification\ndata: {json.dumps(view)}\n\n".encode()
            for events in listeners:
                events.put(frame)

    def _instance_v1(self, request, viewer, _id):
        status, body, headers = super()._instance_v1(request, viewer, _id)
        return status, {**body, "urls": {"streaming_api": self._streaming_url}}, headers

    def _instance_v2(self, request, viewer, _id):
        status, body, headers = super()._instance_v2(request, viewer, _id)
        body["configuration"] = {**body["configuration"], "urls": {"streaming": self._streaming_url}}
        return status, body, headers

    @property
    def _streaming_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"
