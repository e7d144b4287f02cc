"""Tables: the database is the truth about every conversation; Slack shows it.

A ``Conversation`` is one mention that may need an answer, from arrival to its
outcome. Its ``state`` moves along the life in DESIGN.md, always through a
conditional update (see ``transition``) so that racing clicks or processes
cannot both win.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
    false,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores UTC, returns aware datetimes on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class State(str, enum.Enum):
    NEW = "new"
    DRAFTING = "drafting"  # claimed by one process while the model works
    DRAFTED = "drafted"
    DRAFT_FAILED = "draft_failed"
    SKIPPED = "skipped"  # the model said no reply is needed
    CARDED = "carded"
    APPROVED = "approved"
    POSTING = "posting"
    REPLIED = "replied"
    POST_FAILED = "post_failed"
    DISMISSED = "dismissed"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    DELETED = "deleted"  # the author deleted the mention before it was answered


# A post the platform did not confirm (a 502, a timeout) stays in POSTING with this post_error;
# after RECONCILE_AFTER the outbox looks for it in the thread before it may post again.
UNKNOWN_OUTCOME = "outcome unknown: "
RECONCILE_AFTER = timedelta(minutes=2)  # longer than any post can take before it times out

# A person can still act on these cards: the conversation waits for the team.
OPEN_ON_SLACK = (State.CARDED, State.POST_FAILED)


class DismissReason(str, enum.Enum):
    NOT_RELEVANT = "not_relevant"
    SPAM = "spam"
    HANDLED_ELSEWHERE = "handled_elsewhere"
    NO_REPLY_NEEDED = "no_reply_needed"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class SnoozeFor(str, enum.Enum):
    HOUR = "1h"
    TOMORROW = "tomorrow"

    @property
    def label(self) -> str:
        return {"1h": "Snooze 1 hour", "tomorrow": "Snooze until tomorrow"}[self.value]


class Direction(str, enum.Enum):
    """How a person asks the model to redraft."""

    SHORTER = "shorter"
    WARMER = "warmer"
    FORMAL = "formal"
    DIRECT = "direct"
    QUESTION = "question"
    CUSTOM = "custom"  # a person types the instruction

    @property
    def label(self) -> str:
        return _DIRECTION_LABELS[self]


_DIRECTION_LABELS = {
    Direction.SHORTER: "Shorter",
    Direction.WARMER: "Warmer",
    Direction.FORMAL: "More formal",
    Direction.DIRECT: "Answer directly",
    Direction.QUESTION: "Ask them a question",
    Direction.CUSTOM: "Something else…",
}


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("platform", "external_id", name="uq_conversation_mention"),
        Index("ix_conversations_state_received", "state", "received_at"),
        Index("ix_conversations_thread", "platform", "thread_key"),
        Index("ix_conversations_posted", "posted_at"),  # the digest reads by when people posted
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(512))
    thread_key: Mapped[str] = mapped_column(String(512))
    thread_ref: Mapped[dict] = mapped_column(JSON)  # adapter-private: what it needs to reply
    reason: Mapped[str] = mapped_column(String(20))  # mention | reply | quote | keyword
    author_id: Mapped[str] = mapped_column(String(255))
    author_handle: Mapped[str] = mapped_column(String(255))
    author_name: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(1024))
    parent_text: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))  # as the platform gives it ("en"), for routing
    account: Mapped[str | None] = mapped_column(String(20))  # the brand account that replies; None: the platform's first
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    state: Mapped[str] = mapped_column(String(24), default=State.NEW.value)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # triage and draft
    needs_reply: Mapped[bool | None]
    category: Mapped[str | None] = mapped_column(String(20))
    sentiment: Mapped[str | None] = mapped_column(String(20))
    urgency: Mapped[str | None] = mapped_column(String(20))
    triage_reason: Mapped[str | None] = mapped_column(Text)
    draft_text: Mapped[str | None] = mapped_column(Text)
    draft_error: Mapped[str | None] = mapped_column(Text)
    draft_model: Mapped[str | None] = mapped_column(String(255))  # the model that wrote draft_text, as its server names it
    policy_problems: Mapped[list] = mapped_column(JSON, default=list)
    grounding: Mapped[dict | None] = mapped_column(JSON)  # the help articles the draft was grounded in (bot/knowledge/grounding.py)
    private_hint: Mapped[list | None] = mapped_column(JSON)  # why a private reply is suggested (bot/privacy.py); empty: it is not

    # turns: a follow-up in a thread we already hold is the next turn of its first conversation
    turn: Mapped[int | None] = mapped_column(Integer)  # 1 for the first, None until linked
    first_turn_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    draft_stale: Mapped[bool] = mapped_column(default=False)  # a newer turn arrived while this draft waited
    burst_id: Mapped[int | None] = mapped_column(ForeignKey("bursts.id", ondelete="SET NULL"), index=True)

    # where it goes (bot/routing.py), decided once it is triaged
    route: Mapped[str | None] = mapped_column(String(64))
    review_channel: Mapped[str | None] = mapped_column(String(32))

    # the card
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    slack_thread_ts: Mapped[str | None] = mapped_column(String(32))  # set when the card is a turn in another card's thread
    carding_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    card_error: Mapped[str | None] = mapped_column(String(255))  # Slack's reason for refusing the card; then a short card is used
    card_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # refusals so far
    card_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a refused card is not tried again before
    card_unconfirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a post of unknown outcome began then
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last look at the thread on the platform

    # the decision and the reply
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dismiss_reason: Mapped[str | None] = mapped_column(String(32))
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_edited: Mapped[bool | None]
    reply_id: Mapped[str | None] = mapped_column(String(512))
    reply_url: Mapped[str | None] = mapped_column(String(1024))
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    post_attempts: Mapped[int] = mapped_column(Integer, default=0)
    post_error: Mapped[str | None] = mapped_column(Text)
    # a private reply: reply_text goes as a direct message, then notice_text is posted in public (bot/outbox.py)
    reply_private: Mapped[bool] = mapped_column(default=False, server_default=false())
    notice_text: Mapped[str | None] = mapped_column(Text)
    private_message_id: Mapped[str | None] = mapped_column(String(512))
    private_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set once the message is sent: never again

    # who is on it, and the nudges about it (bot/jobs/nudges.py)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    snoozed_by: Mapped[str | None] = mapped_column(String(32))
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_nudged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Conversation {self.id} {self.platform} {self.state}>"


class Burst(Base):
    """Many similar mentions in a short window, shown on Slack as one card (see bot/bursts.py)."""

    __tablename__ = "bursts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_text: Mapped[str] = mapped_column(Text)  # the first mention: what the others are compared with
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    opened_by: Mapped[str | None] = mapped_column(String(32))  # who asked to see them one by one


class AuditEvent(Base):
    """Who did what to which conversation, and the text that was posted."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # Slack user ID, or "conversant" for the bot itself
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


class PlatformCursor(Base):
    """Where each account's feed was read up to, saved with the mentions it yielded."""

    __tablename__ = "platform_cursors"

    account: Mapped[str] = mapped_column(String(20), primary_key=True)
    feed: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PlatformStatus(Base):
    """The last poll outcome per platform, so a failure is shown in Slack once."""

    __tablename__ = "platform_status"

    platform: Mapped[str] = mapped_column(String(20), primary_key=True)
    ok: Mapped[bool]
    error: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # rate limited until then


class AppState(Base):
    """Small facts the whole deployment shares: whether it is paused, the last digest sent."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


PAUSED_KEY = "paused"  # value: JSON {"by": user ID, "at": ISO time}; no row = running


@dataclass(frozen=True)
class Pause:
    by: str
    at: datetime


def get_pause(session: Session) -> Pause | None:
    row = session.get(AppState, PAUSED_KEY)
    if row is None:
        return None
    value = json.loads(row.value)
    return Pause(by=value.get("by", ""), at=datetime.fromisoformat(value["at"]))


def set_pause(session: Session, user: str, at: datetime) -> bool:
    """Pause; returns False when it already was."""
    return insert_state(session, PAUSED_KEY, json.dumps({"by": user, "at": at.isoformat()}), at)


def insert_state(session: Session, key: str, value: str, at: datetime) -> bool:
    """Insert ``key`` unless it exists; returns whether this caller inserted it (race-safe)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(AppState).values(key=key, value=value, updated_at=at).on_conflict_do_nothing(index_elements=["key"])
    return session.execute(statement.returning(AppState.key)).first() is not None


def clear_pause(session: Session) -> bool:
    """Resume; returns False when it was not paused."""
    return session.execute(delete(AppState).where(AppState.key == PAUSED_KEY)).rowcount == 1


def transition(session: Session, conversation_id: int, from_states, to_state: State, **values) -> bool:
    """Move a conversation to ``to_state`` only if it is in one of ``from_states``.

    Returns whether this caller won. The UPDATE's WHERE clause is the guard, so
    exactly one of two racing callers (clicks, retries, processes) gets True.
    """
    states = [s.value for s in ([from_states] if isinstance(from_states, State) else from_states)]
    result = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.state.in_(states))
        .values(state=to_state.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def audit(session: Session, conversation_id: int, actor: str, action: str, detail: str | None = None) -> None:
    session.add(AuditEvent(conversation_id=conversation_id, actor=actor, action=action, detail=detail))
