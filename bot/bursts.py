"""Bursts: many people saying the same thing at once (an outage, a viral post) make one card.

Every mention still gets its own draft, its own reply and its own record; only
Slack sees them together. A burst card lists a few examples and offers
Approve all, Open one by one and Dismiss all (``flows.py``). Until a burst is opened, its
members share the burst card's message (so nudges and links point at it).

This module groups and keeps membership; ``slack/sync.py`` shows bursts.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from bot.db import Database, one_at_a_time
from bot.models import Burst, Conversation, State, audit, transition, utcnow

log = logging.getLogger(__name__)

MIN_MENTIONS = 5  # fewer than this are shown one by one
WINDOW = timedelta(minutes=30)  # how close in time the mentions of one burst are
SIMILARITY = 0.5  # Jaccard overlap of their words
POSTING = "posting:"  # Burst.slack_channel while one process posts its card
CARD_CLAIM_SECONDS = 600  # a claim this old was left by a process that died
UNCONFIRMED = "unconfirmed:"  # Burst.slack_channel after a post Slack did not answer: Slack may hold the card
FORMING_LOCK = 0x636F6E62  # "conb": one process at a time forms bursts (PostgreSQL advisory lock)
STOPWORDS = frozenset(
    "the and for you your are was were this that with have has had not but what when why how all any can our out "
    "just now get got its it's i'm from they them their there about been will would could should again still".split()
)


def words(text: str) -> frozenset[str]:
    text = re.sub(r"https?://\S+|@[\w.@-]+", " ", text.lower())
    return frozenset(w for w in re.findall(r"[^\W\d_]{3,}", text) if w not in STOPWORDS)


def similar(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= SIMILARITY


@dataclass
class _Cluster:
    lead_words: frozenset[str]
    members: list[Conversation]
    burst: Burst | None = None


NOT_YET_CARDED = [State.NEW.value, State.DRAFTING.value, State.DRAFTED.value, State.DRAFT_FAILED.value]


def form(db: Database) -> None:
    """Group similar first turns not yet carded into bursts, by what the mentions say.

    Runs before drafting, so the members of a burst never get cards of their
    own; a burst already on Slack takes in new similar mentions whatever their number.
    """
    db.retry(lambda: _form(db), what="forming bursts")


def _form(db: Database) -> None:
    since = utcnow() - WINDOW
    with db.session() as session:
        one_at_a_time(session, FORMING_LOCK)  # two processes would each make a burst of the same mentions
        waiting = session.scalars(
            select(Conversation)
            .where(Conversation.state.in_(NOT_YET_CARDED), Conversation.burst_id.is_(None),
                   Conversation.first_turn_id.is_(None), Conversation.posted_at >= since)
            .order_by(Conversation.posted_at, Conversation.id)
        ).all()
        if not waiting:
            return
        clusters = [_Cluster(words(b.sample_text), [], b) for b in session.scalars(select(Burst).where(Burst.created_at >= since))]
        for conversation in waiting:
            mine = words(conversation.text)
            cluster = next((c for c in clusters if similar(c.lead_words, mine)), None)
            if cluster is None:
                clusters.append(_Cluster(mine, [conversation]))
            else:
                cluster.members.append(conversation)
        for cluster in clusters:
            if cluster.burst is None and len(cluster.members) < MIN_MENTIONS:
                continue
            if cluster.burst is None:
                cluster.burst = Burst(sample_text=cluster.members[0].text, created_at=utcnow())
                session.add(cluster.burst)
                session.flush()
            for member in cluster.members:
                member.burst_id = cluster.burst.id


def members(session, burst_id: int) -> list[Conversation]:
    return list(session.scalars(select(Conversation).where(Conversation.burst_id == burst_id).order_by(Conversation.posted_at, Conversation.id)))


def ready(conversation: Conversation) -> bool:
    """Can go out with Approve all: waiting, with a draft that passes the policy and is not stale."""
    return (conversation.state == State.CARDED.value and bool(conversation.draft_text)
            and not conversation.policy_problems and not conversation.draft_stale)


def inside_card(conversation: Conversation) -> bool:
    """Still shown only inside its burst's card (not opened one by one)."""
    return conversation.burst_id is not None and conversation.slack_thread_ts is None


def with_drafted_members(db: Database) -> list[Burst]:
    """Bursts with members drafted and waiting for the burst's card."""
    with db.session() as session:
        return list(session.scalars(
            select(Burst).where(Burst.id.in_(
                select(Conversation.burst_id).where(Conversation.state.in_([State.DRAFTED.value, State.DRAFT_FAILED.value]))
            ))
        ))


def claim_card(db: Database, burst_id: int) -> bool:
    """Only one process posts a burst's card: a conditional update marks it as being posted
    (in ``slack_channel``, with the time, so a claim left by a dead process runs out)."""
    now = int(utcnow().timestamp())
    with db.session() as session:
        claimed = session.execute(
            update(Burst)
            .where(Burst.id == burst_id, Burst.slack_ts.is_(None),
                   or_(Burst.slack_channel.is_(None), Burst.slack_channel < f"{POSTING}{now - CARD_CLAIM_SECONDS}",
                       Burst.slack_channel.startswith(UNCONFIRMED)))
            .values(slack_channel=f"{POSTING}{now}")
            .execution_options(synchronize_session=False)
        )
        return claimed.rowcount == 1


def unconfirmed_since(burst: Burst) -> float | None:
    """When an earlier post of the burst's card began whose outcome was never recorded (its
    process died, or Slack did not answer), as epoch seconds; None when there was none."""
    marker = "" if burst.slack_ts else burst.slack_channel or ""
    for prefix in (POSTING, UNCONFIRMED):
        if marker.startswith(prefix):
            return float(marker.removeprefix(prefix))
    return None


def release_card(db: Database, burst_id: int, *, unconfirmed_since: float | None = None) -> None:
    """The burst's card did not go out; ``unconfirmed_since``: Slack may hold it, posted from then."""
    value = f"{UNCONFIRMED}{int(unconfirmed_since)}" if unconfirmed_since else None
    with db.session() as session:
        session.execute(update(Burst).where(Burst.id == burst_id, Burst.slack_ts.is_(None)).values(slack_channel=value)
                        .execution_options(synchronize_session=False))


def card_members(db: Database, burst_id: int, channel: str, ts: str) -> int:
    """The burst card is on Slack: its waiting members are carded, sharing its message."""
    carded = 0
    with db.session() as session:
        stored = session.get(Burst, burst_id)
        stored.slack_channel, stored.slack_ts = channel, ts
        for conversation in members(session, burst_id):
            if transition(session, conversation.id, (State.DRAFTED, State.DRAFT_FAILED), State.CARDED,
                          slack_channel=channel, slack_ts=ts, carding_since=utcnow()):
                audit(session, conversation.id, "conversant", "carded", f"burst {burst_id}: {channel}/{ts}")
                carded += 1
    return carded


def open_one_by_one(db: Database, burst_id: int, user: str) -> tuple[Burst | None, list[Conversation]]:
    """Mark the burst opened; returns it and the members still waiting inside its card."""
    with db.session() as session:
        burst = session.get(Burst, burst_id)
        if burst is None or not burst.slack_ts:
            return burst, []
        burst.opened_by = burst.opened_by or user
        waiting = [c for c in members(session, burst_id) if inside_card(c) and c.state in (State.CARDED.value, State.POST_FAILED.value)]
    return burst, waiting


def waiting_members(db: Database, burst_id: int) -> list[Conversation]:
    with db.session() as session:
        return members(session, burst_id)


@dataclass(frozen=True)
class BulkResult:
    done: int
    skipped: int

    @property
    def message(self) -> str:
        if not self.skipped:
            return ""
        return f"{self.skipped} of them need a person (no draft, a policy problem, or already handled): open them one by one."
