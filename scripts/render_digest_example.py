"""Render the README's digest example with Conversant's own code: docs/digest-example.{json,png}.

    .venv/bin/python scripts/render_digest_example.py [OUT_DIR]
    .venv/bin/python scripts/render_digest_example.py --rows 100000 [--database URL]   # time the figures


A fixed, made-up fortnight of mentions for a brand called Acme goes into a
temporary SQLite database; the digest for Tuesday 24 November 2026 is built
from it exactly as `conversant digest --now` builds it, then written out
instead of posted. Times are in Europe/Berlin with business hours.
"""
from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings
from bot.db import migrate
from bot.jobs.digest import build_digest, digest_message, render_chart
from bot.models import Conversation, DismissReason, State
from bot.services import build_services

END = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
URLS = {"bluesky": "https://bsky.app/profile/{h}/post/3k{id}", "mastodon": "https://mastodon.social/@{h}/1134{id}",
        "x": "https://x.com/{h}/status/18{id}", "reddit": "https://www.reddit.com/r/acme/comments/{id}/"}
HANDLES = ["mira.bsky.social", "jonas.bsky.social", "aiko.bsky.social", "sam.bsky.social", "lena.bsky.social",
           "theo.bsky.social", "priya.bsky.social", "noah.bsky.social", "ines.bsky.social", "omar.bsky.social"]


class Recorder:
    def post(self, card, *, channel=None, thread_ts=None):
        return channel or "C_DIGEST", "1.0"

    def update(self, channel, ts, card):
        pass

    def notice(self, text):
        pass

    def tell(self, channel, user, text):
        pass


def fortnight(rng: random.Random, per_day: int | None = None) -> list[Conversation]:
    rows = []
    for day in range(14):
        day_end = END - timedelta(days=day)
        for n in range(per_day or (rng.randint(14, 26) if day else 31)):
            posted = day_end - timedelta(minutes=rng.randint(1, 24 * 60 - 1))
            handle = rng.choice(HANDLES).split(".")[0]
            platform = rng.choices(["bluesky", "mastodon", "x", "reddit"], [5, 2, 3, 1])[0]
            roll = rng.random()
            fields = {"urgency": rng.choice(["high", "normal", "normal", "low"])}
            if roll < 0.62 - day * 0.012:
                state, fields["replied_at"] = State.REPLIED, posted + timedelta(minutes=rng.choice([4, 9, 14, 22, 31, 48, 75, 140]))
            elif roll < 0.74:
                state, fields["dismiss_reason"] = State.DISMISSED, rng.choice(list(DismissReason)).value
            elif roll < 0.82:
                state = State.SKIPPED
            elif roll < 0.87:
                state = State.ANSWERED_ELSEWHERE
            elif roll < 0.9:
                state, fields["post_error"] = State.POST_FAILED, "Bluesky refused the post"
            else:
                state = State.CARDED
                fields["claimed_by"] = rng.choice([None, None, "U02JONAS"])
            rows.append(Conversation(
                platform=platform, external_id=f"{platform}-{day}-{n}", thread_key=f"{day}-{n}", thread_ref={},
                reason="mention", author_id=handle, author_handle=handle, author_name=None, text="…",
                url=URLS[platform].format(h=handle, id=f"{day:02d}{n:05d}"), posted_at=posted, received_at=posted,
                updated_at=posted, state=state.value, policy_problems=[], post_attempts=0,
                slack_channel="C0REVIEW" if state in (State.CARDED, State.POST_FAILED) else None,
                slack_ts="1.0" if state in (State.CARDED, State.POST_FAILED) else None, **fields,
            ))
    return rows


def main(out_dir: Path, *, rows: int | None = None, url: str | None = None) -> None:
    work = Path(tempfile.mkdtemp(prefix="conversant-digest-example-"))
    url = url or f"sqlite:///{work / 'example.db'}"
    migrate(url)
    settings = load_settings({
        "DATABASE_URL": url, "SLACK_REVIEW_CHANNEL": "C0REVIEW", "SLACK_DIGEST_CHANNEL": "C0DIGEST", "BRAND_NAME": "Acme",
        "REVIEW_SLA_MINUTES": "30", "DIGEST_TIMEZONE": "Europe/Berlin", "BUSINESS_HOURS": "Mon-Fri 09:00-18:00",
    }, dotenv_path="/nonexistent/.env")
    services = build_services(settings, publisher=Recorder(), platforms={})
    with services.db.session() as session:
        session.add_all(fortnight(random.Random(2026), per_day=rows // 14 if rows else None))
    started = time.perf_counter()
    digest = build_digest(services, end=END)
    message = digest_message(services, digest)
    computed = time.perf_counter() - started
    if rows:
        drawn = time.perf_counter()
        render_chart(digest)
        print(f"{rows} conversations over 14 days on {services.db.engine.dialect.name}: figures and message in {computed:.2f}s, "
              f"chart in {time.perf_counter() - drawn:.2f}s")
        return
    png = render_chart(digest)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "digest-example.json").write_text(json.dumps(message, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "digest-example.png").write_bytes(png)
    print(f"wrote {out_dir / 'digest-example.json'} and {out_dir / 'digest-example.png'} "
          f"({digest.figures.received} mentions that day, figures in {computed:.2f}s)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    parser.add_argument("--rows", type=int, help="time the digest over this many conversations instead of writing the example")
    parser.add_argument("--database", help="an empty database URL to use (default: a temporary SQLite file)")
    args = parser.parse_args()
    main(args.out_dir, rows=args.rows, url=args.database)
