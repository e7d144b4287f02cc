"""ack_ms and click_to_reply_ms: Approve clicks against ``conversant web`` (gunicorn, as in production).

Cards are prepared by the real pipeline, then the production web server is
started as its own process (``python -m bot web``) against the fakes, with
every Bluesky call taking 100 ms. Clicks are signed as Slack signs them.

- click_to_reply: one click at a time; from sending the click to the reply
  being stored by the Bluesky fake.
- ack: rounds of 50 clicks sent at once (50 in flight); from sending each
  request to its HTTP response (Slack's 3-second deadline is on this). The
  first round warms the fresh process up and is reported apart.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import select

from bot.slack.payloads import ActionId, conversation_value
from bot.models import Conversation, State
from bot.pipeline import poll_once
from tests.conftest import triage
from tests.fakes.slack_requests import block_actions_body, sign

from bench.common import APPROVER, BRAND, SIGNING_SECRET, environment, median, percentile, progress, services_for
from bench.remote import remote_fakes

IN_FLIGHT = 50
PLATFORM_LATENCY = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_cards(services, fakes, count: int) -> list[Conversation]:
    fakes.call("post_mentions", count, f"@{BRAND} where can I find the export settings?")
    fakes.call("reply_with", triage("Happy to help! It is under Settings, then Export. Which device are you on?"))
    cards = []
    for _ in range(3 + count // 50):
        poll_once(services)
        with services.db.session() as session:
            cards = list(session.scalars(select(Conversation).where(Conversation.state == State.CARDED.value).order_by(Conversation.id)))
        if len(cards) >= count:
            return cards
    raise RuntimeError(f"only {len(cards)} of {count} cards were posted while preparing the clicks")


def start_web(env: dict, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "web", "--port", str(port)], env={**clean, **env}, cwd=workdir,
        stdout=subprocess.DEVNULL, stderr=open(workdir / "web.log", "wb"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"conversant web did not start; see {workdir / 'web.log'}")


def click_request(host: str, port: int, conversation: Conversation) -> bytes:
    body = block_actions_body(user_id=APPROVER, action_id=ActionId.APPROVE.value, value=conversation_value(conversation.id),
                              message_ts=conversation.slack_ts)
    headers = {"Host": f"{host}:{port}", "Content-Type": "application/x-www-form-urlencoded",
               "Content-Length": str(len(body.encode())), "Connection": "close", **sign(body, SIGNING_SECRET)}
    head = "POST /slack/events HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body.encode()


async def _click(host: str, port: int, payload: bytes, start: asyncio.Event) -> tuple[float, float, int]:
    """Send one click when ``start`` is set; (sent, acked) monotonic times and the status."""
    reader, writer = await asyncio.open_connection(host, port)
    await start.wait()
    sent = time.monotonic()
    writer.write(payload)
    await writer.drain()
    status_line = await reader.readline()
    acked = time.monotonic()
    await reader.read()
    writer.close()
    return sent, acked, int(status_line.split()[1]) if status_line else 0


async def _burst(host: str, port: int, payloads: list[bytes]) -> list[tuple[float, float, int]]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(_click(host, port, p, start)) for p in payloads]
    await asyncio.sleep(0.05)  # every connection open before the first request goes out
    start.set()
    return await asyncio.gather(*tasks)


def wait_replies(fakes, uris: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        done = {parent: at for at, parent in fakes.call("replies") if parent in uris}
        if len(done) >= len(uris) or time.monotonic() > deadline:
            return done
        time.sleep(0.005)


def run(target, workdir: Path, *, rounds: int, sequential: int) -> dict:
    needed = 2 + sequential + (rounds + 1) * IN_FLIGHT
    with target.fresh("web") as url, remote_fakes() as fakes:
        env = environment(url, fakes.urls)
        services = services_for({**env, "SLACK_MESSAGES_PER_SECOND": "1000"})  # preparing: no need to pace the fake
        try:
            progress(f"web on {target.name}: preparing {needed} cards")
            cards = prepare_cards(services, fakes, needed)
        finally:
            services.db.dispose()
        fakes.call("platform_latency", PLATFORM_LATENCY)
        process, base = start_web(env, workdir)
        host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
        try:
            warm, cards = cards[:2], cards[2:]
            for card in warm:  # the first click logs in to Bluesky
                asyncio.run(_burst(host, port, [click_request(host, port, card)]))
            wait_replies(fakes, {c.thread_ref["uri"] for c in warm}, 10)

            to_reply = []
            for card in cards[:sequential]:
                [(sent, _acked, _status)] = asyncio.run(_burst(host, port, [click_request(host, port, card)]))
                done = wait_replies(fakes, {card.thread_ref["uri"]}, 10)
                if card.thread_ref["uri"] in done:
                    to_reply.append((done[card.thread_ref["uri"]] - sent) * 1000)
            progress(f"web on {target.name}: click to reply p50 {median(to_reply):.0f} ms over {len(to_reply)} clicks")

            acks, failures, cards = [], 0, cards[sequential:]
            # One burst first, not counted: a fresh process opens its threads and database connections.
            batch, cards = cards[:IN_FLIGHT], cards[IN_FLIGHT:]
            cold = asyncio.run(_burst(host, port, [click_request(host, port, c) for c in batch]))
            cold_p99 = percentile([(a - s) * 1000 for s, a, _ in cold], 0.99)
            wait_replies(fakes, {c.thread_ref["uri"] for c in batch}, 60)
            progress(f"web on {target.name}: first burst of {IN_FLIGHT} clicks (not counted): ack p99 {cold_p99:.0f} ms")
            for r in range(rounds):
                batch, cards = cards[:IN_FLIGHT], cards[IN_FLIGHT:]
                results = asyncio.run(_burst(host, port, [click_request(host, port, c) for c in batch]))
                acks += [(acked - sent) * 1000 for sent, acked, _ in results]
                failures += sum(status != 200 for _, _, status in results)
                replied = wait_replies(fakes, {c.thread_ref["uri"] for c in batch}, 60)
                progress(f"web on {target.name}: round {r + 1}/{rounds}: {IN_FLIGHT} clicks, ack p99 "
                         f"{percentile([(a - s) * 1000 for s, a, _ in results], 0.99):.0f} ms, {len(replied)} replies posted")
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "ack_ms": {"p50": percentile(acks, 0.5), "p99": percentile(acks, 0.99), "max": max(acks), "clicks": len(acks),
                   "non_200": failures, "first_burst_p99": cold_p99},
        "click_to_reply_ms": {"p50": percentile(to_reply, 0.5), "p90": percentile(to_reply, 0.9), "clicks": len(to_reply)},
    }
