"""Streaming ingestion figures (issue 15): ``python -m bench.stream [--json]``.

- ``mention_to_card_ms``: on the real local Bluesky network (tests/integration/bsky_network.py), from
  the PDS accepting alice's post to the card's ``chat.postMessage`` at the fake Slack, with the
  firehose consumer, and with the 60 s poll alone (mentions posted at random moments of the cycle).
  The fake model answers after ``--model-latency`` seconds; figures are given with and without it.
- ``stream_filter_posts_per_s``: the network's own firehose frames, recorded after the run, replayed
  (repeated to ``--posts``) through the firehose reader, and turned into Jetstream's JSON events for the
  Jetstream reader; one thread, CPU time, so posts per second per core.
- ``worker_rss_mb`` while streaming: ``conversant worker`` reading Jetstream as fast as a local fake
  sends those events, against the same worker with streaming off.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import BenchSlack, Sampler, environment, fakes, percentile, progress, urls
from atproto_subscription.frames import Frame

from bot.config import load_settings
from bot.db import migrate
from bot.models import Conversation
from bot.platforms.streams.brand_filter import BrandFilter
from bot.platforms.streams.firehose import CommitReader
from bot.platforms.streams.jetstream import FrameReader
from bot.services import build_services
from tests.conftest import triage
from tests.fakes.openai_api import FakeOpenAI

FILLER = [
    "morning all, coffee first", "anyone else watching the match tonight?", "new blog post: https://example.org/post",
    "my cat knocked the plant over again", "shipping a small fix today", "the light at golden hour is unreal",
    "reading a great book about rivers", "who has tips for learning rust?", "rain again, of course",
    "we open a new office in Lisbon next month", "this thread about databases is gold", "lunch: noodles, obviously",
]


def operator_services(network, workdir: Path, slack, model, *, stream: str, interval: int = 60):
    env = {
        "DATABASE_URL": f"sqlite:///{workdir / f'bench-{stream}.db'}",
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench-signing-secret-0123456789",
        "SLACK_API_URL": slack.api_url, "SLACK_REVIEW_CHANNEL": "C_REVIEW", "SLACK_MESSAGES_PER_SECOND": "1",
        "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": model.api_url,
        "BRAND_NAME": "Brand", "BRAND_KEYWORDS": "Conversantly", "BRAND_ALLOWED_DOMAINS": "brand.example",
        "BLUESKY_HANDLE": "brand.test", "BLUESKY_APP_PASSWORD": network.accounts["brand.test"][1],
        "BLUESKY_PDS_URL": network.pds_url, "POLL_INTERVAL_SECONDS": str(interval),
        "BLUESKY_STREAM": stream, "BLUESKY_FIREHOSE_URL": network.pds_url.replace("http", "ws", 1), "LOG_LEVEL": "WARNING",
    }
    migrate(env["DATABASE_URL"])
    return build_services(load_settings(env, dotenv_path="/nonexistent/.env"))


def card_delays(services, slack, posted: dict[str, float], timeout: float) -> list[float]:
    """Seconds from each post's acceptance to its card, waiting up to ``timeout`` for the last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.session() as session:
            rows = session.query(Conversation).filter(Conversation.external_id.in_(list(posted)), Conversation.slack_ts.is_not(None)).all()
        delays = [slack.accepted_at.get((r.slack_channel, r.slack_ts)) for r in rows]
        if len(rows) == len(posted) and all(delays):
            return [slack.accepted_at[(r.slack_channel, r.slack_ts)] - posted[r.external_id] for r in rows]
        time.sleep(0.05)
    raise RuntimeError(f"only some of {len(posted)} mentions were carded within {timeout:.0f}s")


def streamed(network, workdir: Path, count: int, model_latency: float) -> list[float]:
    from bot.platforms.streams.registry import enabled_streams
    from bot.streaming import Carder, StreamRunner
    from tests.integration.bsky_network import post_mention

    with BenchSlack() as slack, FakeOpenAI() as model:
        model.reply_with(triage("Thanks for the mention!"))
        model.set_delay(model_latency)
        services = operator_services(network, workdir, slack, model, stream="firehose")
        [stream] = enabled_streams(services.settings, services.platforms)
        carder = Carder(services).start()
        runner = StreamRunner(services, stream, on_new=carder.wake).start()
        alice = network.login("alice.test")
        try:
            while runner.state.state != "streaming":
                time.sleep(0.05)
            posted = {}
            for n in range(count):
                uri = post_mention(alice, f"@brand.test streamed mention {n} {secrets.token_hex(3)}").uri
                posted[uri] = time.monotonic()
                time.sleep(random.uniform(1.5, 2.5))  # one at a time, as mentions come: no queue behind Slack's pacing
            return card_delays(services, slack, posted, timeout=60)
        finally:
            runner.stop()
            carder.stop()
            services.db.dispose()


def polled(network, workdir: Path, count: int, model_latency: float, interval: int) -> list[float]:
    from bot.pipeline import poll_once
    from tests.integration.bsky_network import post_mention

    with BenchSlack() as slack, FakeOpenAI() as model:
        model.reply_with(triage("Thanks for the mention!"))
        model.set_delay(model_latency)
        services = operator_services(network, workdir, slack, model, stream="off", interval=interval)
        poll_once(services)  # the first run reads the past: what follows is steady state
        stop = threading.Event()

        def cycles() -> None:
            while not stop.wait(interval):
                poll_once(services)

        thread = threading.Thread(target=cycles, daemon=True)
        thread.start()
        alice = network.login("alice.test")
        moments = sorted(random.uniform(0, interval * max(1, count // 3)) for _ in range(count))
        started, posted = time.monotonic(), {}
        try:
            for n, at in enumerate(moments):
                time.sleep(max(0.0, started + at - time.monotonic()))
                posted[post_mention(alice, f"@brand.test polled mention {n} {secrets.token_hex(3)}").uri] = time.monotonic()
            return card_delays(services, slack, posted, timeout=interval * 2 + 30)
        finally:
            stop.set()
            services.db.dispose()


def record_firehose(network, filler: int) -> tuple[list[bytes], str]:
    """Post ``filler`` ordinary posts, then read the PDS's whole firehose from the start."""
    from websockets.sync.client import connect

    bob = network.login("bob.test")
    for n in range(filler):
        bob.send_post(f"{FILLER[n % len(FILLER)]} #{n}")
    frames = []
    url = network.pds_url.replace("http", "ws", 1) + "/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
    with connect(url, max_size=2 ** 22, proxy=None) as socket:
        while True:
            try:
                frames.append(socket.recv(timeout=3))
            except TimeoutError:
                break
    return frames, network.accounts["brand.test"][0]


def as_jetstream(frames: list[bytes]) -> list[str]:
    """The firehose's post creations as the JSON events Jetstream makes of them."""
    from atproto import CAR, models, parse_subscribe_repos_message
    from atproto_subscription.frames import Frame

    events, time_us = [], int(time.time() * 1e6)
    for frame in frames:
        message = parse_subscribe_repos_message(Frame.from_bytes(frame))
        if not isinstance(message, models.ComAtprotoSyncSubscribeRepos.Commit):
            continue
        blocks = CAR.from_bytes(message.blocks).blocks
        for op in message.ops:
            if op.action == "create" and op.path.startswith("app.bsky.feed.post/"):
                time_us += 1
                collection, rkey = op.path.split("/")
                events.append(json.dumps({"did": message.repo, "time_us": time_us, "kind": "commit", "commit": {
                    "rev": message.rev, "operation": "create", "collection": collection, "rkey": rkey,
                    "record": blocks.get(op.cid), "cid": str(op.cid)}}, default=str))
    return events


def throughput(read, frames: list, posts_per_pass: int, wanted: int) -> float:
    passes = max(1, wanted // max(1, posts_per_pass))
    started = time.process_time()
    for _ in range(passes):
        for frame in frames:
            read(frame)
    return passes * posts_per_pass / (time.process_time() - started)


def worker_memory(workdir: Path, events: list[str], seconds: float) -> dict:
    from tests.fakes.jetstream import FakeJetstream

    result = {}
    with fakes() as (slack, model, bluesky), FakeJetstream() as jetstream:
        for label, stream in (("polling", "off"), ("streaming", "jetstream")):
            url = f"sqlite:///{workdir / f'worker-{label}.db'}"
            migrate(url)
            env = environment(url, urls(slack, model, bluesky), POLL_INTERVAL_SECONDS="3600", BLUESKY_STREAM=stream,
                              BLUESKY_JETSTREAM_URL=jetstream.url, BRAND_KEYWORDS="Conversantly")
            clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
            process = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env={**clean, **env}, cwd=workdir,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sampler = Sampler(process.pid)
            sent_before, started = jetstream.sent, time.monotonic()
            try:
                if stream != "off":
                    while not jetstream.connected and time.monotonic() - started < 30:
                        time.sleep(0.05)
                    started, queued = time.monotonic(), 0
                    while time.monotonic() - started < seconds:
                        if queued - (jetstream.sent - sent_before) < 20_000:  # keep the consumer busy, never idle
                            for event in events:
                                jetstream.raw(event)
                            queued += len(events)
                        else:
                            time.sleep(0.01)
                else:
                    time.sleep(seconds)
                elapsed = time.monotonic() - started
                peak = sampler.stop()
            finally:
                process.terminate()
                process.wait(20)
                jetstream.drop_connections()
            result[label] = {"rss_mb": round(peak, 1), "events_read": jetstream.sent - sent_before,
                             "events_per_s": round((jetstream.sent - sent_before) / elapsed)}
            progress(f"worker {label}: peak RSS {peak:.0f} MB, {result[label]['events_per_s']:,} events/s read")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mentions", type=int, default=20, help="streamed mentions timed (default 20)")
    parser.add_argument("--poll-mentions", type=int, default=6, help="polled mentions timed (default 6: about two minutes)")
    parser.add_argument("--interval", type=int, default=60, help="POLL_INTERVAL_SECONDS for the polled figure (default 60)")
    parser.add_argument("--model-latency", type=float, default=1.0, help="seconds the fake model takes per draft (default 1)")
    parser.add_argument("--filler", type=int, default=300, help="ordinary posts recorded beside the mentions (default 300)")
    parser.add_argument("--posts", type=int, default=200_000, help="posts replayed for the throughput (default 200,000)")
    parser.add_argument("--memory-seconds", type=float, default=20)
    args = parser.parse_args(argv)
    from tests.integration.bsky_network import BlueskyNetwork, postgres_server_url

    result: dict = {"setup": vars(args)}
    with tempfile.TemporaryDirectory(prefix="conversant-bench-stream-") as tmp:
        workdir = Path(tmp)
        progress("starting the local Bluesky network")
        network = BlueskyNetwork.start(postgres_server_url())
        try:
            progress(f"timing {args.mentions} streamed mentions (firehose)")
            stream_s = streamed(network, workdir, args.mentions, args.model_latency)
            progress(f"timing {args.poll_mentions} polled mentions (poll every {args.interval} s)")
            progress(f"streamed: {sorted(round(v, 2) for v in stream_s)} s")
            poll_s = polled(network, workdir, args.poll_mentions, args.model_latency, args.interval)
            progress(f"polled: {sorted(round(v, 2) for v in poll_s)} s")
            progress(f"recording the firehose after {args.filler} more posts")
            frames, brand_did = record_firehose(network, args.filler)
        finally:
            network.stop()
        for name, values in (("firehose", stream_s), ("poll", poll_s)):
            ms = [v * 1000 for v in values]
            result.setdefault("mention_to_card_ms", {})[name] = {
                "p50": round(percentile(ms, 0.5)), "p95": round(percentile(ms, 0.95)),
                "p50_without_model": round(percentile(ms, 0.5) - args.model_latency * 1000),
                "p95_without_model": round(percentile(ms, 0.95) - args.model_latency * 1000), "samples": len(ms)}
        brand = BrandFilter(brand_did, keywords=("Conversantly",), domains=("brand.example",))
        events = as_jetstream(frames)
        firehose_reader, jet_reader = CommitReader(brand), FrameReader(brand)
        posts_in_frames = len(events)
        result["recorded"] = {"firehose_frames": len(frames), "posts": posts_in_frames,
                              "posts_about_the_brand": sum(1 for e in events if jet_reader.read(e))}
        result["stream_filter_posts_per_s"] = {
            "jetstream": round(throughput(FrameReader(brand).read, events, posts_in_frames, args.posts)),
            # the SDK's client hands the reader decoded frames: their decoding is counted here
            "firehose": round(throughput(lambda raw: firehose_reader.read(Frame.from_bytes(raw)), frames, posts_in_frames, args.posts // 10)),
        }
        progress(f"filter throughput: {result['stream_filter_posts_per_s']}")
        result["worker_memory"] = worker_memory(workdir, events, args.memory_seconds)
    print(json.dumps(result, indent=2) if args.json else json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
