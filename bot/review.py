"""Cards on Slack as a view of the database: post one, or rewrite it after a change."""
from __future__ import annotations

import logging

from bot.cards import CardFacts, review_card
from bot.models import Conversation
from bot.platforms.bluesky import grapheme_count
from bot.policy import ReplyRules
from bot.services import Services
from bot.slack.publish import CardPublishError

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
    )


def card_for(services: Services, conversation: Conversation) -> dict:
    rules = reply_rules(services, conversation)
    length = rules.length(conversation.draft_text) if conversation.draft_text else None
    return review_card(conversation, CardFacts(platform_label=rules.platform_label, limit=rules.limit, draft_length=length))


def refresh_card(services: Services, conversation_id: int) -> None:
    """Rewrite the card in place from the conversation's current state."""
    with services.db.session() as session:
        conversation = session.get(Conversation, conversation_id)
    if conversation is None or not conversation.slack_ts:
        return
    try:
        services.publisher.update(conversation.slack_channel, conversation.slack_ts, card_for(services, conversation))
    except CardPublishError as error:
        log.error("conversation %s: could not update its card: %s", conversation_id, error)
