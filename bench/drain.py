"""drain.ratio: how close carding a backlog comes to the limits the model and Slack set.

A burst of mentions (1,000 by default) waits on the platform fake. The worker's
cycle (``bot.pipeline.poll_once``, run as ``conversant worker`` runs it: at
every tick of ``POLL_INTERVAL_SECONDS``, 60 by default, a tick that finds the
previous cycle still running being skipped) reads them, checks each thread, drafts them against a model
fake that takes 300 ms per draft, and posts the cards to a Slack fake that
enforces a per-channel rate (Slack's 1/s scaled up to 20/s) with 429 and
Retry-After. The lower bound is what those two limits allow::

    bound = max(ceil(N / OPENAI_CONCURRENCY) * latency, N / rate)

and ``ratio = bound / time until the last card was accepted``.
"""
from __future__ import annotations

import json
import math
import time

from sqlalchemy import func, select

from bot.models import Conversation
from bot.pipeline import poll_once

from bench.common import environment, progress, services_for
from bench.remote import remote_fakes

def lower_bound(count: int, concurrency: int, latency: float, rate: float) -> float:
    return max(math.ceil(count / concurrency) * latency, count / rate)


def run_once(url: str, *, count: int, latency: float, rate: float, concurrency: int, max_seconds: float) -> dict:
    with remote_fakes() as fakes:
        fakes.call("post_backlog", count)
        fakes.call("drain_model", latency)
        fakes.call("rate_limit", "chat.postMessage", rate)
        env = environment(url, fakes.urls, OPENAI_CONCURRENCY=str(concurrency),
                          SLACK_MESSAGES_PER_SECOND=f"{rate:g}", FIRST_RUN_LOOKBACK_HOURS="1")
        services = services_for(env)
        cycles = 0
        started = time.monotonic()
        carded = 0
        interval = services.settings.poll_interval_seconds
        try:
            while carded < count and cycles < 500 and time.monotonic() - started < max_seconds:
                # As `conversant worker` runs it: a cycle at each tick of POLL_INTERVAL_SECONDS; a tick
                # that comes while a cycle still runs is skipped (APScheduler's max_instances=1).
                now = time.monotonic()
                next_tick = started + math.ceil((now - started) / interval) * interval if cycles else now
                time.sleep(max(0.0, next_tick - now))
                poll_once(services)
                cycles += 1
                with services.db.session() as session:
                    carded = session.scalar(select(func.count()).where(Conversation.slack_ts.is_not(None)))
                progress(f"  cycle {cycles}: {carded}/{count} carded after {time.monotonic() - started:.1f}s")
            with services.db.session() as session:
                card_ts = set(session.scalars(select(Conversation.slack_ts).where(Conversation.slack_ts.is_not(None))))
        finally:
            services.db.dispose()
        accepted = [at for (channel, ts), at in fakes.call("accepted").items() if ts in card_ts]
        finished = max(accepted) if accepted else time.monotonic()
        prompts = fakes.call("prompts")
        return {
            "seconds": finished - started,
            "first_card_s": (min(accepted) - started) if accepted else None,
            "cards": len(accepted),
            "cycles": cycles,
            "model_calls": len(prompts),
            "slack_429": fakes.call("rate_limited"),
            "prompts": prompts,
        }


def run(target, *, count: int, latency: float, rate: float, concurrency: int, runs: int, max_seconds: float | None = None) -> dict:
    bound = lower_bound(count, concurrency, latency, rate)
    results = []
    for i in range(runs):
        with target.fresh("drain") as url:
            result = run_once(url, count=count, latency=latency, rate=rate, concurrency=concurrency,
                              max_seconds=max_seconds or max(60.0, 4 * bound))
        # Not all carded in the time allowed: the time they would take at the rate reached, extrapolated.
        result["complete"] = result["cards"] >= count
        result["ratio"] = bound / (result["seconds"] * count / max(1, result["cards"]))
        progress(f"drain on {target.name}: run {i + 1}/{runs}: {result['cards']} cards in {result['seconds']:.1f}s "
                 f"(bound {bound:.1f}s, ratio {result['ratio']:.2f}, {result['slack_429']} Slack 429s)")
        results.append(result)
    best = sorted(results, key=lambda r: r["ratio"])[len(results) // 2]  # the median run
    return {
        "ratio": best["ratio"],
        "seconds": best["seconds"],
        "lower_bound_s": bound,
        "first_card_s": best["first_card_s"],
        "cards": best["cards"],
        "complete": best["complete"],
        "cycles": best["cycles"],
        "slack_429": best["slack_429"],
        "runs": [round(r["ratio"], 3) for r in results],
        "prompts": best["prompts"],
    }


def describe_setup(count: int, latency: float, rate: float, concurrency: int) -> str:
    return json.dumps({"mentions": count, "model_latency_s": latency, "slack_per_s": rate, "openai_concurrency": concurrency})
