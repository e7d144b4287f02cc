"""One poll cycle: ingest → already answered? → draft → policy → card → send approved → reconcile.

Each step reads rows in one state and moves them to the next with a
conditional update, so several processes can run cycles side by side. The steps
live in their modules (``ingest``, ``threads``, ``draft``, ``policy``, ``bursts``,
``outbox``); cards go out through ``slack/sync.py``; this strings them within the
cycle's time budget.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update

from bot import backlog, bursts, examples, flows, leases, policy, privacy, threads
from bot.context import gather as gather_context
from bot.draft import make_draft
from bot.ingest import IngestReport, ingest
from bot.knowledge.grounding import ground
from bot.models import Conversation, PlatformStatus, State, get_pause, transition, utcnow
from bot.platforms.base import PlatformError, RateLimited
from bot.routing import Facts, destination
from bot.services import Services
from bot.slack import sync

log = logging.getLogger(__name__)

BATCH = 100
# A cycle starts drafts and posts cards for this share of POLL_INTERVAL_SECONDS, and ends by the
# second: the scheduler's next run is then due, and a run that finds the last one going is skipped.
CYCLE_SHARE, CYCLE_END = 0.95, 0.98
STALE_CLAIM = leases.MAXIMUM  # the longest lease (bot/leases.py): a claim this old has lost its process


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
    # Ends before the scheduler's next run is due, so a backlog never makes it skip one.
    started, interval = time.monotonic(), services.settings.poll_interval_seconds
    until, stop = started + interval * CYCLE_SHARE, started + interval * CYCLE_END
    with services.db.session() as session:
        paused = get_pause(session) is not None
    if paused:  # `/conversant pause`: no polling; replies approved on the cards still go out
        log.info("paused: not polling")
        report.sent, report.reconciled = flows.send_approved(services), flows.reconcile(services)
        return report
    brand = services.brand
    for account in brand.accounts:  # each account with its own login and cursors
        platform = brand.adapters.get(account.id)
        if platform is None:
            continue
        key, label = account.id, brand.label(account)  # the platform's name and label with one account each
        waiting_until = rate_limited_until(services, key)
        if waiting_until:
            log.info("%s: rate limited until %s; not polling it this cycle", key, waiting_until.isoformat())
            report.failed_platforms[key] = f"rate limited until {waiting_until:%H:%M:%S} UTC"
            continue
        try:
            result = ingest(services.db, platform, first_run_lookback=services.settings.first_run_lookback,
                            account=account, siblings=brand.on(account.platform))
        except PlatformError as error:
            report.failed_platforms[key] = str(error)
            record_platform_status(services, label, key, error)
            continue
        report.ingested.append(result)
        record_platform_status(services, label, key, result.errors[0] if result.errors else None)
    services.db.retry(lambda: release_stale_claims(services), what="releasing stale claims")
    card_stored(services, report, until=until, stop=stop)
    sync.show_queue(services)
    report.sent = flows.send_approved(services)
    report.reconciled = flows.reconcile(services)
    report.settled_elsewhere = flows.recheck_open(services)
    log.info("poll cycle: %s", report.summary())
    return report


def card_stored(services: Services, report: CycleReport, *, until: float, stop: float | None) -> None:
    """The steps after ingest, for mentions already stored (by a poll or a stream): turns, bursts, draft, card."""
    sync.refresh_cards(services, threads.link_turns(services.db))  # earlier turns' drafts went out of date
    bursts.form(services.db)
    draft_and_card(services, report, until=until, stop=stop)
    report.carded += sync.post_burst_cards(services)


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
    sync.notice(services, text)


def release_stale_claims(services: Services) -> None:
    """Hand back work claimed by a process that died (its lease ran out): drafting, and cards never posted."""
    cutoff = utcnow() - leases.lease_length(services.settings)
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


def draft_and_card(services: Services, report: CycleReport, *, until: float, stop: float | None = None) -> None:
    """Check, draft and card the waiting mentions, with the model and Slack working side by side.

    Up to ``OPENAI_CONCURRENCY`` conversations are with the model at once, each
    first looked up on its platform in case the brand already answered there.
    Meanwhile this thread posts the most urgent conversation that is ready,
    paced at Slack's per-channel rate by the publisher, up to what Slack takes
    between two cycles (``cards_per_cycle``). New drafts are started
    and cards posted until ``until`` (``time.monotonic()``); drafts under way
    are then waited for until ``stop``, and any still with the model finish on
    their own threads after the cycle (the Drafter keeps the model's
    concurrency). What is ready but not carded is carded next cycle, most
    urgent first (``backlog`` reports it while it is more than Slack takes in
    a minute).
    """
    concurrency = services.drafter.concurrency if services.drafter else services.settings.openai_concurrency
    budget = cards_per_cycle(services.settings)
    outcomes: Counter = Counter()
    under_way: set[Future] = set()
    slack_refused = no_more_new = False
    channel_failed: set[int] = set()  # cards whose routed channel failed: not tried again this cycle
    # Twice as many threads as model slots (the Drafter holds OPENAI_CONCURRENCY): while some wait
    # for the model, the others look up threads and write to the database, so the model is never idle.
    pool = ThreadPoolExecutor(max_workers=2 * concurrency, thread_name_prefix="draft")
    try:
        while True:
            open_ = time.monotonic() < until
            if open_ and not no_more_new and len(under_way) < 3 * concurrency:  # a few queued keep every thread busy
                claimed = claim_new(services, 3 * concurrency - len(under_way))
                no_more_new = not claimed
                under_way |= {pool.submit(_prepare_one, services, cid) for cid in claimed}
            carded = None
            if open_ and not slack_refused and budget > 0:
                carded = sync.post_next_card(services, skip=channel_failed)
                slack_refused = carded is None
                budget -= bool(carded)
                report.carded += bool(carded)
            finished = {f for f in under_way if f.done()}
            under_way -= finished
            outcomes.update(f.result() for f in finished)
            if carded or (finished and open_):  # a draft that just finished is carded before the cycle ends
                continue
            if under_way and (open_ or stop is None or time.monotonic() < stop):
                deadline = until if open_ else stop
                wait(under_way, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            elif under_way:
                log.info("%d drafts still with the model as the cycle ends; they finish on their own", len(under_way))
                break
            elif not open_ or no_more_new:
                break
    finally:
        pool.shutdown(wait=False)
    report.answered_elsewhere += outcomes[State.ANSWERED_ELSEWHERE]
    report.drafted += outcomes[State.DRAFTED]
    report.without_draft += outcomes[State.DRAFT_FAILED]
    report.skipped += outcomes[State.SKIPPED]


def cards_per_cycle(settings) -> int:
    """What Slack takes in one channel between two cycles: SLACK_MESSAGES_PER_SECOND × POLL_INTERVAL_SECONDS."""
    return max(1, round(settings.slack_messages_per_second * settings.poll_interval_seconds))


def claim_new(services: Services, limit: int) -> list[int]:
    """Take up to ``limit`` new mentions for drafting (new → drafting), oldest first; one statement."""
    ids = backlog.ids_in(services.db, State.NEW, limit=limit)
    if not ids:
        return []
    with services.db.session() as session:
        won = set(session.scalars(
            update(Conversation)
            .where(Conversation.id.in_(ids), Conversation.state == State.NEW.value)
            .values(state=State.DRAFTING.value, updated_at=utcnow())
            .returning(Conversation.id)
            .execution_options(synchronize_session=False)
        ))
    leases.for_services(services).hold(won)
    return [cid for cid in ids if cid in won]


def _prepare_one(services: Services, conversation_id: int) -> State | None:
    """On a drafting thread: the thread check, then the draft. Never raises (the cycle goes on)."""
    try:
        return _check_thread(services, conversation_id) or _draft_one(services, conversation_id)
    except Exception:  # noqa: BLE001 - one broken conversation must not stop the others; it is released later
        log.exception("conversation %s: drafting failed; it is tried again once its lease runs out", conversation_id)
        return None
    finally:
        leases.for_services(services).drop(conversation_id)


def _draft_one(services: Services, conversation_id: int) -> State:
    with services.db.session() as session:
        conversation = session.get(Conversation, conversation_id)
        context = gather_context(session, conversation)
    similar = examples.similar(services.db, services.drafter, services.settings, conversation.text, conversation.platform)
    grounding = ground(services.db, services.drafter, services.settings, conversation, context) if services.drafter else None
    rules = services.rules.draft(conversation, grounding.urls if grounding else None)
    outcome = make_draft(services.drafter, services.prompts_for(conversation), conversation, rules,
                         examples=similar, context=context, grounding=grounding)
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
            "private_hint": privacy.suggestion(conversation.text, triage.reply, model_says=triage.private),
        }
        if triage.should_reply and triage.reply.strip():
            reply = services.rules.compose(conversation, triage.reply.strip())
            values.update(draft_text=reply, draft_model=triage.drafted_by or None, policy_problems=policy.check(reply, rules),
                          grounding=grounding.record(reply) if grounding else None)
            target = State.DRAFTED
        elif triage.should_reply:
            values.update(draft_error="No draft: the model wanted to reply but wrote nothing.")
            target = State.DRAFT_FAILED
        else:
            target = State.SKIPPED
    values.update(_routed(services, conversation, values.get("category"), values.get("urgency")))
    with services.db.session() as session:
        transition(session, conversation_id, State.DRAFTING, target, **values)
    if target is State.SKIPPED:
        log.info("conversation %s: skipped by triage (%s)", conversation_id, triage.reason)
    return target


def _routed(services: Services, conversation: Conversation, category: str | None, urgency: str | None) -> dict:
    """Where the triaged conversation goes: its route and review channel (bot/routing.py)."""
    account = services.brand.replying(conversation)
    facts = Facts(account=account.id if account else None, platform=conversation.platform, category=category,
                  urgency=urgency, language=conversation.language, text=conversation.text)
    route, channel = destination(services.settings.routes, facts, account.review_channel if account else None)
    return {"route": route.name, "review_channel": channel}


def _check_thread(services: Services, conversation_id: int) -> State | None:
    """Before the model: a mention the brand already answered natively, or that was deleted,
    gets no draft and no card (ANSWERED_ELSEWHERE or DELETED); None when it needs a draft."""
    with services.db.session() as session:
        conversation = session.get(Conversation, conversation_id)
    platform = services.brand.adapter(conversation)
    return threads.settle_on_platform(services.db, platform, conversation, State.DRAFTING,
                                      others=services.brand.others(conversation)) if platform else None
