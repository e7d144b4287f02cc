"""Slow, stalled or oversized clients cannot freeze `conversant web` (a real process, real sockets)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.request

import pytest

from bot.slack.payloads import ActionId
from bot.models import State
from bot.slack.asgi import MAX_BODY_BYTES, READ_SECONDS
from tests.cli import CliPopen
from tests.conftest import DATABASE_PLAYS_NO_PART, eventually
from tests.support import carded_mention, click, load

pytestmark = DATABASE_PLAYS_NO_PART  # the HTTP layer's limits, before any database work

STALLS = {
    # headers complete, a body promised and never sent
    "body": b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\npayload=",
    # headers begun and never finished
    "headers": b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slack-Sign",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def web_process(env, tmp_path):
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if k != "PORT"}
    server = CliPopen(["web", "--port", str(port)], env={**clean, **env},
                      cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "web.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _health(base, timeout=1) == 200, timeout=30)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def _health(base: str, timeout: float) -> int | None:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout) as response:
            return response.status if json.loads(response.read())["ok"] else None
    except OSError:
        return None


@contextlib.contextmanager
def stalled(base: str, count: int, kind: str):
    port = int(base.rsplit(":", 1)[1])
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(STALLS[kind])
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("count", [16, 100])
@pytest.mark.parametrize("kind", sorted(STALLS))
def test_stalled_clients_freeze_neither_health_nor_a_click(web_process, services, slack, model, bluesky, count, kind):
    conv = carded_mention(services, bluesky, model)
    with stalled(web_process, count, kind):
        # Before, each stalled client held one of 16 threads: these timed out.
        assert _health(web_process, timeout=READ_SECONDS / 2) == 200
        assert click(web_process, ActionId.APPROVE, conv)[0] == 200
        eventually(lambda: load(services).state == State.REPLIED.value)
    assert len(bluesky.created("brand.test")) == 1


def test_a_body_too_large_is_refused_before_it_is_sent(web_process):
    port = int(web_process.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS / 2) as sock:
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_cut_off_once_it_passes_the_bound(web_process):
    port = int(web_process.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS / 2) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        answer = b""
        with contextlib.suppress(OSError):
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            answer = sock.recv(100)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 413")


def test_a_stalled_request_is_answered_or_closed_once_its_time_is_up(web_process):
    port = int(web_process.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        body = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS * 3))
        headers = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS * 3))
        body.sendall(STALLS["body"])
        headers.sendall(STALLS["headers"])
        assert body.recv(100).startswith(b"HTTP/1.1 408")
        assert headers.recv(100) == b""  # closed: the socket is free again
