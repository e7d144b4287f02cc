"""Post approved replies exactly once, and settle posts whose outcome is unknown.

``approved`` is the outbox. Sending claims a row (approved → posting) with a
conditional update, so only one process posts it. When the platform's answer
is lost (timeout, crash), the row stays ``posting``; ``reconcile`` later looks
in the thread for the brand's reply, and only when there is none posts again.

A private reply is two sends, each at most once. The direct message goes first and is
recorded (``private_sent_at``) before anything else; then the public note is posted like
any reply, and reconciled like one. A message whose answer was lost is never sent again
by Conversant: where the platform lets us look (Bluesky chat) and it is there, it counts as
sent and the note follows; otherwise the card asks a person to check the account's messages
and press Retry only if it is not there.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from bot import policy
from bot.brand import Brand
from bot.db import Database
from bot.metrics import POST_LATENCY
from bot.models import RECONCILE_AFTER, UNKNOWN_OUTCOME, Conversation, State, audit, transition, utcnow
from bot.platforms.base import MentionGone, Platform, PlatformError, RateLimited, Unavailable
from bot.purge import FORGET_DELETED
from bot.rulebook import Rulebook
from bot.threads import settle_on_platform

log = logging.getLogger(__name__)


def send(db: Database, rules: Rulebook, conversation_id: int) -> State | None:
    """Post one approved reply; returns the state it ended in, or None if another process has it.

    The card and the examples are the caller's (``flows.py``): this only writes the outcome.
    """
    with db.session() as session:
        if not transition(session, conversation_id, State.APPROVED, State.POSTING, posting_since=utcnow(), post_error=None):
            return None
        conversation = session.get(Conversation, conversation_id)
        conversation.post_attempts += 1
    return _post(db, rules, conversation)


def _post(db: Database, rules: Rulebook, conversation: Conversation) -> State:
    cid = conversation.id
    platform = rules.adapter(conversation)
    if platform is None:
        return _fail(db, cid, f"{conversation.account or conversation.platform} is not enabled in this Conversant (set its credentials)")
    text = conversation.notice_text if conversation.reply_private else conversation.reply_text  # the message is checked when sent
    problems = policy.check(text or "", rules.reply(conversation))
    if problems:
        return _fail(db, cid, " ".join(problems))
    # A deleted mention or a reply the brand already posted natively: nothing left to post.
    settled = settle_on_platform(db, platform, conversation, State.POSTING, others=rules.accounts.others(conversation),
                                 found=State.REPLIED if conversation.private_sent_at else State.ANSWERED_ELSEWHERE)
    if settled:
        return settled
    if conversation.reply_private and conversation.private_sent_at is None:
        unsent = _send_private(db, rules, platform, conversation)
        if unsent is not None:
            return unsent
    try:
        with POST_LATENCY.labels(platform.name).time():
            reply = platform.post_reply(conversation.thread_ref, text, idempotency_key=f"conversant-{cid}")
    except RateLimited as error:
        # Refused before anything was written: safe to send again next cycle.
        log.warning("conversation %s: %s; will retry", cid, error)
        with db.session() as session:
            transition(session, cid, State.POSTING, State.APPROVED, post_error=str(error), posting_since=None)
        return State.APPROVED
    except Unavailable as error:
        log.warning("conversation %s: outcome of the post unknown (%s); reconciling later", cid, error)
        with db.session() as session:
            transition(session, cid, State.POSTING, State.POSTING, post_error=f"{UNKNOWN_OUTCOME}{error}")
        return State.POSTING
    except MentionGone:  # deleted between the thread check and the post
        with db.session() as session:
            if transition(session, cid, State.POSTING, State.DELETED, checked_at=utcnow(), **FORGET_DELETED):
                audit(session, cid, "conversant", "deleted_by_author")
        return State.DELETED
    except PlatformError as error:
        return _fail(db, cid, str(error))
    with db.session() as session:
        transition(
            session, cid, State.POSTING, State.REPLIED,
            reply_id=reply.external_id, reply_url=reply.url, replied_at=utcnow(), post_error=None,
        )
        audit(session, cid, "conversant", "posted", f"{reply.url}\n{text}\n(approved by {conversation.decided_by or 'nobody recorded'})")
    log.info("conversation %s: reply posted %s", cid, reply.url)
    return State.REPLIED


CLOCK_SKEW = timedelta(minutes=1)  # the platform's clock may run behind ours when it stamps a message
PRIVATE_UNCONFIRMED = ("{platform} did not confirm the private message ({error}). Conversant never sends one twice: "
                       "look in the brand account's messages to @{handle}, and press Retry only if it is not there.")


def _send_private(db: Database, rules: Rulebook, platform: Platform, conversation: Conversation) -> State | None:
    """Send the direct message and record it; None once it is sent (the public note follows), else the state it ended in."""
    cid = conversation.id
    private_rules = rules.private(conversation)
    problems = policy.check(conversation.reply_text or "", private_rules) if private_rules else [platform.format.no_private or "no private replies here"]
    if problems:
        return _fail(db, cid, " ".join(problems))
    try:
        with POST_LATENCY.labels(platform.name).time():
            sent = platform.send_private(conversation.thread_ref, conversation.author_id, conversation.author_handle, conversation.reply_text,
                                         idempotency_key=f"conversant-{cid}-private")
    except RateLimited as error:  # refused before anything was sent
        log.warning("conversation %s: %s; will retry", cid, error)
        with db.session() as session:
            transition(session, cid, State.POSTING, State.APPROVED, post_error=str(error), posting_since=None)
        return State.APPROVED
    except Unavailable as error:
        sent = _found_private(platform, conversation)
        if sent is None:
            message = PRIVATE_UNCONFIRMED.format(platform=platform.label, error=error, handle=conversation.author_handle)
            log.warning("conversation %s: %s", cid, message)
            return _fail(db, cid, message)
        log.info("conversation %s: the private message's answer was lost, but it is there", cid)
    except PlatformError as error:
        return _fail(db, cid, f"The private message was not sent: {error}")
    _record_private(db, conversation, sent)
    return None


def _found_private(platform: Platform, conversation: Conversation):
    """The message in the platform's conversation with the author, where it can be looked up (Bluesky chat);
    None when it is not there or cannot be looked for. Finding it is the only way a lost answer ends as sent."""
    find = getattr(platform, "find_private", None)
    if find is None or conversation.posting_since is None:
        return None
    try:
        return find(conversation.author_id, conversation.reply_text, conversation.posting_since - CLOCK_SKEW)
    except PlatformError as error:
        log.warning("conversation %s: could not look for the private message (%s)", conversation.id, error)
        return None


def _record_private(db: Database, conversation: Conversation, sent) -> None:
    cid = conversation.id
    with db.session() as session:
        session.execute(update(Conversation).where(Conversation.id == cid)
                        .values(private_message_id=sent.external_id, private_sent_at=utcnow())
                        .execution_options(synchronize_session=False))
        audit(session, cid, "conversant", "sent_privately", f"{sent.url}\n{conversation.reply_text}\n(approved by {conversation.decided_by})")
    log.info("conversation %s: private message sent (%s)", cid, sent.external_id)


def recheck_open(db: Database, brand: Brand, *, every: timedelta = timedelta(minutes=5), limit: int = 50) -> list[int]:
    """Cards still waiting: has the author deleted the mention, or the brand answered natively?
    Returns the conversations that were settled (their cards change)."""
    cutoff = utcnow() - every
    with db.session() as session:
        due = session.scalars(
            select(Conversation)
            .where(Conversation.state == State.CARDED.value)
            .where((Conversation.checked_at.is_(None)) | (Conversation.checked_at < cutoff))
            .order_by(Conversation.checked_at.is_not(None), Conversation.checked_at)
            .limit(limit)
        ).all()
    changed = []
    for conversation in due:
        platform = brand.adapter(conversation)
        if platform is None:
            continue
        if settle_on_platform(db, platform, conversation, State.CARDED, others=brand.others(conversation)):
            changed.append(conversation.id)
        else:
            with db.session() as session:
                session.get(Conversation, conversation.id).checked_at = utcnow()
    return changed


def _fail(db: Database, conversation_id: int, message: str) -> State:
    log.error("conversation %s: post failed: %s", conversation_id, message)
    with db.session() as session:
        transition(session, conversation_id, State.POSTING, State.POST_FAILED, post_error=message)
        audit(session, conversation_id, "conversant", "post_failed", message)
    return State.POST_FAILED


def approved_ids(db: Database) -> list[int]:
    """Approvals left behind (a web process that died after the click, a rate limit)."""
    with db.session() as session:
        return list(session.scalars(select(Conversation.id).where(Conversation.state == State.APPROVED.value)))


def reconcile(db: Database, brand: Brand) -> dict[int, State]:
    """Settle posts whose outcome is unknown by looking for the brand's reply in the thread.

    Returns what each settled one became: REPLIED (the reply is there), DELETED, or APPROVED
    (no reply in the thread: safe to post again, which the caller does).
    """
    cutoff = utcnow() - RECONCILE_AFTER
    with db.session() as session:
        stuck = session.scalars(
            select(Conversation).where(Conversation.state == State.POSTING.value, Conversation.posting_since < cutoff)
        ).all()
    settled: dict[int, State] = {}
    for conversation in stuck:
        platform = brand.adapter(conversation)
        if platform is None:
            continue
        if conversation.reply_private and conversation.private_sent_at is None:
            # Stopped while sending the message (a crash): it may have gone. Found: the note follows; else a
            # person checks. Nothing is sent again.
            sent = _found_private(platform, conversation)
            if sent is not None:
                _record_private(db, conversation, sent)
                with db.session() as session:
                    transition(session, conversation.id, State.POSTING, State.APPROVED, posting_since=None)
                settled[conversation.id] = State.APPROVED
                continue
            error = "Conversant stopped while sending it"
            _fail(db, conversation.id, PRIVATE_UNCONFIRMED.format(platform=platform.label, error=error, handle=conversation.author_handle))
            settled[conversation.id] = State.POST_FAILED
            continue
        try:
            state = settle_on_platform(db, platform, conversation, State.POSTING, found=State.REPLIED, must_know=True,
                                       others=brand.others(conversation))
        except PlatformError as error:
            log.warning("conversation %s: still cannot tell whether the reply was posted (%s)", conversation.id, error)
            continue
        if state is None:
            with db.session() as session:
                if not transition(session, conversation.id, State.POSTING, State.APPROVED, posting_since=None):
                    continue
            log.info("conversation %s: no reply found in the thread; posting again", conversation.id)
            state = State.APPROVED
        settled[conversation.id] = state
    return settled
