"""Conversations waiting for a card, and the one status message about them during a burst.

Slack takes about ``SLACK_MESSAGES_PER_SECOND`` × 60 messages a minute in a
channel. When more conversations wait for a card than that (an outage, a
viral post), the pipeline cards the most urgent first and the rest stay
queued: never dropped, carded in later cycles. While that lasts, one status
message in the review channel says how many wait; each cycle edits it in
place (``chat.update``), and once the queue has drained it says so and the
next burst gets a message of its own. Its channel and ts are kept in
``app_state``, so a restart or a second process edits the same message.

The Home tab shows the same figures. This module keeps the counts and the message's
place; ``slack/sync.py`` shows them and ``slack/views.py`` words them.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, or_, select, update

from bot.db import Database
from bot.models import AppState, Conversation, State, audit, insert_state, transition, utcnow

log = logging.getLogger(__name__)

STATUS_KEY = "card_queue_status"  # value: JSON {"channel", "ts", "text"}; no row: no burst under way
READY = (State.DRAFTED, State.DRAFT_FAILED)  # waiting only for a card
COMING = (State.NEW, State.DRAFTING)  # still being checked and drafted
URGENCIES = ("high", "normal", "low")
ABANDONED = timedelta(minutes=5)  # a claim on the status message this old, never posted, is taken over
REFUSED_RETRY = timedelta(minutes=1)  # a refused card is tried again after this, doubling each time
REFUSED_RETRY_MAX = timedelta(hours=1)


@dataclass(frozen=True)
class CardQueue:
    """How many conversations wait for a card, against what Slack takes in a minute."""

    ready: int = 0  # drafted (or without a draft), waiting only for their card
    drafting: int = 0  # new or with the model; a card follows unless triage skips them
    by_urgency: dict[str, int] = field(default_factory=dict)  # of the ready ones; "unknown" without triage
    oldest: datetime | None = None  # when the longest-waiting ready one was posted
    per_minute: int = 60  # cards Slack takes in a minute in one channel

    @property
    def waiting(self) -> int:
        return self.ready + self.drafting

    @property
    def queued(self) -> bool:
        """More wait than Slack takes in a minute: the most urgent go first, the rest wait their turn."""
        return self.waiting > self.per_minute

    def minutes_to_clear(self) -> int:
        return -(-self.waiting // max(1, self.per_minute))

    def counts_text(self) -> str:
        parts = [f"{self.by_urgency[u]:,} {u}" for u in (*URGENCIES, "unknown") if self.by_urgency.get(u)]
        text = f"{self.ready:,} ready" + (f" ({', '.join(parts)} urgency)" if parts else "")
        return text + (f", {self.drafting:,} still being drafted" if self.drafting else "")


def card_queue(db: Database, settings) -> CardQueue:
    """The queue as it stands: one grouped query."""
    states = [s.value for s in (*READY, *COMING)]
    ready_states = {s.value for s in READY}
    ready, drafting, by_urgency, oldest = 0, 0, {}, None
    with db.session() as session:
        rows = session.execute(
            select(Conversation.state, Conversation.urgency, func.count(), func.min(Conversation.posted_at))
            .where(Conversation.state.in_(states), Conversation.burst_id.is_(None))  # a burst is one card, see bursts.py
            .group_by(Conversation.state, Conversation.urgency)
        ).all()
    for state, urgency, count, first in rows:
        if state in ready_states:
            ready += count
            key = urgency if urgency in URGENCIES else "unknown"
            by_urgency[key] = by_urgency.get(key, 0) + count
            oldest = first if oldest is None or (first and first < oldest) else oldest
        else:
            drafting += count
    per_minute = max(1, int(settings.slack_messages_per_second * 60))
    return CardQueue(ready, drafting, by_urgency, oldest, per_minute)


def ready_ids(db: Database, *, limit: int, solo: bool = True, skip=()) -> list[int]:
    """Conversations waiting only for their card, most urgent and oldest first (``solo``: not in a burst)."""
    return ids_in(db, *READY, limit=limit, solo=solo, skip=skip)


def ids_in(db: Database, *states: State, limit: int, solo: bool = False, skip=()) -> list[int]:
    """Conversations in ``states``, most urgent and oldest first; ``solo``: not part of a burst;
    none of the ids in ``skip``."""
    urgency_first = case((Conversation.urgency == "high", 0), (Conversation.urgency == "normal", 1), else_=2)
    query = select(Conversation.id).where(Conversation.state.in_([s.value for s in states]),
                                          or_(Conversation.card_retry_at.is_(None), Conversation.card_retry_at <= utcnow()))
    if solo:
        query = query.where(Conversation.burst_id.is_(None))
    if skip:
        query = query.where(Conversation.id.not_in(list(skip)))
    with db.session() as session:
        return list(session.scalars(query.order_by(urgency_first, Conversation.posted_at).limit(limit)))


def claim_for_card(db: Database, conversation_id: int) -> Conversation | None:
    """Take a ready conversation for its card (drafted → carded); None when another process has it.

    ``card_unconfirmed_at`` marks the post as under way until its outcome is recorded; an earlier
    mark still there (a crash, a timeout) is kept: see ``may_be_on_slack``."""
    now = utcnow()
    with db.session() as session:
        if not transition(session, conversation_id, READY, State.CARDED, carding_since=now,
                          card_unconfirmed_at=func.coalesce(Conversation.card_unconfirmed_at, now)):
            return None
        return session.get(Conversation, conversation_id)


def may_be_on_slack(conversation: Conversation) -> bool:
    """An earlier post of this card got no answer (the process died, Slack timed out): Slack may
    hold it though the database does not, so look before posting again."""
    return conversation.card_unconfirmed_at is not None and conversation.card_unconfirmed_at < conversation.carding_since


def release_card(db: Database, conversation: Conversation, *, unconfirmed: bool = False) -> None:
    """The card did not go out (Slack failing, not this card): the conversation is ready again.
    ``unconfirmed``: Slack did not answer, so it may have stored the card; the mark stays."""
    with db.session() as session:
        values = {} if unconfirmed else {"card_unconfirmed_at": None}
        transition(session, conversation.id, State.CARDED, _ready_state(conversation), carding_since=None, **values)


def card_refused(db: Database, conversation: Conversation, reason: str) -> datetime:
    """Slack refused this card: record its reason, and make it ready again after a wait that
    doubles with each refusal (a short card is used from now on); returns when."""
    failures = (conversation.card_failures or 0) + 1
    retry_at = utcnow() + min(REFUSED_RETRY * 2 ** (failures - 1), REFUSED_RETRY_MAX)
    with db.session() as session:
        transition(session, conversation.id, State.CARDED, _ready_state(conversation), carding_since=None,
                   card_unconfirmed_at=None, card_error=reason[:255], card_failures=failures, card_retry_at=retry_at)
        audit(session, conversation.id, "conversant", "card_refused", reason)
    return retry_at


def update_refused(db: Database, conversation_id: int, reason: str) -> None:
    """Slack refused to update a card in place: it is shown as a short card from now on."""
    with db.session() as session:
        session.execute(update(Conversation).where(Conversation.id == conversation_id)
                        .values(card_error=reason[:255], card_failures=Conversation.card_failures + 1)
                        .execution_options(synchronize_session=False))
        audit(session, conversation_id, "conversant", "card_refused", reason)


def _ready_state(conversation: Conversation) -> State:
    return State.DRAFTED if conversation.draft_text else State.DRAFT_FAILED


def carded(db: Database, conversation_id: int, channel: str, ts: str, *, thread_ts: str | None, found: bool = False) -> None:
    """The card is on Slack (``found``: an earlier post, found in the channel's history)."""
    with db.session() as session:
        stored = session.get(Conversation, conversation_id)
        stored.slack_channel, stored.slack_ts, stored.slack_thread_ts = channel, ts, thread_ts
        stored.card_unconfirmed_at = stored.card_retry_at = None
        audit(session, conversation_id, "conversant", "card_found" if found else "carded", f"{channel}/{ts}")


# -- where the status message lives -----------------------------------------------------------


def status_message(db: Database) -> dict | None:
    """The status message's place (``channel``, ``ts``, ``text``), or None when there is none."""
    with db.session() as session:
        row = session.get(AppState, STATUS_KEY)
        status = json.loads(row.value) if row else None
        if status is not None and not status.get("ts") and row.updated_at < utcnow() - ABANDONED:
            session.delete(row)  # a process died between claiming the message and posting it
            status = None
    return status


def claim_status_message(db: Database) -> bool:
    """Claim the key before posting: two processes never post two messages."""
    with db.session() as session:
        return insert_state(session, STATUS_KEY, json.dumps({"posting": True}), utcnow())


def store_status_message(db: Database, value: dict) -> None:
    with db.session() as session:
        session.execute(
            update(AppState).where(AppState.key == STATUS_KEY).values(value=json.dumps(value), updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def forget_status_message(db: Database) -> None:
    with db.session() as session:
        session.execute(delete(AppState).where(AppState.key == STATUS_KEY))
