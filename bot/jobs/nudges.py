"""Nudges about cards waiting too long, escalation, and the Claim and Snooze that steer them.

A card is *stale* once ``REVIEW_SLA_MINUTES`` have passed since the person
posted the mention. A nudge pass (``conversant nudge --once``, or the worker
every minute):

- skips everything while Conversant is paused or outside ``BUSINESS_HOURS``;
- looks at the platform first: a card the brand has meanwhile answered (or
  whose mention was deleted) is closed and its card rewritten, not nudged;
- nudges each stale card at most once per ``NUDGE_REPEAT_MINUTES``, in the
  card's thread, mentioning ``SLACK_ONCALL``, or only the person who clicked
  *I'm on it*; a snoozed card is left alone until its snooze ends;
- when ``GROUP_FROM`` or more cards are due at once, posts one message listing
  them (oldest first, with links and ages) instead of one per card;
- raises a card still waiting at ``ESCALATE_AT`` times the SLA once in
  ``SLACK_DIGEST_CHANNEL`` (snoozing does not hold that back).

Every nudge and escalation is claimed with a conditional update before it is
posted, so two processes never nudge the same card twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from bot import business_hours
from bot.cards import SnoozeFor, escape
from bot.decision import Decision, Outcome, already_handled
from bot.models import (
    OPEN_ON_SLACK,
    Conversation,
    State,
    audit,
    get_pause,
    transition,
    utcnow,
)
from bot.platforms.base import MentionGone, PlatformError
from bot.purge import FORGET_DELETED
from bot.review import refresh_card
from bot.services import Services
from bot.slack.home import permalink, platform_label
from bot.slack.publish import CardPublishError

log = logging.getLogger(__name__)

GROUP_FROM = 3  # this many cards due at once get one message listing them
LISTED = 15  # a grouped message lists at most this many, then "and N more"
ESCALATE_AT = 3  # times the review SLA
OPEN_STATES = [s.value for s in OPEN_ON_SLACK]


@dataclass
class NudgeReport:
    nudged: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)  # answered on the platform or deleted meanwhile
    messages: int = 0
    paused: bool = False
    closed_until: datetime | None = None  # outside business hours: nudges wait until then

    def summary(self) -> str:
        if self.paused:
            return "paused: no nudges (`/conversant resume` starts them again)"
        if self.closed_until:
            return f"outside business hours: nudges wait until {self.closed_until:%Y-%m-%d %H:%M} UTC"
        return (f"{len(self.nudged)} cards nudged in {self.messages} messages, {len(self.escalated)} escalated, "
                f"{len(self.settled)} found answered or deleted on the platform")


# -- the pass -------------------------------------------------------------------


def nudge_once(services: Services, *, now: datetime | None = None) -> NudgeReport:
    now = now or utcnow()
    settings = services.settings
    report = NudgeReport()
    with services.db.session() as session:
        report.paused = get_pause(session) is not None
    if report.paused:
        log.info("nudges: paused")
        return report
    opening = business_hours.next_opening(now, settings.business_hours, settings.digest_timezone)
    if opening > now:
        report.closed_until = opening
        log.info("nudges: outside business hours until %s", opening.isoformat())
        return report

    sla = timedelta(minutes=settings.review_sla_minutes)
    stale = stale_cards(services, now - sla)
    due = [c for c in stale if _due_for_nudge(c, now, settings.nudge_repeat_minutes)]
    to_escalate = [c for c in stale if c.escalated_at is None and c.posted_at <= now - ESCALATE_AT * sla]
    waiting = _still_waiting(services, {c.id: c for c in due + to_escalate}.values(), now, report)

    due = [c for c in due if c.id in waiting and _claim_nudge(services, c, now)]
    _post_nudges(services, due, now, report)
    to_escalate = [c for c in to_escalate if c.id in waiting and _claim_escalation(services, c, now)]
    _post_escalations(services, to_escalate, now, report)
    log.info("nudge pass: %s", report.summary())
    return report


def stale_cards(services: Services, posted_before: datetime) -> list[Conversation]:
    """Open cards on Slack whose mention was posted before ``posted_before``, oldest first."""
    with services.db.session() as session:
        return list(
            session.scalars(
                select(Conversation)
                .where(
                    Conversation.state.in_(OPEN_STATES),
                    Conversation.slack_ts.is_not(None),
                    Conversation.posted_at <= posted_before,
                )
                .order_by(Conversation.posted_at)
            )
        )


def _due_for_nudge(c: Conversation, now: datetime, repeat_minutes: float) -> bool:
    if c.snoozed_until and c.snoozed_until > now:
        return False
    return c.last_nudged_at is None or c.last_nudged_at <= now - timedelta(minutes=repeat_minutes)


def _still_waiting(services: Services, cards, now: datetime, report: NudgeReport) -> set[int]:
    """Ask each platform whether the brand answered meanwhile; close the cards it did."""
    waiting = set()
    for c in cards:
        platform = services.platforms.get(c.platform)
        if platform is None:
            waiting.add(c.id)
            continue
        try:
            reply = platform.find_brand_reply(c.thread_ref)
        except MentionGone:
            _settle(services, c.id, State.DELETED, "deleted_by_author", None, checked_at=now, **FORGET_DELETED)
            report.settled.append(c.id)
            continue
        except PlatformError as error:
            log.warning("conversation %s: could not look at the thread before nudging (%s); nudging anyway", c.id, error)
            waiting.add(c.id)
            continue
        if reply is None:
            waiting.add(c.id)
            with services.db.session() as session:
                session.execute(update(Conversation).where(Conversation.id == c.id).values(checked_at=now))
            continue
        _settle(services, c.id, State.ANSWERED_ELSEWHERE, "answered_elsewhere", reply.url,
                reply_id=reply.external_id, reply_url=reply.url, checked_at=now)
        report.settled.append(c.id)
    return waiting


def _settle(services: Services, conversation_id: int, state: State, action: str, detail: str | None, **values) -> None:
    with services.db.session() as session:
        won = transition(session, conversation_id, OPEN_ON_SLACK, state, **values)
        if won:
            audit(session, conversation_id, "conversant", action, detail)
    if won:
        log.info("conversation %s: %s on the platform; not nudging", conversation_id, state.value.replace("_", " "))
        refresh_card(services, conversation_id)


def _claim_nudge(services: Services, c: Conversation, now: datetime) -> bool:
    """Record the nudge before posting it: exactly one process wins each card's nudge."""
    repeat = timedelta(minutes=services.settings.nudge_repeat_minutes)
    with services.db.session() as session:
        result = session.execute(
            update(Conversation)
            .where(
                Conversation.id == c.id,
                Conversation.state.in_(OPEN_STATES),
                or_(Conversation.last_nudged_at.is_(None), Conversation.last_nudged_at <= now - repeat),
                or_(Conversation.snoozed_until.is_(None), Conversation.snoozed_until <= now),
            )
            .values(last_nudged_at=now)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1


def _claim_escalation(services: Services, c: Conversation, now: datetime) -> bool:
    with services.db.session() as session:
        result = session.execute(
            update(Conversation)
            .where(Conversation.id == c.id, Conversation.state.in_(OPEN_STATES), Conversation.escalated_at.is_(None))
            .values(escalated_at=now)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1


def _undo(services: Services, cards: list[Conversation], column: str, now: datetime) -> None:
    """Slack refused the message: give the cards their previous time back, to try next pass."""
    with services.db.session() as session:
        for c in cards:
            session.execute(
                update(Conversation)
                .where(Conversation.id == c.id, getattr(Conversation, column) == now)
                .values({column: getattr(c, column)})
                .execution_options(synchronize_session=False)
            )


def _post_nudges(services: Services, cards: list[Conversation], now: datetime, report: NudgeReport) -> None:
    if not cards:
        return
    settings = services.settings
    try:
        if len(cards) >= GROUP_FROM:
            services.publisher.post({"text": grouped_nudge_text(services, cards, now)}, channel=cards[0].slack_channel)
            report.messages += 1
        else:
            for c in cards:
                services.publisher.post({"text": nudge_text(c, now, settings)}, channel=c.slack_channel, thread_ts=_thread_of(c))
                report.messages += 1
                report.nudged.append(c.id)
            return
    except CardPublishError as error:
        log.error("nudge not posted: %s", error)
        _undo(services, [c for c in cards if c.id not in report.nudged], "last_nudged_at", now)
        return
    report.nudged.extend(c.id for c in cards)


def _thread_of(c: Conversation) -> str:
    """The Slack thread a card lives in: its own, or the first card's when it is a later turn."""
    return getattr(c, "slack_thread_ts", None) or c.slack_ts


def _post_escalations(services: Services, cards: list[Conversation], now: datetime, report: NudgeReport) -> None:
    if not cards:
        return
    try:
        services.publisher.post({"text": escalation_text(services, cards, now)}, channel=services.settings.digest_channel)
    except CardPublishError as error:
        log.error("escalation not posted: %s", error)
        _undo(services, cards, "escalated_at", now)
        return
    report.messages += 1
    report.escalated.extend(c.id for c in cards)


# -- the words --------------------------------------------------------------------


def mention(slack_id: str) -> str:
    """How Slack pings a user (``<@U…>``) or a user group (``<!subteam^S…>``)."""
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def mention_list(ids) -> str:
    return " ".join(mention(i) for i in ids)


def human_duration(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def human_minutes(minutes: float) -> str:
    return human_duration(minutes * 60) if minutes >= 1 else f"{minutes * 60:g} s"


def _who(c: Conversation) -> str:
    return f"@{escape(c.author_handle)}'s {platform_label(c.platform)} mention"


def nudge_text(c: Conversation, now: datetime, settings) -> str:
    age = human_duration((now - c.posted_at).total_seconds())
    sla = human_minutes(settings.review_sla_minutes)
    if c.claimed_by:
        return (f"<@{c.claimed_by}> :alarm_clock: You're on this one: {_who(c)} has waited {age}, past the {sla} review SLA. "
                "Approve or edit the reply, or dismiss it if it needs none.")
    ping = mention_list(settings.slack_oncall)
    lead = f"{ping} :alarm_clock:" if ping else ":alarm_clock:"
    return (f"{lead} {_who(c)} has waited {age}, past the {sla} review SLA. "
            "Approve, edit or dismiss it above, or click *I'm on it* so the team knows.")


def _card_line(services: Services, c: Conversation, now: datetime) -> str:
    link = permalink(services, c.slack_channel, c.slack_ts) or c.url
    who = f"<@{c.claimed_by}> is on it" if c.claimed_by else "nobody on it"
    return f"• <{link}|@{escape(c.author_handle)} on {platform_label(c.platform)}> · waiting {human_duration((now - c.posted_at).total_seconds())} · {who}"


def _listed(services: Services, cards: list[Conversation], now: datetime) -> str:
    lines = [_card_line(services, c, now) for c in cards[:LISTED]]
    if len(cards) > LISTED:
        lines.append(f"…and {len(cards) - LISTED} more.")
    return "\n".join(lines)


def grouped_nudge_text(services: Services, cards: list[Conversation], now: datetime) -> str:
    settings = services.settings
    ping = mention_list(settings.slack_oncall) if any(not c.claimed_by for c in cards) else ""
    lead = f"{ping} :alarm_clock:" if ping else ":alarm_clock:"
    head = f"{lead} {len(cards)} conversations are waiting past the {human_minutes(settings.review_sla_minutes)} review SLA, oldest first:"
    return head + "\n" + _listed(services, cards, now)


def escalation_text(services: Services, cards: list[Conversation], now: datetime) -> str:
    sla = human_minutes(services.settings.review_sla_minutes)
    if len(cards) == 1:
        c = cards[0]
        age = human_duration((now - c.posted_at).total_seconds())
        link = permalink(services, c.slack_channel, c.slack_ts)
        card = f"<{link}|Open the card>" if link else "See the review channel"
        who = f"<@{c.claimed_by}> is on it" if c.claimed_by else "nobody is on it"
        return (f":rotating_light: *Escalation:* {_who(c)} has waited {age}, over {ESCALATE_AT}× the {sla} review SLA, "
                f"and is still unanswered ({who}). {card} · <{c.url}|the post>")
    return (f":rotating_light: *Escalation:* {len(cards)} conversations have waited over {ESCALATE_AT}× the {sla} review SLA "
            f"and are still unanswered, oldest first:\n" + _listed(services, cards, now))


# -- Claim and Snooze -------------------------------------------------------------


def claim(services: Services, conversation_id: int, user: str, *, now: datetime | None = None) -> Decision:
    """*I'm on it*: the card shows who has it, and its nudges go to them only."""
    now = now or utcnow()
    with services.db.session() as session:
        won = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state.in_(OPEN_STATES), Conversation.claimed_by.is_(None))
            .values(claimed_by=user, claimed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            audit(session, conversation_id, user, "claimed")
            return Decision(Outcome.DONE)
        conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.state not in OPEN_STATES:
        return already_handled(services, conversation_id)
    if conversation.claimed_by == user:
        return Decision(Outcome.ALREADY_HANDLED, "You're already on this one.")
    return Decision(Outcome.ALREADY_HANDLED, f"<@{conversation.claimed_by}> is already on this one.")


def snooze(services: Services, conversation_id: int, user: str, choice: SnoozeFor, *, now: datetime | None = None) -> Decision:
    """Hold this card's nudges for an hour, or until tomorrow's opening."""
    now = now or utcnow()
    until = snooze_until(services.settings, choice, now)
    with services.db.session() as session:
        won = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state.in_(OPEN_STATES))
            .values(snoozed_until=until, snoozed_by=user)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            audit(session, conversation_id, user, "snoozed", until.isoformat())
    return Decision(Outcome.DONE) if won else already_handled(services, conversation_id)


def snooze_until(settings, choice: SnoozeFor, now: datetime) -> datetime:
    if choice is SnoozeFor.HOUR:
        return now + timedelta(hours=1)
    tz = settings.digest_timezone
    tomorrow = now.astimezone(tz).date() + timedelta(days=1)
    opens = settings.business_hours.start if settings.business_hours else settings.digest_time
    return business_hours.local_moment(tomorrow, opens, tz)
