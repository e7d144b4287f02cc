"""One poll cycle: ingest → already answered? → draft → policy → card → send approved → reconcile.

Each step reads rows in one state and moves them to the next with a
conditional update, so several processes can run cycles side by side.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import case, select

from bot import examples, outbox, policy
from bot.draft import make_draft
from bot.ingest import IngestReport, ingest
from bot.models import Conversation, PlatformStatus, State, audit, get_pause, transition, utcnow
from bot.platforms.base import MentionGone, PlatformError, RateLimited
from bot.review import card_for, reply_rules
from bot.services import Services
from bot.slack.publish import CardPublishError

log = logging.getLogger(__name__)

BATCH = 100
STALE_CLAIM = timedelta(minutes=10)  # a process that claimed work this long ago has died


@dataclass
class CycleReport:
    ingested: list[IngestReport] = field(default_factory=list)
    failed_platforms: dict[str, str] = field(default_factory=dict)
    answered_elsewhere: int = 0
    drafted: int = 0
    without_draft: int = 0
    skipped: int = 0
    carded: int = 0
    sent: int = 0
    reconciled: int = 0
    settled_elsewhere: int = 0  # open cards whose mention was deleted or answered natively

    def summary(self) -> str:
        new = sum(r.new for r in self.ingested)
        parts = [f"{new} new mentions", f"{self.drafted} drafted", f"{self.without_draft} without a draft",
                 f"{self.skipped} skipped by triage",
                 f"{self.answered_elsewhere} already answered", f"{self.carded} cards posted",
                 f"{self.sent} replies sent", f"{self.reconciled} reconciled"]
        if self.failed_platforms:
            parts.append("failed: " + ", ".join(f"{k} ({v})" for k, v in self.failed_platforms.items()))
        return "; ".join(parts)


def poll_once(services: Services) -> CycleReport:
    report = CycleReport()
    with services.db.session() as session:
        paused = get_pause(session) is not None
    if paused:  # `/conversant pause`: no polling; replies approved on the cards still go out
        log.info("paused: not polling")
        report.sent, report.reconciled = outbox.send_approved(services), outbox.reconcile(services)
        return report
    for platform in services.platforms.values():
        waiting_until = rate_limited_until(services, platform.name)
        if waiting_until:
            log.info("%s: rate limited until %s; not polling it this cycle", platform.name, waiting_until.isoformat())
            report.failed_platforms[platform.name] = f"rate limited until {waiting_until:%H:%M:%S} UTC"
            continue
        try:
            result = ingest(services, platform)
        except PlatformError as error:
            report.failed_platforms[platform.name] = str(error)
            record_platform_status(services, platform.label, platform.name, error)
            continue
        report.ingested.append(result)
        record_platform_status(services, platform.label, platform.name, result.errors[0] if result.errors else None)
    release_stale_claims(services)
    report.answered_elsewhere = check_answered(services)
    report.drafted, report.without_draft, report.skipped = draft_new(services)
    report.carded = post_cards(services)
    report.sent = outbox.send_approved(services)
    report.reconciled = outbox.reconcile(services)
    report.settled_elsewhere = outbox.recheck_open(services)
    log.info("poll cycle: %s", report.summary())
    return report


def rate_limited_until(services: Services, name: str):
    with services.db.session() as session:
        status = session.get(PlatformStatus, name)
    return status.retry_at if status and status.retry_at and status.retry_at > utcnow() else None


def record_platform_status(services: Services, label: str, name: str, error: PlatformError | None) -> None:
    """Log every failure; tell Slack once when a platform starts failing and once when it recovers.

    A rate limit only pauses that platform until its reset; it is not worth a
    person's attention unless it keeps failing afterwards.
    """
    if isinstance(error, RateLimited):
        retry_at = error.retry_at or utcnow() + timedelta(minutes=1)
        log.warning("%s: %s; pausing it until %s", name, error, retry_at.isoformat())
        with services.db.session() as session:
            status = session.get(PlatformStatus, name) or session.merge(PlatformStatus(platform=name, ok=True, since=utcnow()))
            status.retry_at = retry_at
        return
    message = str(error) if error else None
    if error:
        log.error("%s: %s", name, message)
    with services.db.session() as session:
        status = session.get(PlatformStatus, name)
        changed = status is None and error is not None or status is not None and (status.ok != (error is None) or status.error != message)
        if status is None:
            session.add(PlatformStatus(platform=name, ok=error is None, error=message, since=utcnow()))
        elif changed:
            status.ok, status.error, status.since = error is None, message, utcnow()
        if status is not None:
            status.retry_at = None
    if not changed:
        return
    text = f":warning: *{label}* polling problem: {message}" if error else f":white_check_mark: *{label}* polling works again."
    try:
        services.publisher.notice(text)
    except CardPublishError as publish_error:
        log.error("could not tell Slack about %s: %s", name, publish_error)


def release_stale_claims(services: Services) -> None:
    """Hand back work claimed by a process that died: drafting, and cards never posted."""
    cutoff = utcnow() - STALE_CLAIM
    with services.db.session() as session:
        stuck = session.scalars(
            select(Conversation.id).where(Conversation.state == State.DRAFTING.value, Conversation.updated_at < cutoff)
        ).all()
        for conversation_id in stuck:
            transition(session, conversation_id, State.DRAFTING, State.NEW)
        unposted = session.scalars(
            select(Conversation.id).where(
                Conversation.state == State.CARDED.value,
                Conversation.slack_ts.is_(None),
                Conversation.carding_since < cutoff,
            )
        ).all()
        for conversation_id in unposted:
            transition(session, conversation_id, State.CARDED, State.DRAFTED, carding_since=None)


def _ids_in(services: Services, *states: State, limit: int = BATCH) -> list[int]:
    urgency_first = case((Conversation.urgency == "high", 0), (Conversation.urgency == "normal", 1), else_=2)
    with services.db.session() as session:
        return list(
            session.scalars(
                select(Conversation.id)
                .where(Conversation.state.in_([s.value for s in states]))
                .order_by(urgency_first, Conversation.posted_at)
                .limit(limit)
            )
        )


def check_answered(services: Services) -> int:
    """New mentions the brand already answered natively never become cards."""
    answered = 0
    for conversation_id in _ids_in(services, State.NEW):
        with services.db.session() as session:
            conversation = session.get(Conversation, conversation_id)
        platform = services.platforms.get(conversation.platform)
        if platform is None:
            continue
        try:
            reply = platform.find_brand_reply(conversation.thread_ref)
        except MentionGone:
            with services.db.session() as session:
                transition(session, conversation_id, State.NEW, State.SKIPPED, triage_reason="deleted by the author before it was handled")
            continue
        except PlatformError as error:
            log.warning("conversation %s: could not check the thread (%s); drafting anyway", conversation_id, error)
            continue
        with services.db.session() as session:
            if reply is None:
                session.get(Conversation, conversation_id).checked_at = utcnow()
            elif transition(session, conversation_id, State.NEW, State.ANSWERED_ELSEWHERE, reply_id=reply.external_id, reply_url=reply.url):
                audit(session, conversation_id, "conversant", "answered_elsewhere", reply.url)
                answered += 1
    return answered


def draft_new(services: Services) -> tuple[int, int, int]:
    """Draft every new mention, several at once (the model is the slow part).

    Returns how many got a draft, how many did not (model missing or failing), how many need no reply.
    """
    claimed = []
    for conversation_id in _ids_in(services, State.NEW, limit=BATCH):
        with services.db.session() as session:
            if transition(session, conversation_id, State.NEW, State.DRAFTING):
                claimed.append(conversation_id)
    if not claimed:
        return 0, 0, 0
    with ThreadPoolExecutor(max_workers=services.settings.openai_concurrency, thread_name_prefix="draft") as pool:
        outcomes = list(pool.map(lambda cid: _draft_one(services, cid), claimed))
    return outcomes.count(State.DRAFTED), outcomes.count(State.DRAFT_FAILED), outcomes.count(State.SKIPPED)


def _draft_one(services: Services, conversation_id: int) -> State:
    with services.db.session() as session:
        conversation = session.get(Conversation, conversation_id)
    rules = reply_rules(services, conversation)
    outcome = make_draft(services.drafter, services.prompts, conversation, platform_label=rules.platform_label, limit=rules.limit,
                         examples=examples.similar(services, conversation.text, conversation.platform))
    triage = outcome.triage
    if triage is None:
        values = {"draft_error": outcome.error}
        target = State.DRAFT_FAILED
    else:
        values = {
            "needs_reply": triage.should_reply,
            "category": triage.category,
            "sentiment": triage.sentiment,
            "urgency": triage.urgency,
            "triage_reason": triage.reason,
        }
        if triage.should_reply and triage.reply.strip():
            platform = services.platforms.get(conversation.platform)
            reply = triage.reply.strip()
            reply = platform.compose_reply(conversation.thread_ref, reply) if platform else reply
            values.update(draft_text=reply, policy_problems=policy.check(reply, rules))
            target = State.DRAFTED
        elif triage.should_reply:
            values.update(draft_error="No draft: the model wanted to reply but wrote nothing.")
            target = State.DRAFT_FAILED
        else:
            target = State.SKIPPED
    with services.db.session() as session:
        transition(session, conversation_id, State.DRAFTING, target, **values)
    if target is State.SKIPPED:
        log.info("conversation %s: skipped by triage (%s)", conversation_id, triage.reason)
    return target


def post_cards(services: Services) -> int:
    """One card per drafted conversation, most urgent first."""
    posted = 0
    for conversation_id in _ids_in(services, State.DRAFTED, State.DRAFT_FAILED):
        with services.db.session() as session:
            if not transition(session, conversation_id, (State.DRAFTED, State.DRAFT_FAILED), State.CARDED, carding_since=utcnow()):
                continue
            conversation = session.get(Conversation, conversation_id)
        try:
            channel, ts = services.publisher.post(card_for(services, conversation))
        except CardPublishError as error:
            log.error("conversation %s: card not posted: %s", conversation_id, error)
            with services.db.session() as session:
                previous = State.DRAFTED if conversation.draft_text else State.DRAFT_FAILED
                transition(session, conversation_id, State.CARDED, previous, carding_since=None)
            break  # Slack is refusing; the rest wait for the next cycle
        with services.db.session() as session:
            stored = session.get(Conversation, conversation_id)
            stored.slack_channel, stored.slack_ts = channel, ts
            audit(session, conversation_id, "conversant", "carded", f"{channel}/{ts}")
        posted += 1
    return posted
