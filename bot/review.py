"""Cards on Slack as a view of the database: post one, or rewrite it after a change."""
from __future__ import annotations

import logging

from sqlalchemy import select

from bot.cards import CardFacts, ThreadSummary, burst_card, review_card
from bot.models import Burst, Conversation
from bot.policy import ReplyRules
from bot.services import Services
from bot.slack.publish import CardPublishError
from bot.text import grapheme_count

log = logging.getLogger(__name__)

PLATFORM_LABELS = {"bluesky": "Bluesky", "mastodon": "Mastodon", "x": "X", "reddit": "Reddit"}


def reply_rules(services: Services, conversation: Conversation) -> ReplyRules:
    platform = services.platforms.get(conversation.platform)
    return ReplyRules(
        platform_label=PLATFORM_LABELS.get(conversation.platform, conversation.platform),
        limit=platform.text_limit if platform else 300,
        length=platform.text_length if platform else grapheme_count,
        author_handle=conversation.author_handle,
        allowed_domains=services.settings.brand_allowed_domains,
        platform=conversation.platform,
    )


def card_for(services: Services, conversation: Conversation) -> dict:
    rules = reply_rules(services, conversation)
    length = rules.length(conversation.draft_text) if conversation.draft_text else None
    facts = CardFacts(platform_label=rules.platform_label, limit=rules.limit, draft_length=length,
                      thread=_thread_summary(services, conversation))
    return review_card(conversation, facts)


def _thread_summary(services: Services, conversation: Conversation) -> ThreadSummary | None:
    """For a conversation's top-level card: how many turns it has and where the latest stands."""
    top_level = conversation.first_turn_id is None or (conversation.slack_ts and not conversation.slack_thread_ts)
    if not conversation.turn or not top_level:
        return None
    with services.db.session() as session:
        turns = session.scalars(
            select(Conversation)
            .where(Conversation.platform == conversation.platform, Conversation.thread_key == conversation.thread_key,
                   Conversation.turn.is_not(None))
            .order_by(Conversation.turn)
        ).all()
    if len(turns) < 2:
        return None
    return ThreadSummary(turns=len(turns), latest_state=turns[-1].state)


def burst_card_for(services: Services, burst_id: int) -> dict | None:
    from bot import bursts  # bursts decide on cards; cards are rendered here

    with services.db.session() as session:
        burst = session.get(Burst, burst_id)
        members = bursts.members(session, burst_id)
    if burst is None or not members:
        return None
    return burst_card(burst_id, members, ready=sum(bursts.ready(m) for m in members), opened=bool(burst.opened_by))


def refresh_burst(services: Services, burst_id: int) -> None:
    with services.db.session() as session:
        burst = session.get(Burst, burst_id)
    card = burst_card_for(services, burst_id) if burst and burst.slack_ts else None
    if card:
        try:
            services.publisher.update(burst.slack_channel, burst.slack_ts, card)
        except CardPublishError as error:
            log.error("burst %s: could not update its card: %s", burst_id, error)


def refresh_card(services: Services, conversation_id: int) -> None:
    """Rewrite the card in place from the conversation's current state, and its thread's first card."""
    with services.db.session() as session:
        conversation = session.get(Conversation, conversation_id)
    if conversation is not None and conversation.burst_id:
        refresh_burst(services, conversation.burst_id)
        if conversation.slack_thread_ts is None:
            return  # shown only inside the burst card
    with services.db.session() as session:
        anchor = None
        if conversation is not None and conversation.slack_thread_ts:
            anchor = session.scalars(
                select(Conversation).where(Conversation.slack_channel == conversation.slack_channel,
                                           Conversation.slack_ts == conversation.slack_thread_ts)
            ).first()
    if anchor is not None and anchor.burst_id and anchor.slack_thread_ts is None:
        refresh_burst(services, anchor.burst_id)  # the thread hangs under a burst card
        anchor = None
    for card in (conversation, anchor):
        if card is None or not card.slack_ts:
            continue
        try:
            services.publisher.update(card.slack_channel, card.slack_ts, card_for(services, card))
        except CardPublishError as error:
            log.error("conversation %s: could not update its card: %s", card.id, error)
