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
  ``SLACK_DIGEST_CHANNEL``, or its route's channel (snoozing does not hold that back);
- follows the routes (bot/routing.py): a card is nudged in its channel, mentioning its route's
  on-call group, else ``SLACK_ONCALL``.

Every nudge and escalation is claimed with a conditional update before it is
posted, so two processes never nudge the same card twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from bot import business_hours
from bot.models import OPEN_ON_SLACK, Conversation, get_pause, utcnow
from bot.services import Services
from bot.slack import sync, views
from bot.slack.format import permalink
from bot.slack.views import ESCALATE_AT, GROUP_FROM
from bot.threads import settle_on_platform

log = logging.getLogger(__name__)

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
    """Ask each platform whether the brand answered meanwhile (or the mention is gone); close those cards."""
    waiting = set()
    for c in cards:
        platform = services.brand.adapter(c)
        settled = settle_on_platform(services.db, platform, c, OPEN_ON_SLACK, others=services.brand.others(c)) if platform is not None else None
        if settled is None:
            waiting.add(c.id)
            continue
        log.info("conversation %s: %s on the platform; not nudging", c.id, settled.value.replace("_", " "))
        report.settled.append(c.id)
        sync.refresh_card(services, c.id)
    return waiting


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


def _link(services: Services):
    return lambda channel, ts: permalink(services.slack_client, channel, ts)


def _oncall(settings, c: Conversation) -> tuple[str, ...]:
    """Whom a nudge mentions: the on-call group of the card's route, else SLACK_ONCALL."""
    return settings.routes.named(c.route).oncall or settings.slack_oncall


def _post_nudges(services: Services, cards: list[Conversation], now: datetime, report: NudgeReport) -> None:
    """Each routed channel's cards are nudged there, mentioning that route's on-call group."""
    teams: dict[tuple, list[Conversation]] = {}
    for c in cards:
        teams.setdefault((c.slack_channel, _oncall(services.settings, c)), []).append(c)
    for (channel, oncall), team_cards in teams.items():
        _post_team_nudges(services, team_cards, channel, oncall, now, report)


def _post_team_nudges(services: Services, cards: list[Conversation], channel: str, oncall: tuple[str, ...],
                      now: datetime, report: NudgeReport) -> None:
    settings = services.settings
    if len(cards) >= GROUP_FROM:
        text = views.grouped_nudge_text(settings, cards, now, _link(services), oncall=oncall)
        if not sync.post_text(services, text, channel=channel):
            _undo(services, cards, "last_nudged_at", now)
            return
        report.messages += 1
        report.nudged.extend(c.id for c in cards)
        return
    for c in cards:
        if not sync.post_text(services, views.nudge_text(c, now, settings, oncall=oncall), channel=channel, thread_ts=_thread_of(c)):
            _undo(services, [c for c in cards if c.id not in report.nudged], "last_nudged_at", now)
            return
        report.messages += 1
        report.nudged.append(c.id)


def _thread_of(c: Conversation) -> str:
    """The Slack thread a card lives in: its own, or the first card's when it is a later turn."""
    return getattr(c, "slack_thread_ts", None) or c.slack_ts


def _post_escalations(services: Services, cards: list[Conversation], now: datetime, report: NudgeReport) -> None:
    """To the channel of the cards' route when it names one (the team that owns them), else to
    SLACK_DIGEST_CHANNEL."""
    settings = services.settings
    channels: dict[str | None, list[Conversation]] = {}
    for c in cards:
        channels.setdefault(settings.routes.named(c.route).channel if c.route else None, []).append(c)
    for channel, routed in channels.items():
        text = views.escalation_text(settings, routed, now, _link(services))
        if not sync.post_text(services, text, channel=channel or settings.digest_channel):
            _undo(services, routed, "escalated_at", now)
            continue
        report.messages += 1
        report.escalated.extend(c.id for c in routed)
