"""The mentions and model answers the benchmark feeds the fakes (drain.py measures, remote.py serves them)."""
from __future__ import annotations

import hashlib
import random

from bench.common import BRAND
from tests.conftest import triage

AUTHORS = 50
URGENCY = ("high",) * 1 + ("normal",) * 5 + ("low",) * 4  # 10 % high, 50 % normal, 40 % low
TOPICS = (
    "my export to PDF fails with a timeout",
    "the app logs me out every few minutes since the update",
    "love the new dark mode, thank you!",
    "is there a way to share a notebook read-only?",
    "billing charged me twice this month",
    "sync between phone and laptop stopped working",
)


def urgency_of(text: str) -> str:
    return URGENCY[int(hashlib.blake2b(text.encode(), digest_size=4).hexdigest(), 16) % len(URGENCY)]


def responder(request: dict) -> dict:
    """A triage answer whose urgency depends on the mention, so cards have an order to keep."""
    mention = request["messages"][-1]["content"]
    return triage("Thanks for telling us, that sounds frustrating. Which version of the app are you on?",
                  urgency=urgency_of(mention))


def words(count: int, seed: int = 7) -> list[str]:
    """Made-up words, so that no two mentions read alike (bursts of similar mentions make one card)."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return ["".join(rng.choice(syllables) for _ in range(3)) for _ in range(count)]


def post_backlog(bluesky, count: int) -> None:
    """``count`` unrelated mentions: a quiet day's backlog, not one outage (that would be one burst card)."""
    for i in range(AUTHORS):
        bluesky.add_account(f"user{i}.test", display_name=f"User {i}")
    rng = random.Random(count)
    vocabulary = words(5000)
    for n in range(count):
        detail = " ".join(rng.sample(vocabulary, 10))
        bluesky.post(f"user{n % AUTHORS}.test", f"@{BRAND} {TOPICS[n % len(TOPICS)]}: {detail} (#{n})")
