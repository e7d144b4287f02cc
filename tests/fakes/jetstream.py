"""Jetstream on 127.0.0.1, as github.com/bluesky-social/jetstream documents its wire format.

``GET /subscribe`` upgrades to a WebSocket that sends one JSON text frame per event:
``{"did", "time_us", "kind": "commit", "commit": {"rev", "operation", "collection", "rkey",
"record", "cid"}}``, and ``kind`` ``identity`` / ``account`` events, which are sent whatever the
filter. Query parameters: ``wantedCollections`` (repeatable, ``prefix.*`` allowed), ``wantedDids``
(repeatable) and ``cursor`` (microseconds since the epoch: replay every event from then, then go
live). ``follow(bluesky)`` turns each write of the Bluesky fake into a commit event.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.sync.server import serve


_QUIET = logging.getLogger("tests.fakes.jetstream")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False  # its thread outlives pytest's captured streams


class FakeJetstream:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.subscriptions: list[dict[str, list[str]]] = []  # the query of every connection, in order
        self.down = False  # refuse connections (503), as a Jetstream that is restarting does
        self.sent = 0  # frames sent to consumers
        self._lock = threading.Lock()
        self._clients: list[tuple[queue.Queue, dict]] = []
        self._last_us = 0
        self._server = serve(self._serve, "127.0.0.1", 0, process_request=self._admit, compression=None, logger=_QUIET)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/subscribe"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # --- test-side API ------------------------------------------------------------------

    def follow(self, bluesky) -> None:
        """Every record the Bluesky fake indexes from now on becomes a commit event."""
        bluesky.on_record.append(lambda record: self.commit(record.author, record.collection, record.rkey, record.value, record.cid))

    def commit(self, did: str, collection: str, rkey: str, record: dict | None, cid: str | None, *, operation: str = "create") -> dict:
        commit = {"rev": f"rev{self._next_us()}", "operation": operation, "collection": collection, "rkey": rkey}
        if operation != "delete":
            commit.update(record=record, cid=cid)
        return self._emit({"did": did, "kind": "commit", "commit": commit})

    def identity(self, did: str, handle: str) -> dict:
        return self._emit({"did": did, "kind": "identity", "identity": {"did": did, "handle": handle, "seq": 1, "time": _now_iso()}})

    def account(self, did: str, active: bool = True) -> dict:
        return self._emit({"did": did, "kind": "account", "account": {"active": active, "did": did, "seq": 1, "time": _now_iso()}})

    def raw(self, frame: str) -> None:
        """A frame as is (to check that garbage never stops a consumer)."""
        with self._lock:
            for client, _ in self._clients:
                client.put(frame)

    def drop_connections(self) -> None:
        """Cut every open connection, as a network failure or a restart of Jetstream would."""
        with self._lock:
            for client, _ in self._clients:
                client.put(None)

    @property
    def connected(self) -> int:
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        self.drop_connections()
        self._server.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the server ---------------------------------------------------------------------

    def _next_us(self) -> int:
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return self._last_us

    def _emit(self, event: dict) -> dict:
        with self._lock:
            event = {"did": event["did"], "time_us": self._next_us(), **{k: v for k, v in event.items() if k != "did"}}
            self.events.append(event)
            frame = json.dumps(event)
            for client, query in self._clients:
                if _wanted(event, query):
                    client.put(frame)
        return event

    def _admit(self, connection, request):
        if urlsplit(request.path).path != "/subscribe":
            return Response(404, "Not Found", Headers(), b"not found\n")
        if self.down:
            return Response(503, "Service Unavailable", Headers(), b"restarting\n")
        return None

    def _serve(self, connection) -> None:
        query = parse_qs(urlsplit(connection.request.path).query)
        client: queue.Queue = queue.Queue()
        with self._lock:
            self.subscriptions.append(query)
            cursor = int(query["cursor"][0]) if query.get("cursor") else None
            if cursor is not None:  # replay from the cursor, then live: both under the lock, so nothing falls between
                for event in self.events:
                    if event["time_us"] >= cursor and _wanted(event, query):
                        client.put(json.dumps(event))
            self._clients.append((client, query))
        try:
            while True:
                try:
                    frame = client.get(timeout=0.2)
                except queue.Empty:
                    connection.ping()  # raises once the consumer has gone
                    continue
                if frame is None:
                    break
                connection.send(frame)
                self.sent += 1
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.remove((client, query))
            connection.close()


def _wanted(event: dict, query: dict[str, list[str]]) -> bool:
    if query.get("wantedDids") and event["did"] not in query["wantedDids"]:
        return False
    if event["kind"] != "commit" or not query.get("wantedCollections"):
        return True
    collection = event["commit"]["collection"]
    return any(collection == wanted or wanted.endswith(".*") and collection.startswith(wanted[:-1])
               for wanted in query["wantedCollections"])


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
