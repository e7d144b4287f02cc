"""stalled_ack_ms: signed clicks against ``conversant web`` while 100 clients stall (issue 13, point 6).

The production server is started as its own process, as in the web stage. Then 100
connections open and stall: half send their headers and a promised body never comes,
half stop in the middle of their headers. While they hang, clicks are sent one at a time
and each is timed from sending the request to its HTTP response (Slack gives up after
3 s), and so is GET /healthz. The stalled connections are refreshed before the server's
read deadline closes them, so every click meets 100 of them.
"""
from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from bench.common import environment, percentile, progress, services_for
from bench.remote import remote_fakes
from bench.web import _burst, click_request, prepare_cards, start_web, wait_replies
from bot.slack.asgi import READ_SECONDS

STALLED = 100
STALLS = (
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 1000\r\n\r\npayload=",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slack-Sign",
)


def _stall(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(STALLS[i % 2])
        sockets.append(sock)
    return sockets


def _health_ms(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.recv(100)
    return (time.monotonic() - started) * 1000


def run(target, workdir: Path, *, clicks: int) -> dict:
    with target.fresh("stalled") as url, remote_fakes() as fakes:
        env = environment(url, fakes.urls)
        services = services_for({**env, "SLACK_MESSAGES_PER_SECOND": "1000"})
        try:
            cards = prepare_cards(services, fakes, clicks + 1)
        finally:
            services.db.dispose()
        process, base = start_web(env, workdir)
        host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
        acks, health, failures, stalled = [], [], 0, []
        try:
            asyncio.run(_burst(host, port, [click_request(host, port, cards[0])]))  # logs in to Bluesky
            wait_replies(fakes, {cards[0].thread_ref["uri"]}, 10)
            opened = 0.0
            for card in cards[1:]:
                if time.monotonic() - opened > READ_SECONDS / 2:  # fresh ones, before the server drops them
                    for sock in stalled:
                        sock.close()
                    stalled, opened = _stall(port, STALLED), time.monotonic()
                health.append(_health_ms(port))
                [(sent, acked, status)] = asyncio.run(_burst(host, port, [click_request(host, port, card)]))
                acks.append((acked - sent) * 1000)
                failures += status != 200
            replied = wait_replies(fakes, {c.thread_ref["uri"] for c in cards[1:]}, 60)
            progress(f"stalled on {target.name}: {len(acks)} clicks with {STALLED} stalled connections, ack p99 "
                     f"{percentile(acks, 0.99):.0f} ms, {len(replied)} replies posted")
        finally:
            for sock in stalled:
                sock.close()
            process.terminate()
            process.wait(20)
    return {"p50": percentile(acks, 0.5), "p99": percentile(acks, 0.99), "max": max(acks), "clicks": len(acks),
            "non_200": failures, "healthz_max_ms": max(health), "stalled_connections": STALLED, "replied": len(replied)}
