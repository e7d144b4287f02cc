"""Conversations as threads: turns, the thread's first card, and what the platform's thread says.

``settle_on_platform`` is the one place that asks a platform "has the brand already answered
this mention, or was it deleted?", for every caller (a new mention, a card waiting for review,
a reply about to be posted, a nudge), and the one place that decides the resulting state:

    the brand's reply is there   →  ANSWERED_ELSEWHERE (or REPLIED, when it is the post we lost track of)
    the mention was deleted      →  DELETED
    still open, or no answer     →  None: the conversation stays as it is
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db import Database, one_at_a_time
from bot.models import Conversation, State, audit, transition, utcnow
from bot.platforms.base import MentionGone, Platform, PlatformError
from bot.purge import FORGET_DELETED

log = logging.getLogger(__name__)


def settle_on_platform(db: Database, platform: Platform, conversation: Conversation, from_states,
                       *, found: State = State.ANSWERED_ELSEWHERE, must_know: bool = False,
                       others: Sequence[Platform] = ()) -> State | None:
    """Look at the mention's thread: the state it moved to (answered or deleted), or None while open.

    ``found`` is what a reply of the brand's in the thread means: ANSWERED_ELSEWHERE for a
    conversation nobody answered through Conversant, REPLIED for a post whose outcome was lost.
    ``others``: the brand's other accounts on the platform; a reply from any of them answers it
    too (ANSWERED_ELSEWHERE), asked only when the replying account has none.
    ``must_know``: a platform that cannot be asked raises (PlatformError) instead of counting as open.
    """
    cid = conversation.id
    try:
        reply = platform.find_brand_reply(conversation.thread_ref)
        for other in others if reply is None else ():
            reply = other.find_brand_reply(conversation.thread_ref)
            if reply is not None:
                found = State.ANSWERED_ELSEWHERE  # a sibling's reply, never the post this account lost
                break
    except MentionGone:
        with db.session() as session:
            if transition(session, cid, from_states, State.DELETED, checked_at=utcnow(), **FORGET_DELETED):
                audit(session, cid, "conversant", "deleted_by_author")
        log.info("conversation %s: deleted by its author; nothing will be posted", cid)
        return State.DELETED
    except PlatformError as error:
        if must_know:
            raise
        log.info("conversation %s: could not look at the thread (%s); it stays as it is", cid, error)
        return None
    if reply is None:
        with db.session() as session:
            session.execute(update(Conversation).where(Conversation.id == cid).values(checked_at=utcnow())
                            .execution_options(synchronize_session=False))
        return None
    values = {"reply_id": reply.external_id, "reply_url": reply.url, "checked_at": utcnow()}
    if found is State.REPLIED:
        values.update(replied_at=utcnow(), post_error=None)
    with db.session() as session:
        if transition(session, cid, from_states, found, **values):
            audit(session, cid, "conversant", "reconciled" if found is State.REPLIED else "answered_elsewhere", reply.url)
    log.info("conversation %s: the brand's reply is in the thread (%s)", cid, reply.url)
    return found


def link_turns(db: Database) -> list[int]:
    """A new mention in a thread we already hold is the next turn of that conversation.

    Drafts of earlier turns still waiting on Slack are then out of date: they cannot be
    approved as they stand, and the new turn's draft reads the whole thread. Returns the
    conversations whose draft went out of date (their cards change).
    """
    return db.retry(lambda: _link_turns(db), what="linking turns")


TURNS_LOCK = 0x636F6E74  # "cont": one process at a time links turns (PostgreSQL advisory lock)


def _link_turns(db: Database) -> list[int]:
    outdated: list[int] = []
    with db.session() as session:
        one_at_a_time(session, TURNS_LOCK)
        unlinked = session.scalars(
            select(Conversation).where(Conversation.turn.is_(None)).order_by(Conversation.posted_at, Conversation.id)
        ).all()
        for conversation in unlinked:
            earlier = session.scalars(
                select(Conversation)
                .where(Conversation.platform == conversation.platform, Conversation.thread_key == conversation.thread_key,
                       Conversation.turn.is_not(None), Conversation.id != conversation.id)
                .order_by(Conversation.turn)
            ).all()
            if not earlier:
                conversation.turn = 1
                continue
            conversation.turn = earlier[-1].turn + 1
            conversation.first_turn_id = earlier[0].first_turn_id or earlier[0].id
            for turn in earlier:
                if turn.state in (State.CARDED.value, State.DRAFTED.value) and turn.draft_text and not turn.draft_stale:
                    turn.draft_stale = True
                    outdated.append(turn.id)
            session.flush()
    return outdated


@dataclass(frozen=True)
class ThreadSummary:
    turns: int
    latest_state: str


def summary(session: Session, conversation: Conversation) -> ThreadSummary | None:
    """For a conversation's top-level card: how many turns it has and where the latest stands."""
    top_level = conversation.first_turn_id is None or (conversation.slack_ts and not conversation.slack_thread_ts)
    if not conversation.turn or not top_level:
        return None
    turns = session.scalars(
        select(Conversation)
        .where(Conversation.platform == conversation.platform, Conversation.thread_key == conversation.thread_key,
               Conversation.turn.is_not(None))
        .order_by(Conversation.turn)
    ).all()
    if len(turns) < 2:
        return None
    return ThreadSummary(turns=len(turns), latest_state=turns[-1].state)


def first_card(session: Session, conversation: Conversation) -> Conversation | None:
    """The top-level card of the conversation this turn belongs to, if one was posted."""
    if not conversation.first_turn_id:
        return None
    return session.scalars(
        select(Conversation)
        .where(Conversation.platform == conversation.platform, Conversation.thread_key == conversation.thread_key,
               Conversation.slack_ts.is_not(None), Conversation.slack_thread_ts.is_(None), Conversation.id != conversation.id)
        .order_by(Conversation.turn)
        .limit(1)
    ).first()
