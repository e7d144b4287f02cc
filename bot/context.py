"""What the model should know besides the mention: the thread so far and the author's history.

All of it comes from our own database (earlier turns, the replies we posted,
how the author's other conversations ended), so it costs no platform call and
works the same on every platform. A token budget drops the oldest first.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Conversation, State

HISTORY_LIMIT = 3
CONTEXT_TOKEN_BUDGET = 1500
CHARS_PER_TOKEN = 4  # a rough, provider-neutral estimate; good enough to bound the prompt

OUTCOMES = {
    State.REPLIED.value: "we replied",
    State.DISMISSED.value: "we dismissed it",
    State.ANSWERED_ELSEWHERE.value: "we answered it directly on the platform",
    State.SKIPPED.value: "no reply was needed",
    State.DELETED.value: "they deleted it",
}


@dataclass(frozen=True)
class Turn:
    author: str
    said: str
    we_replied: str | None


@dataclass(frozen=True)
class PastConversation:
    said: str
    outcome: str
    we_replied: str | None


@dataclass(frozen=True)
class DraftContext:
    thread: list[Turn]  # earlier turns in this thread, oldest first
    history: list[PastConversation]  # the author's other recent conversations, newest first

    def as_prompt_data(self, budget_tokens: int = CONTEXT_TOKEN_BUDGET) -> dict:
        """The context as JSON-ready data within the budget: the oldest turns and history go first."""
        thread, history = list(self.thread), list(self.history)

        def data() -> dict:
            out = {}
            if thread:
                out["thread_so_far"] = [asdict(t) for t in thread]
            if history:
                out["their_earlier_conversations_with_us"] = [asdict(h) for h in history]
            return out

        while (thread or history) and len(json.dumps(data(), ensure_ascii=False)) > budget_tokens * CHARS_PER_TOKEN:
            if history:
                history.pop()  # newest first, so pop() drops the oldest
            else:
                thread.pop(0)
        return data()


def gather(session: Session, conversation: Conversation) -> DraftContext:
    earlier = session.scalars(
        select(Conversation)
        .where(Conversation.platform == conversation.platform, Conversation.thread_key == conversation.thread_key,
               Conversation.id != conversation.id, Conversation.posted_at <= conversation.posted_at)
        .order_by(Conversation.posted_at, Conversation.id)
    ).all()
    others = session.scalars(
        select(Conversation)
        .where(Conversation.platform == conversation.platform, Conversation.author_id == conversation.author_id,
               Conversation.thread_key != conversation.thread_key, Conversation.state.in_(list(OUTCOMES)))
        .order_by(Conversation.posted_at.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return DraftContext(
        thread=[Turn(author=c.author_handle, said=c.text, we_replied=_sent(c)) for c in earlier],
        history=[PastConversation(said=c.text, outcome=OUTCOMES[c.state], we_replied=_sent(c)) for c in others],
    )


def _sent(conversation: Conversation) -> str | None:
    return conversation.reply_text if conversation.state == State.REPLIED.value else None
