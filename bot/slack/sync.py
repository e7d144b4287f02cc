"""The one place state becomes Slack messages: cards, burst cards, thread replies, the queue message.

Everything here reads the database and makes Slack show it (``chat.postMessage`` or
``chat.update`` through the publisher); the only rows it writes are where a message lives
(channel and ts). A Slack failure is logged and left for the next sync: the database stays the truth.
"""
from __future__ import annotations

import enum
import logging

from sqlalchemy import select

from bot import backlog, bursts, decision, leases, threads
from bot.models import Burst, Conversation, utcnow
from bot.services import Services
from bot.slack import views
from bot.slack.cards import CardFacts, burst_card, burst_card_metadata, card_metadata, review_card
from bot.slack.publish import CardPublishError

log = logging.getLogger(__name__)


# -- conversation cards ---------------------------------------------------------------------


def card_for(services: Services, conversation: Conversation) -> dict:
    rules = services.rules.reply(conversation)
    length = rules.length(conversation.draft_text) if conversation.draft_text else None
    with services.db.session() as session:
        thread = threads.summary(session, conversation)
    replying, others = _accounts_on_card(services, conversation)
    platform_format = services.rules.format(conversation.platform)
    card = review_card(conversation, CardFacts(
        rules.platform_label, rules.limit, length, thread,
        private=platform_format.private.label if platform_format.private else None, no_private=platform_format.no_private,
        signoff_note=decision.signoff_warning(services.rules, conversation),
        replying_as=replying, reply_as_options=others))
    return {**card, "metadata": card_metadata(conversation.id)}


def _accounts_on_card(services: Services, conversation: Conversation) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """Which account replies, and the others it could be, when the platform has several."""
    brand = services.brand
    replying = brand.replying(conversation)
    if replying is None or len(brand.on(conversation.platform)) < 2:
        return None, ()
    others = tuple((a.id, a.label) for a in brand.on(conversation.platform) if a is not replying and a.id in brand.adapters)
    return replying.label, others


class Carding(enum.Enum):
    POSTED = "posted"
    TAKEN = "taken"  # another process has it
    REFUSED = "refused"  # Slack refused this card: recorded, tried again later as a short card
    CHANNEL_FAILING = "channel failing"  # its routed channel is missing or without the bot; other channels go on
    SLACK_FAILING = "slack failing"  # not this card: Slack, the token or the review channel; no card goes out now


def post_card(services: Services, conversation_id: int) -> Carding:
    """Card one drafted conversation; whatever fails, it is ready again for a later try."""
    conversation = backlog.claim_for_card(services.db, conversation_id)
    if conversation is None:
        return Carding.TAKEN
    held = leases.for_services(services)
    held.hold([conversation_id])
    try:
        return _post_claimed_card(services, conversation)
    finally:
        held.drop(conversation_id)


def _post_claimed_card(services: Services, conversation: Conversation) -> Carding:
    conversation_id = conversation.id
    with services.db.session() as session:
        anchor = threads.first_card(session, conversation)
    # A later turn goes in its first card's thread; a conversation to its routed channel (None: the review channel).
    channel, thread_ts = (anchor.slack_channel, anchor.slack_ts) if anchor else (conversation.review_channel, None)
    found = _earlier_post(services, conversation, channel, thread_ts)
    if found:
        backlog.carded(services.db, conversation_id, found[0], found[1], thread_ts=thread_ts, found=True)
        log.warning("conversation %s: its card was already on Slack (%s/%s), posted before a crash or a lost answer; "
                    "kept, not posted again", conversation_id, *found)
        refresh_card(services, conversation_id)  # as the conversation stands now
        return Carding.POSTED
    try:
        channel, ts = services.publisher.post(card_for(services, conversation), channel=channel, thread_ts=thread_ts)
    except CardPublishError as error:
        if error.refused:
            retry_at = backlog.card_refused(services.db, conversation, error.code)
            log.error("conversation %s: Slack refused its card (%s); the other cards go on, and this one is tried "
                      "again as a short card from %s", conversation_id, error.code, f"{retry_at:%H:%M:%S} UTC")
            return Carding.REFUSED
        log.error("conversation %s: card not posted: %s", conversation_id, error)
        backlog.release_card(services.db, conversation, unconfirmed=error.unknown)
        if error.channel_failed and channel not in (None, services.publisher.channel):
            return Carding.CHANNEL_FAILING
        return Carding.SLACK_FAILING
    backlog.carded(services.db, conversation_id, channel, ts, thread_ts=thread_ts)
    if anchor:
        refresh_card(services, anchor.id)  # its header counts the turns
    return Carding.POSTED


def _earlier_post(services: Services, conversation: Conversation, channel: str | None,
                  thread_ts: str | None) -> tuple[str, str] | None:
    """Where Slack holds this card already, when an earlier post got no answer; else None.
    If Slack's history cannot be read (a missing scope), the card is posted: a card shown
    twice is better than none."""
    if not backlog.may_be_on_slack(conversation):
        return None
    channel = channel or services.publisher.channel
    try:
        ts = services.publisher.find(card_metadata(conversation.id), since=conversation.card_unconfirmed_at.timestamp(),
                                     channel=channel, thread_ts=thread_ts)
    except CardPublishError as error:
        log.warning("conversation %s: could not look for an earlier post of its card (%s); posting it", conversation.id, error)
        return None
    return (channel, ts) if ts else None


def post_next_card(services: Services, skip: set[int] | None = None) -> bool | None:
    """Card the most urgent ready conversation: True when one was carded, False when none is
    ready, None when Slack is failing. A card Slack refuses is set aside (not tried again for a
    while) and the next one is tried, so one bad card never holds up the others; so is a card
    whose routed channel fails, for the rest of the caller's cycle (added to ``skip``)."""
    skip = set() if skip is None else skip
    while True:
        ready = backlog.ready_ids(services.db, limit=3, skip=skip)
        if not ready:
            return False
        for conversation_id in ready:
            outcome = post_card(services, conversation_id)
            if outcome is Carding.POSTED:
                return True
            if outcome is Carding.SLACK_FAILING:
                return None
            if outcome is Carding.CHANNEL_FAILING:
                skip.add(conversation_id)


def refresh_card(services: Services, conversation_id: int) -> None:
    """Rewrite the card in place from the conversation's current state, and its thread's first card."""
    with services.db.session() as session:
        conversation = session.get(Conversation, conversation_id)
    if conversation is not None and conversation.burst_id:
        refresh_burst(services, conversation.burst_id)
        if conversation.slack_thread_ts is None:
            return  # shown only inside the burst card
    anchor = None
    if conversation is not None and conversation.slack_thread_ts:
        with services.db.session() as session:
            anchor = session.scalars(
                select(Conversation).where(Conversation.slack_channel == conversation.slack_channel,
                                           Conversation.slack_ts == conversation.slack_thread_ts)
            ).first()
    if anchor is not None and anchor.burst_id and anchor.slack_thread_ts is None:
        refresh_burst(services, anchor.burst_id)  # the thread hangs under a burst card
        anchor = None
    for card in (conversation, anchor):
        if card is not None and card.slack_ts:
            _update_card(services, card)


def _update_card(services: Services, card: Conversation) -> None:
    """Rewrite one card; one Slack refuses is recorded and rewritten as a short card."""
    try:
        services.publisher.update(card.slack_channel, card.slack_ts, card_for(services, card))
    except CardPublishError as error:
        log.error("conversation %s: could not update its card: %s", card.id, error)
        if not error.refused or card.card_error:
            return
        backlog.update_refused(services.db, card.id, error.code)
        with services.db.session() as session:
            card = session.get(Conversation, card.id)
        try:
            services.publisher.update(card.slack_channel, card.slack_ts, card_for(services, card))
        except CardPublishError as again:
            log.error("conversation %s: could not update its card, even as a short card: %s", card.id, again)


def refresh_cards(services: Services, conversation_ids) -> None:
    for conversation_id in conversation_ids:
        refresh_card(services, conversation_id)


# -- burst cards ----------------------------------------------------------------------------


def burst_card_for(services: Services, burst_id: int) -> dict | None:
    with services.db.session() as session:
        burst = session.get(Burst, burst_id)
        members = bursts.members(session, burst_id)
    if burst is None or not members:
        return None
    card = burst_card(burst_id, members, ready=sum(bursts.ready(m) for m in members), opened=bool(burst.opened_by))
    return {**card, "metadata": burst_card_metadata(burst_id)}


def refresh_burst(services: Services, burst_id: int) -> None:
    with services.db.session() as session:
        burst = session.get(Burst, burst_id)
    card = burst_card_for(services, burst_id) if burst and burst.slack_ts else None
    if card:
        try:
            services.publisher.update(burst.slack_channel, burst.slack_ts, card)
        except CardPublishError as error:
            log.error("burst %s: could not update its card: %s", burst_id, error)


def post_burst_cards(services: Services) -> int:
    """Card the drafted members of each burst: post the burst's card the first time, then fold them in."""
    posted = 0
    for burst in bursts.with_drafted_members(services.db):
        if not burst.slack_ts:
            earlier, attempt = bursts.unconfirmed_since(burst), utcnow().timestamp()
            if not bursts.claim_card(services.db, burst.id):
                continue  # another process is posting this burst's card
            found = _earlier_burst_post(services, burst.id, earlier)
            try:
                channel, ts = found or services.publisher.post(burst_card_for(services, burst.id))
            except CardPublishError as error:
                log.error("burst %s: card not posted: %s", burst.id, error)
                bursts.release_card(services.db, burst.id, unconfirmed_since=(earlier or attempt) if error.unknown else None)
                continue  # its members stay drafted and in the burst; next cycle tries again
            posted += not found
        else:
            channel, ts = burst.slack_channel, burst.slack_ts
        bursts.card_members(services.db, burst.id, channel, ts)
        refresh_burst(services, burst.id)  # now with the carded counts and buttons
    return posted


def _earlier_burst_post(services: Services, burst_id: int, since: float | None) -> tuple[str, str] | None:
    """Where Slack holds the burst's card already, when an earlier post of it got no answer."""
    if since is None:
        return None
    try:
        ts = services.publisher.find(burst_card_metadata(burst_id), since=since)
    except CardPublishError as error:
        log.warning("burst %s: could not look for an earlier post of its card (%s); posting it", burst_id, error)
        return None
    if ts:
        log.warning("burst %s: its card was already on Slack (%s), posted before a crash or a lost answer; kept", burst_id, ts)
    return (services.publisher.channel, ts) if ts else None


def open_burst(services: Services, burst_id: int, user: str) -> int:
    """Card each waiting member in the burst card's thread, where it can be handled alone."""
    burst, waiting = bursts.open_one_by_one(services.db, burst_id, user)
    opened = 0
    for conversation in waiting:
        try:
            channel, ts = services.publisher.post(card_for(services, conversation), channel=burst.slack_channel, thread_ts=burst.slack_ts)
        except CardPublishError as error:
            log.error("burst %s: could not open conversation %s: %s", burst_id, conversation.id, error)
            break
        with services.db.session() as session:
            stored = session.get(Conversation, conversation.id)
            stored.slack_channel, stored.slack_ts, stored.slack_thread_ts = channel, ts, burst.slack_ts
        opened += 1
    refresh_burst(services, burst_id)
    return opened


# -- messages -------------------------------------------------------------------------------


def post_text(services: Services, text: str, *, channel: str | None = None, thread_ts: str | None = None) -> bool:
    """A plain message (a nudge, an escalation); False when Slack refused it."""
    try:
        services.publisher.post({"text": text}, channel=channel, thread_ts=thread_ts)
    except CardPublishError as error:
        log.error("message not posted: %s", error)
        return False
    return True


def notice(services: Services, text: str) -> None:
    """A message to the review channel (paused, resumed, a platform failing)."""
    try:
        services.publisher.notice(text)
    except CardPublishError as error:
        log.error("could not tell the review channel: %s", error)


def tell(services: Services, channel: str | None, user: str, text: str) -> None:
    """A private message only ``user`` sees, where they clicked."""
    if channel and user:
        services.publisher.tell(channel, user, text)


# -- the queue status message ---------------------------------------------------------------


def show_queue(services: Services, queue: backlog.CardQueue | None = None) -> backlog.CardQueue:
    """Post, edit or close the one status message so it matches the queue; returns the queue."""
    queue = queue or backlog.card_queue(services.db, services.settings)
    status = backlog.status_message(services.db)
    if queue.queued:
        text = views.queue_status_text(queue)
        if status is None:
            _open_queue_message(services, text)
        elif status.get("ts") and status.get("text") != text:
            _edit_queue_message(services, status, text)
    elif status is not None and status.get("ts"):
        try:
            services.publisher.update(status["channel"], status["ts"], views.queue_message(views.queue_drained_text(queue)))
        except CardPublishError as error:
            log.warning("could not close the queue status message: %s", error)
        backlog.forget_status_message(services.db)
    return queue


def _open_queue_message(services: Services, text: str) -> None:
    if not backlog.claim_status_message(services.db):  # two processes never post two messages
        return
    try:
        channel, ts = services.publisher.post(views.queue_message(text))
    except CardPublishError as error:
        log.error("could not post the queue status message: %s", error)
        backlog.forget_status_message(services.db)
        return
    backlog.store_status_message(services.db, {"channel": channel, "ts": ts, "text": text})


def _edit_queue_message(services: Services, status: dict, text: str) -> None:
    try:
        services.publisher.update(status["channel"], status["ts"], views.queue_message(text))
    except CardPublishError as error:
        log.warning("could not update the queue status message: %s", error)
        return
    backlog.store_status_message(services.db, {**status, "text": text})

