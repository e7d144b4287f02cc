"""Redraft: ask the model for a new draft in a given direction; it replaces the old one in place.

The card is rewritten by the caller (``flows.redraft``)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot import policy, privacy
from bot.config import Settings
from bot.context import gather as gather_context
from bot.db import Database
from bot.draft import Prompts, build_messages, reply_cap
from bot.knowledge.grounding import ground
from bot.llm import Drafter, DraftUnavailable
from bot.models import Conversation, Direction, State, audit, transition
from bot.rulebook import Rulebook

log = logging.getLogger(__name__)


INSTRUCTIONS = {
    Direction.SHORTER: "Make it shorter: one sentence if you can, keeping what matters.",
    Direction.WARMER: "Make it warmer and more personal, still sincere and never gushing.",
    Direction.FORMAL: "Make it more formal and polished, still human.",
    Direction.DIRECT: "Answer their point directly first; drop anything that delays the answer.",
    Direction.QUESTION: "End with one short, genuine question that moves the conversation on.",
}

CUSTOM_LIMIT = 300


@dataclass(frozen=True)
class RedraftResult:
    done: bool
    message: str = ""


@dataclass(frozen=True)
class Redrafter:
    """What a redraft uses: the database, the model, the reply rules, and the prompts in the voice
    of the account that replies (``settings`` for the help-article search)."""
    db: Database
    drafter: Drafter | None
    rules: Rulebook
    prompts_for: Callable[[Conversation], Prompts]
    settings: Settings

    def redraft(self, conversation_id: int, user: str, direction: Direction, custom: str = "") -> RedraftResult:
        instruction = custom.strip()[:CUSTOM_LIMIT] if direction is Direction.CUSTOM else INSTRUCTIONS[direction]
        if not instruction:
            return RedraftResult(False, "Say how the draft should change.")
        return self._redraft(conversation_id, user, instruction, audit_detail=f"{direction.value}: {instruction}")

    def with_article(self, conversation_id: int, user: str, article_id: int) -> RedraftResult:
        """A new draft based on another of the help articles found for the mention (the card's menu)."""
        return self._redraft(conversation_id, user, "Base it on the help article you are given, and link it if it helps.",
                             audit_detail=f"article {article_id}", article_id=article_id)

    def _redraft(self, conversation_id: int, user: str, instruction: str, *, audit_detail: str,
                 article_id: int | None = None) -> RedraftResult:
        with self.db.session() as session:
            conversation = session.get(Conversation, conversation_id)
            context = gather_context(session, conversation) if conversation else None
        if conversation is None or conversation.state != State.CARDED.value:
            return RedraftResult(False, "This conversation is no longer waiting for a reply, so there is nothing to redraft.")
        if self.drafter is None:
            return RedraftResult(False, "No model is configured, so Conversant can't redraft; use Edit to write the reply.")
        grounding = ground(self.db, self.drafter, self.settings, conversation, context, choose=article_id)
        if article_id is not None and (grounding is None or grounding.chosen != article_id):
            return RedraftResult(False, "That help article is no longer in the knowledge base; the current draft is unchanged.")
        rules = self.rules.draft(conversation, grounding.urls if grounding else None)
        messages = build_messages(self.prompts_for(conversation), conversation, rules, context=context, grounding=grounding)
        current = conversation.draft_text or "(there is no draft yet)"
        # From the team, so trusted: it goes in a system message, after the untrusted mention.
        messages.append({"role": "system", "content": f"The current draft is:\n{current}\n\nWrite a new draft. {instruction}"})
        try:
            triage = self.drafter.triage(messages, reply_max_chars=reply_cap(rules.limit))
        except DraftUnavailable as error:
            log.warning("conversation %s: redraft failed: %s", conversation_id, error)
            return RedraftResult(False, f"Couldn't redraft: {error}. The current draft is unchanged.")
        if not triage.reply.strip():
            return RedraftResult(False, "The model gave an empty draft; the current draft is unchanged.")
        text = self.rules.compose(conversation, triage.reply.strip())
        with self.db.session() as session:
            won = transition(session, conversation_id, State.CARDED, State.CARDED, draft_text=text, draft_error=None,
                             draft_model=triage.drafted_by or None, policy_problems=policy.check(text, rules),
                             grounding=grounding.record(text) if grounding else None,
                             private_hint=privacy.suggestion(conversation.text, text, model_says=triage.private))
            if won:
                audit(session, conversation_id, user, "redrafted", audit_detail)
        if not won:
            return RedraftResult(False, "Someone decided on this conversation meanwhile; the draft was not replaced.")
        return RedraftResult(True)
