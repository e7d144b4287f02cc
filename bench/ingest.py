"""ingest_per_s: mentions taken from platform pages into the database, deduplicated, per second.

A platform hands ``bot.ingest.ingest`` pages of 100 mentions of which 90 were
stored by an earlier page (the overlap every adapter re-reads behind its
watermark), as production polls do. The platform is in-process, so the figure
is our own cost per mention: cursors, the deduplicating insert, the commit;
the platform's HTTP is measured by the drain.
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

from bot.ingest import ingest
from bot.platforms.base import FetchResult, Mention

from bench.common import median, progress

PAGE = 100
SEEN_SHARE = 0.9


class PagedPlatform:
    """Serves prepared pages, one per ``fetch_mentions`` call, like a feed read behind its watermark."""

    name = "bench"
    label = "Bench"
    text_limit = 300

    def __init__(self, pages: list[list[Mention]]) -> None:
        self.pages = pages
        self.index = 0

    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        page = self.pages[self.index]
        self.index += 1
        newest = max(m.created_at for m in page)
        return FetchResult(mentions=page, cursors={"notifications": {"seen": newest.isoformat()}})


def make_pages(count: int, seed: int) -> list[list[Mention]]:
    """``count`` pages of 100: the first all new, then 10 new and 90 seen before."""
    rng = random.Random(seed)
    start = datetime.now(timezone.utc) - timedelta(days=1)
    made: list[Mention] = []

    def new_mention() -> Mention:
        n = len(made)
        handle = f"user{n % 997}.test"
        uri = f"at://did:plc:bench{n % 997}/app.bsky.feed.post/{n:013d}"
        mention = Mention(
            platform=PagedPlatform.name, external_id=uri, thread_key=uri,
            thread_ref={"uri": uri, "cid": f"bafy{n:050d}", "root": {"uri": uri, "cid": f"bafy{n:050d}"},
                        "parent_uri": None, "author_handle": handle},
            reason="mention", author_id=f"did:plc:bench{n % 997}", author_handle=handle, author_name=f"User {n % 997}",
            text=f"@brand.test my export to PDF failed again this morning (order {n}), what am I doing wrong? "
                 "It worked fine last week and now it just spins.",
            url=f"https://bsky.app/profile/{handle}/post/{n:013d}",
            created_at=start + timedelta(seconds=n),
        )
        made.append(mention)
        return mention

    pages = [[new_mention() for _ in range(PAGE)]]
    fresh = round(PAGE * (1 - SEEN_SHARE))
    for _ in range(count - 1):
        recent = made[-1000:]
        page = rng.sample(recent, PAGE - fresh) + [new_mention() for _ in range(fresh)]
        rng.shuffle(page)
        pages.append(page)
    return pages


def measure_once(services, pages: int, seed: int) -> float:
    warmup = 5
    platform = PagedPlatform(make_pages(pages + warmup, seed))
    for _ in range(warmup):
        ingest(services.db, platform, first_run_lookback=timedelta(hours=6))
    started = time.perf_counter()
    for _ in range(pages):
        ingest(services.db, platform, first_run_lookback=timedelta(hours=6))
    elapsed = time.perf_counter() - started
    return pages * PAGE / elapsed


def run(target, make_services, *, runs: int, pages: int) -> dict:
    results = []
    for i in range(runs):
        with target.fresh("ingest") as url:
            services = make_services(url)
            try:
                rate = measure_once(services, pages, seed=i)
            finally:
                services.db.dispose()
        progress(f"ingest on {target.name}: run {i + 1}/{runs}: {rate:,.0f} mentions/s")
        results.append(rate)
    return {"per_s": median(results), "runs": [round(r) for r in results], "pages": pages, "page_size": PAGE, "seen_share": SEEN_SHARE}
