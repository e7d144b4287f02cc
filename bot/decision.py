"""What a person decides on a card: approve, approve an edited text, dismiss, retry.

Each is one conditional update plus an audit record, so a double click, a
Slack retry or a second process changes nothing the second time. Posting is
not done here: the caller hands the conversation to ``outbox.send``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from bot import policy
from bot.models import Conversation, DismissReason, State, audit, transition, utcnow
from bot.review import reply_rules
from bot.services import Services


class Outcome(enum.Enum):
    DONE = "done"
    NOT_FOUND = "not_found"
    ALREADY_HANDLED = "already_handled"
    BLOCKED = "blocked"  # the text breaks the output policy


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    message: str = ""

    @property
    def done(self) -> bool:
        return self.outcome is Outcome.DONE


def approve(services: Services, conversation_id: int, user: str) -> Decision:
    """Approve the draft as it stands."""
    conversation = _load(services, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    if not conversation.draft_text:
        return Decision(Outcome.BLOCKED, "There is no draft to approve; use Edit to write the reply.")
    if conversation.draft_stale:
        return Decision(Outcome.BLOCKED, "A newer message arrived in this thread, so this draft is out of date. "
                                         "Approve the newest turn's draft, or use Edit here.")
    problems = policy.check(conversation.draft_text, reply_rules(services, conversation))
    if problems:
        return Decision(Outcome.BLOCKED, "This draft can't be approved as written: " + " ".join(problems) + " Use Edit to fix it.")
    return _approve(services, conversation, user, conversation.draft_text, edited=False, from_states=(State.CARDED,))


def approve_edited(services: Services, conversation_id: int, user: str, text: str) -> Decision:
    """Approve a text written or changed by a person (Edit)."""
    conversation = _load(services, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    text = text.strip()
    problems = check_text(services, conversation, text)
    if problems:
        return Decision(Outcome.BLOCKED, " ".join(problems))
    edited = text != (conversation.draft_text or "")
    return _approve(services, conversation, user, text, edited=edited, from_states=(State.CARDED, State.POST_FAILED))


def check_text(services: Services, conversation: Conversation, text: str) -> list[str]:
    return policy.check(text, reply_rules(services, conversation))


def _approve(services, conversation, user, text, *, edited, from_states) -> Decision:
    with services.db.session() as session:
        won = transition(
            session, conversation.id, from_states, State.APPROVED,
            reply_text=text, reply_edited=edited, decided_by=user, decided_at=utcnow(), post_error=None,
        )
        if won:
            audit(session, conversation.id, user, "approved_edited" if edited else "approved", text)
    return Decision(Outcome.DONE) if won else already_handled(services, conversation.id)


def dismiss(services: Services, conversation_id: int, user: str, reason: DismissReason) -> Decision:
    with services.db.session() as session:
        won = transition(
            session, conversation_id, (State.CARDED, State.POST_FAILED), State.DISMISSED,
            dismiss_reason=reason.value, decided_by=user, decided_at=utcnow(),
        )
        if won:
            audit(session, conversation_id, user, "dismissed", reason.value)
    return Decision(Outcome.DONE) if won else already_handled(services, conversation_id)


def retry(services: Services, conversation_id: int, user: str) -> Decision:
    with services.db.session() as session:
        won = transition(session, conversation_id, State.POST_FAILED, State.APPROVED, decided_by=user, decided_at=utcnow())
        if won:
            audit(session, conversation_id, user, "retried")
    return Decision(Outcome.DONE) if won else already_handled(services, conversation_id)


def _load(services: Services, conversation_id: int) -> Conversation | None:
    with services.db.session() as session:
        return session.get(Conversation, conversation_id)


def already_handled(services: Services, conversation_id: int) -> Decision:
    conversation = _load(services, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    who = f" by <@{conversation.decided_by}>" if conversation.decided_by else ""
    what = State(conversation.state).value.replace("_", " ")
    return Decision(Outcome.ALREADY_HANDLED, f"This conversation was already handled{who} (it is {what}).")
