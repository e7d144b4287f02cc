"""digest_ms: computing the daily digest over 1,000,000 stored conversations.

The conversations span a year (see ``seed.py``); the digest is what
``bot.jobs.digest`` builds for the last 24 hours: the day's figures, the seven
days before for comparison, the 14-day trend (``build_digest``) and its Slack
message (``digest_message``). The chart is timed apart: it is drawn from the
figures and costs the same whatever the table holds. On the same million, an
idle poll cycle (nothing new anywhere) gives the fixed cost of every cycle.
"""
from __future__ import annotations

import time

from bot.models import utcnow
from bot.pipeline import poll_once

from bench.common import environment, fakes, median, progress, services_for, urls
from bench.seed import seed, seed_postgres


def _digest_module():
    from bot import stats
    from bot.jobs import digest

    return stats, digest


def run(target, *, conversations: int, days: float, runs: int) -> dict:
    stats, digest = _digest_module()
    with target.fresh("digest") as url, fakes() as (slack, model, bluesky):
        progress(f"digest on {target.name}: storing {conversations:,} conversations over {days:g} days")
        started = time.monotonic()
        (seed_postgres if target.name == "postgresql" else seed)(url, conversations, days)
        progress(f"digest on {target.name}: stored in {time.monotonic() - started:.0f}s")
        services = services_for(environment(url, urls(slack, model, bluesky)))
        try:
            totals, home = [], []
            for i in range(runs + 1):  # the first run warms the caches and is not counted
                began = time.perf_counter()
                built = stats.build_digest(services.db, services.settings, end=utcnow())
                digest.digest_message(services, built)
                elapsed = (time.perf_counter() - began) * 1000
                now = utcnow()
                began = time.perf_counter()
                stats.compute(services.db, services.settings, start=now.replace(hour=0, minute=0, second=0, microsecond=0), end=now)
                today = (time.perf_counter() - began) * 1000
                if i:
                    totals.append(elapsed)
                    home.append(today)
                    progress(f"digest on {target.name}: run {i}/{runs}: {elapsed:.0f} ms (today's figures for Home: {today:.0f} ms)")
            began = time.perf_counter()
            digest.render_chart(built)
            chart = (time.perf_counter() - began) * 1000
            rows = sum(1 for _ in stats.load_rows(services.db, built.figures.end - stats.TREND_DAYS * stats.DAY, built.figures.end))
            cycles = []
            for i in range(runs + 1):  # a poll cycle with nothing new: the fixed cost of each cycle at this size
                began = time.perf_counter()
                poll_once(services)
                if i:
                    cycles.append((time.perf_counter() - began) * 1000)
            progress(f"digest on {target.name}: an idle poll cycle over {conversations:,} conversations: {median(cycles):.0f} ms")
        finally:
            services.db.dispose()
    return {"ms": median(totals), "runs": [round(t) for t in totals], "chart_ms": chart, "home_today_ms": median(home),
            "idle_cycle_ms": median(cycles),
            "rows_read": rows, "conversations": conversations, "days": days}
