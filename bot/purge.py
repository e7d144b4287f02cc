"""Data retention: mention text is personal data, kept only as long as it serves.

``purge`` blanks what people wrote (the mention, the post it answered, the author's display name)
and what was drafted from it (drafts, the model's reasoning, the example's text and vector) for
settled conversations older than a retention window. What happened stays: states, times, who
approved or dismissed and why, the audit trail, the replies the brand posted (public, its own
words), the edit figures. A mention its author deleted loses its text at once (``FORGET_DELETED``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.models import Conversation, State, utcnow

SETTLED = (State.REPLIED, State.DISMISSED, State.ANSWERED_ELSEWHERE, State.DELETED, State.SKIPPED)
# The values a transition sets when the platform says the author deleted the mention.
FORGET_DELETED = {"text": "", "draft_text": None}


@dataclass(frozen=True)
class PurgeReport:
    before: datetime
    conversations: int
    examples: int

    def summary(self) -> str:
        return (f"blanked the text of {self.conversations} settled conversation(s) and {self.examples} approved example(s) "
                f"received before {self.before:%Y-%m-%d %H:%M} UTC; states, times, the audit trail and the figures are kept")


def purge(db, *, older_than: timedelta, now: datetime | None = None) -> PurgeReport:
    from bot.examples import Example

    before = (now or utcnow()) - older_than
    settled = [s.value for s in SETTLED]
    with db.session() as session:
        ids = select(Conversation.id).where(
            Conversation.state.in_(settled), Conversation.received_at < before,
        ).scalar_subquery()
        examples = session.execute(
            update(Example).where(Example.conversation_id.in_(ids), Example.mention_text != "")
            .values(mention_text="", draft_text=None, embedding=None, embedding_model=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        conversations = session.execute(
            update(Conversation).where(Conversation.id.in_(ids), Conversation.text != "")
            .values(text="", parent_text=None, author_name=None, draft_text=None, triage_reason=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    return PurgeReport(before, conversations, examples)
