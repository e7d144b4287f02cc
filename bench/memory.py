"""worker_rss_mb: the peak resident memory of ``conversant worker`` while 100,000 conversations are stored.

The worker runs as its own process against the fakes; on start it runs every
scheduled job once (a poll cycle, a nudge pass, and the daily digest, which is
made due). Its peak RSS (VmHWM) is read from /proc once all three have run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.db import normalise_url

from bench.common import Sampler, environment, fakes, progress, urls
from bench.seed import seed, seed_postgres

DONE_MARKERS = {"poll": "poll cycle:", "nudges": "nudge pass:", "digest": "digest for "}


def make_digest_due(url: str) -> bool:
    """Record yesterday's digest as the last one sent, so the worker sends today's at start."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            yesterday = (datetime.now(timezone.utc) - timedelta(days=2)).date().isoformat()
            conn.execute(text("INSERT INTO app_state (key, value, updated_at) VALUES ('last_digest_date', :v, :at)"),
                         {"v": yesterday, "at": datetime.now(timezone.utc)})
        return True
    except Exception:  # noqa: BLE001 - no app_state table yet: the digest is not part of this tree
        return False
    finally:
        engine.dispose()


def run(target, workdir: Path, *, conversations: int, days: float = 90) -> dict:
    with target.fresh("worker") as url, fakes() as (slack, model, bluesky):
        progress(f"worker on {target.name}: storing {conversations:,} conversations")
        (seed_postgres if target.name == "postgresql" else seed)(url, conversations, days)
        markers = dict(DONE_MARKERS) if make_digest_due(url) else {k: v for k, v in DONE_MARKERS.items() if k != "digest"}
        env = environment(url, urls(slack, model, bluesky), LOG_LEVEL="INFO", POLL_INTERVAL_SECONDS="3600")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
        log_path = workdir / f"worker-{target.name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env={**clean, **env}, cwd=workdir,
                                       stdout=log, stderr=subprocess.STDOUT)
        sampler = Sampler(process.pid)
        started = time.monotonic()
        seen: set[str] = set()
        try:
            while time.monotonic() - started < 120 and process.poll() is None:
                output = log_path.read_text(errors="replace")
                seen = {job for job, marker in markers.items() if marker in output}
                if seen == set(markers):
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            peak = sampler.stop()
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        missing = sorted(set(markers) - seen)
        if missing:
            progress(f"worker on {target.name}: {', '.join(missing)} did not finish in time; see {log_path}")
        progress(f"worker on {target.name}: peak RSS {peak:.0f} MB after {', '.join(sorted(seen)) or 'nothing'}")
        return {"rss_mb": peak, "jobs": sorted(seen), "missing": missing, "conversations": conversations}
