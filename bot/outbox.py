"""Post approved replies exactly once, and settle posts whose outcome is unknown.

``approved`` is the outbox. Sending claims a row (approved → posting) with a
conditional update, so only one process posts it. When the platform's answer
is lost (timeout, crash), the row stays ``posting``; ``reconcile`` later looks
in the thread for the brand's reply, and only when there is none posts again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from bot import examples, policy
from bot.metrics import POST_LATENCY
from bot.models import RECONCILE_AFTER, UNKNOWN_OUTCOME, Conversation, State, audit, transition, utcnow
from bot.platforms.base import MentionGone, PlatformError, RateLimited, Unavailable
from bot.purge import FORGET_DELETED
from bot.review import refresh_card, reply_rules
from bot.services import Services

log = logging.getLogger(__name__)



def send(services: Services, conversation_id: int, *, refresh: bool = True) -> State | None:
    """Post one approved reply; returns the state it ended in, or None if another process has it.

    ``refresh=False`` leaves the card to the caller (Approve all rewrites one burst card once).
    """
    with services.db.session() as session:
        if not transition(session, conversation_id, State.APPROVED, State.POSTING, posting_since=utcnow(), post_error=None):
            return None
        conversation = session.get(Conversation, conversation_id)
        conversation.post_attempts += 1
    state = _post(services, conversation)
    if refresh:
        refresh_card(services, conversation_id)
    if state is State.REPLIED:  # kept for later drafts; after the card, so an embedding call never delays it
        examples.record(services, conversation)
    return state


def _post(services: Services, conversation: Conversation) -> State:
    cid = conversation.id
    platform = services.platforms.get(conversation.platform)
    if platform is None:
        return _fail(services, cid, f"{conversation.platform} is not enabled in this Conversant (set its credentials)")
    problems = policy.check(conversation.reply_text or "", reply_rules(services, conversation))
    if problems:
        return _fail(services, cid, " ".join(problems))
    settled = _settled_on_platform(services, platform, conversation, State.POSTING)
    if settled:
        return settled
    try:
        with POST_LATENCY.labels(platform.name).time():
            reply = platform.post_reply(conversation.thread_ref, conversation.reply_text, idempotency_key=f"conversant-{cid}")
    except RateLimited as error:
        # Refused before anything was written: safe to send again next cycle.
        log.warning("conversation %s: %s; will retry", cid, error)
        with services.db.session() as session:
            transition(session, cid, State.POSTING, State.APPROVED, post_error=str(error), posting_since=None)
        return State.APPROVED
    except Unavailable as error:
        log.warning("conversation %s: outcome of the post unknown (%s); reconciling later", cid, error)
        with services.db.session() as session:
            transition(session, cid, State.POSTING, State.POSTING, post_error=f"{UNKNOWN_OUTCOME}{error}")
        return State.POSTING
    except MentionGone:
        return _fail(services, cid, "the post was deleted by its author, so there is nothing to reply to")
    except PlatformError as error:
        return _fail(services, cid, str(error))
    with services.db.session() as session:
        transition(
            session, cid, State.POSTING, State.REPLIED,
            reply_id=reply.external_id, reply_url=reply.url, replied_at=utcnow(), post_error=None,
        )
        audit(session, cid, "conversant", "posted", f"{reply.url}\n{conversation.reply_text}")
    log.info("conversation %s: reply posted %s", cid, reply.url)
    return State.REPLIED


def _settled_on_platform(services: Services, platform, conversation: Conversation, from_state: State) -> State | None:
    """Look at the thread before writing: a deleted mention or a reply the brand
    already posted natively means there is nothing left to post."""
    try:
        existing = platform.find_brand_reply(conversation.thread_ref)
    except MentionGone:
        with services.db.session() as session:
            if transition(session, conversation.id, from_state, State.DELETED, checked_at=utcnow(), **FORGET_DELETED):
                audit(session, conversation.id, "conversant", "deleted_by_author")
        log.info("conversation %s: deleted by its author; nothing posted", conversation.id)
        return State.DELETED
    except PlatformError as error:
        log.info("conversation %s: could not look at the thread first (%s)", conversation.id, error)
        return None
    if existing is None:
        return None
    with services.db.session() as session:
        if transition(session, conversation.id, from_state, State.ANSWERED_ELSEWHERE,
                      reply_id=existing.external_id, reply_url=existing.url, checked_at=utcnow()):
            audit(session, conversation.id, "conversant", "answered_elsewhere", existing.url)
    log.info("conversation %s: the brand already replied (%s); nothing posted", conversation.id, existing.url)
    return State.ANSWERED_ELSEWHERE


def recheck_open(services: Services, *, every: timedelta = timedelta(minutes=5), limit: int = 50) -> int:
    """Cards still waiting: has the author deleted the mention, or the brand answered natively?"""
    cutoff = utcnow() - every
    with services.db.session() as session:
        due = session.scalars(
            select(Conversation)
            .where(Conversation.state == State.CARDED.value)
            .where((Conversation.checked_at.is_(None)) | (Conversation.checked_at < cutoff))
            .order_by(Conversation.checked_at.is_not(None), Conversation.checked_at)
            .limit(limit)
        ).all()
    changed = 0
    for conversation in due:
        platform = services.platforms.get(conversation.platform)
        if platform is None:
            continue
        if _settled_on_platform(services, platform, conversation, State.CARDED):
            changed += 1
            refresh_card(services, conversation.id)
        else:
            with services.db.session() as session:
                session.get(Conversation, conversation.id).checked_at = utcnow()
    return changed


def _fail(services: Services, conversation_id: int, message: str) -> State:
    log.error("conversation %s: post failed: %s", conversation_id, message)
    with services.db.session() as session:
        transition(session, conversation_id, State.POSTING, State.POST_FAILED, post_error=message)
        audit(session, conversation_id, "conversant", "post_failed", message)
    return State.POST_FAILED


def send_approved(services: Services) -> int:
    """Send approvals left behind (a web process that died after the click, a rate limit)."""
    with services.db.session() as session:
        ids = session.scalars(select(Conversation.id).where(Conversation.state == State.APPROVED.value)).all()
    return sum(send(services, cid) is State.REPLIED for cid in ids)


def reconcile(services: Services) -> int:
    """Settle posts whose outcome is unknown by looking for the brand's reply in the thread."""
    cutoff = utcnow() - RECONCILE_AFTER
    with services.db.session() as session:
        stuck = session.scalars(
            select(Conversation).where(Conversation.state == State.POSTING.value, Conversation.posting_since < cutoff)
        ).all()
    settled = 0
    for conversation in stuck:
        platform = services.platforms.get(conversation.platform)
        if platform is None:
            continue
        try:
            reply = platform.find_brand_reply(conversation.thread_ref)
        except MentionGone:
            with services.db.session() as session:
                transition(session, conversation.id, State.POSTING, State.POST_FAILED, post_error="the post was deleted by its author",
                           **FORGET_DELETED)
            refresh_card(services, conversation.id)
            continue
        except PlatformError as error:
            log.warning("conversation %s: still cannot tell whether the reply was posted (%s)", conversation.id, error)
            continue
        with services.db.session() as session:
            if reply:
                won = transition(session, conversation.id, State.POSTING, State.REPLIED, reply_id=reply.external_id,
                                 reply_url=reply.url, replied_at=utcnow(), post_error=None)
                if won:
                    audit(session, conversation.id, "conversant", "reconciled", f"found the reply {reply.url}")
            else:
                won = transition(session, conversation.id, State.POSTING, State.APPROVED, posting_since=None)
        if not won:
            continue
        settled += 1
        if reply:
            refresh_card(services, conversation.id)
            examples.record(services, conversation)
        else:
            log.info("conversation %s: no reply found in the thread; posting again", conversation.id)
            send(services, conversation.id)
    return settled
