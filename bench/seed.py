"""Many stored conversations, as a deployment that has run for a while holds them.

Conversation ``n`` (1 = newest) was posted ``n * days / count`` days ago. Its
outcome follows ``n % 100``: 60 % replied (within two hours), 10 % dismissed,
12 % skipped by triage, 6 % answered elsewhere, 1 % deleted, 1 % missed (a
card that was never handled, already nudged and escalated), 10 % replied.
One in five of the conversations from the last 20 minutes waits on a card.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, insert, text

from bot.db import normalise_url
from bot.models import Conversation

PLATFORMS = ("bluesky", "mastodon", "x", "reddit")
REASONS = ("not_relevant", "spam", "handled_elsewhere", "no_reply_needed")
URGENCIES = ("low", "normal", "normal", "high")


def _state(n: int, posted_at: datetime, now: datetime) -> str:
    if posted_at > now - timedelta(minutes=20) and n % 5 == 0:
        return "carded"
    bucket = n % 100
    for limit, state in ((60, "replied"), (70, "dismissed"), (82, "skipped"), (88, "answered_elsewhere"),
                         (89, "deleted"), (90, "carded")):
        if bucket < limit:
            return state
    return "replied"


def row(n: int, now: datetime, span: timedelta, count: int) -> dict:
    posted_at = now - span * (n / count)
    state = _state(n, posted_at, now)
    values = {
        "platform": PLATFORMS[n % 4], "external_id": f"seed-{n}", "thread_key": f"seed-{n}", "thread_ref": {"uri": f"seed-{n}"},
        "reason": "mention", "author_id": f"did:seed:{n % 5000}", "author_handle": f"user{n % 5000}.test",
        "author_name": f"User {n % 5000}",
        "text": f"Seeded mention number {n} asking how to export notes to PDF, it has been failing since Tuesday.",
        "url": f"https://example.test/post/{n}", "posted_at": posted_at, "received_at": posted_at + timedelta(seconds=30),
        "state": state, "updated_at": posted_at + timedelta(hours=1), "needs_reply": state != "skipped",
        "category": "question", "sentiment": "neutral", "urgency": URGENCIES[n % 4],
        "draft_text": "Thanks for telling us! Which version are you on?", "policy_problems": [], "post_attempts": 0,
        "checked_at": now,
        "turn": 1,  # each is the first turn of its own thread (bot.pipeline.link_turns has seen it)
    }
    if state in ("carded", "replied", "dismissed"):
        values.update(slack_channel="C_REVIEW", slack_ts=f"1700000000.{n:06d}")
    if state == "carded":
        values.update(last_nudged_at=now - timedelta(minutes=10), escalated_at=now - timedelta(minutes=10))
    if state == "replied":
        replied_at = posted_at + timedelta(seconds=60 + (n * 37) % 7200)
        values.update(replied_at=replied_at, reply_id=f"reply-{n}", reply_url=f"https://example.test/reply/{n}",
                      reply_text=values["draft_text"], decided_by="U_BENCH", decided_at=replied_at, post_attempts=1)
    if state == "dismissed":
        values.update(dismiss_reason=REASONS[n % 4], decided_by="U_BENCH", decided_at=posted_at + timedelta(minutes=5))
    return values


def seed(url: str, count: int, days: float, *, chunk: int = 5000) -> None:
    """Insert ``count`` conversations through SQLAlchemy (any database)."""
    now = datetime.now(timezone.utc)
    span = timedelta(days=days)
    engine = create_engine(normalise_url(url))
    columns = {c.name for c in Conversation.__table__.columns}
    try:
        for start in range(1, count + 1, chunk):
            rows = [row(n, now, span, count) for n in range(start, min(count, start + chunk - 1) + 1)]
            keys = set().union(*rows)
            rows = [{k: r.get(k) for k in keys & columns} for r in rows]
            with engine.begin() as conn:
                conn.execute(insert(Conversation), rows)
    finally:
        engine.dispose()


SEED_SQL = """
WITH g AS (
    SELECT n, now() - make_interval(secs => n::float8 * :span / :count) AS posted_at, n % 100 AS bucket
    FROM generate_series(1, :count) AS n
), s AS (
    SELECT n, posted_at,
        CASE WHEN posted_at > now() - interval '20 minutes' AND n % 5 = 0 THEN 'carded'
             WHEN bucket < 60 THEN 'replied' WHEN bucket < 70 THEN 'dismissed' WHEN bucket < 82 THEN 'skipped'
             WHEN bucket < 88 THEN 'answered_elsewhere' WHEN bucket < 89 THEN 'deleted' WHEN bucket < 90 THEN 'carded'
             ELSE 'replied' END AS state
    FROM g
)
INSERT INTO conversations (
    platform, external_id, thread_key, thread_ref, reason, author_id, author_handle, author_name, text, url,
    posted_at, received_at, state, updated_at, needs_reply, category, sentiment, urgency, draft_text, policy_problems,
    post_attempts, checked_at, slack_channel, slack_ts, last_nudged_at, escalated_at, replied_at, reply_id, reply_url,
    reply_text, decided_by, decided_at, dismiss_reason)
SELECT
    (ARRAY['bluesky','mastodon','x','reddit'])[1 + n % 4], 'seed-' || n, 'seed-' || n, json_build_object('uri', 'seed-' || n),
    'mention', 'did:seed:' || (n % 5000), 'user' || (n % 5000) || '.test', 'User ' || (n % 5000),
    'Seeded mention number ' || n || ' asking how to export notes to PDF, it has been failing since Tuesday.',
    'https://example.test/post/' || n, posted_at, posted_at + interval '30 seconds', state, posted_at + interval '1 hour',
    state <> 'skipped', 'question', 'neutral', (ARRAY['low','normal','normal','high'])[1 + n % 4],
    'Thanks for telling us! Which version are you on?', '[]'::json,
    CASE WHEN state = 'replied' THEN 1 ELSE 0 END, now(),
    CASE WHEN state IN ('carded','replied','dismissed') THEN 'C_REVIEW' END,
    CASE WHEN state IN ('carded','replied','dismissed') THEN '1700000000.' || lpad(n::text, 6, '0') END,
    CASE WHEN state = 'carded' THEN now() - interval '10 minutes' END,
    CASE WHEN state = 'carded' THEN now() - interval '10 minutes' END,
    CASE WHEN state = 'replied' THEN posted_at + make_interval(secs => 60 + (n * 37) % 7200) END,
    CASE WHEN state = 'replied' THEN 'reply-' || n END,
    CASE WHEN state = 'replied' THEN 'https://example.test/reply/' || n END,
    CASE WHEN state = 'replied' THEN 'Thanks for telling us! Which version are you on?' END,
    CASE WHEN state IN ('replied','dismissed') THEN 'U_BENCH' END,
    CASE WHEN state = 'replied' THEN posted_at + make_interval(secs => 60 + (n * 37) % 7200)
         WHEN state = 'dismissed' THEN posted_at + interval '5 minutes' END,
    CASE WHEN state = 'dismissed' THEN (ARRAY['not_relevant','spam','handled_elsewhere','no_reply_needed'])[1 + n % 4] END
FROM s
"""


def seed_postgres(url: str, count: int, days: float) -> None:
    """The same rows, generated by PostgreSQL itself (a million in seconds)."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text(SEED_SQL), {"count": count, "span": days * 86400})
            if "turn" in Conversation.__table__.columns:
                conn.execute(text("UPDATE conversations SET turn = 1 WHERE turn IS NULL"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE conversations"))
    finally:
        engine.dispose()
