"""Rows as the database holds them, built without a database."""
from __future__ import annotations

from datetime import datetime, timezone

from bot.models import Conversation

NOON = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def conversation(**fields) -> Conversation:
    """A conversation row as the database would hold it, without a database."""
    values = dict(
        id=7, platform="bluesky", external_id="at://did:plc:alice/app.bsky.feed.post/1", thread_key="t1",
        thread_ref={"uri": "at://did:plc:alice/app.bsky.feed.post/1"}, reason="mention", author_id="did:plc:alice",
        author_handle="alice.test", author_name="Alice", text="@brand.test how do I export my notes?",
        url="https://bsky.app/profile/alice.test/post/1", posted_at=NOON, state="carded", turn=1,
        draft_text="Happy to help! Which app version are you on?", draft_stale=False, policy_problems=[],
        category="question", sentiment="neutral", urgency="normal",
    )
    values.update(fields)
    return Conversation(**values)
