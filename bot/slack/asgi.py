"""How `conversant web` reads requests: on an event loop, with a deadline and a size bound.

A thread-per-request server gives a client that sends headers and then stalls one of its
threads until it gives up; sixteen such clients froze /healthz and every click. Here
gunicorn's asyncio worker (``gasgi``) reads every request, and ``WsgiBridge`` hands a
request to the WSGI app (Bolt, /healthz) on a small thread pool only once its body is
complete. A stalled or trickling client costs a socket, never a thread:

- headers must arrive within ``READ_SECONDS`` of the connection (``DeadlineProtocol``) and
  stay within gunicorn's ``limit_request_*`` sizes;
- a body larger than ``MAX_BODY_BYTES`` is refused with 413 before it is read (by its
  Content-Length, or as soon as a chunked body passes the bound);
- the body must be complete within ``READ_SECONDS`` of the headers, else 408.
"""
from __future__ import annotations

import asyncio
import io
import sys
from concurrent.futures import ThreadPoolExecutor

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

READ_SECONDS = 10.0  # Slack sends a request in one go; anything slower is not Slack
MAX_BODY_BYTES = 1024 * 1024  # a Slack payload is a few kilobytes; a modal submission tens


class WsgiBridge:
    """An ASGI app that reads the whole body, within bounds, then runs a WSGI app on a thread."""

    def __init__(self, wsgi_app, *, threads: int) -> None:
        self.wsgi_app = wsgi_app
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="web")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _answer(send, 413 if length.isdigit() else 400, b"request body too large or malformed")
            return
        try:
            body = await asyncio.wait_for(_read_body(receive), READ_SECONDS)
        except asyncio.TimeoutError:
            await _answer(send, 408, b"request body not received in time")
            return
        except _TooLarge:
            await _answer(send, 413, b"request body too large")
            return
        if body is None:  # the client went away
            return
        loop = asyncio.get_running_loop()
        status, headers, payload = await loop.run_in_executor(self.pool, self._run, _environ(scope, body))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _run(self, environ: dict) -> tuple[int, list, bytes]:
        started: list = []

        def start_response(status, headers, exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]), [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]]
            return lambda data: None  # the legacy write() callable; Bolt does not use it

        result = self.wsgi_app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started[0], started[1], payload


class _TooLarge(Exception):
    pass


async def _read_body(receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": text})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _environ(scope, body: bytes) -> dict:
    """PEP 3333's environ for one complete request."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", ""),
        "PATH_INFO": raw_path.split(b"?", 1)[0].decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "REMOTE_ADDR": str(client[0]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for key, value in scope["headers"]:
        name = key.decode("latin-1").upper().replace("-", "_")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
        elif name != "CONTENT_LENGTH":
            field = f"HTTP_{name}"
            text = value.decode("latin-1")
            environ[field] = f"{environ[field]},{text}" if field in environ else text
    return environ


class DeadlineProtocol(ASGIProtocol):
    """gunicorn's HTTP/1 protocol, closing a connection whose first headers are late.

    (Later requests on a kept-alive connection are bounded by gunicorn's keepalive timer.)
    """

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._header_deadline = self.worker.loop.call_later(READ_SECONDS, self._headers_late)

    def _on_headers_complete(self):
        if self._header_deadline:
            self._header_deadline.cancel()
        return super()._on_headers_complete()

    def connection_lost(self, exc):
        if self._header_deadline:
            self._header_deadline.cancel()
        return super().connection_lost(exc)

    def _headers_late(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Worker(gasgi.ASGIWorker):
    """gunicorn's asyncio worker, serving connections with ``DeadlineProtocol``."""

    _serving: asyncio.Task | None = None

    async def _serve(self):
        # The worker names its protocol class at module level; swap it for this process only.
        gasgi.ASGIProtocol = DeadlineProtocol
        self._serving = asyncio.current_task()
        await super()._serve()

    def handle_exit_signal(self):
        """SIGTERM: the graceful stop begins now, not at the heartbeat's next second (gunicorn's
        loop sleeps a whole second between heartbeats and catches the cancellation of that sleep)."""
        serving = self.alive and self.servers and self._serving
        super().handle_exit_signal()
        if serving:
            self._serving.cancel()
