"""The figures the digest, the Home tab and the quality numbers show, computed from the database.

Figures are computed from timestamps (when the person posted, when the reply
went out) and each conversation's outcome, so nothing has to be marked as
missed: a conversation is *missed* when it needed an answer, has none, and the
review SLA had run out by the end of the window (whether it still waits or was
never answered). Time to first reply is measured from the person's post to
the brand's reply, in wall-clock time and in business hours.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot import business_hours
from bot.backlog import CardQueue, card_queue
from bot.db import Database
from bot.examples import DailyQuality, quality_between
from bot.models import OPEN_ON_SLACK, Conversation, Pause, State, get_pause

DAY = timedelta(days=1)
TREND_DAYS = 14
COMPARE_DAYS = 7

NOT_NEEDING_AN_ANSWER = {State.SKIPPED.value, State.DISMISSED.value, State.DELETED.value}
ANSWERED = {State.REPLIED.value, State.ANSWERED_ELSEWHERE.value}
URGENCY_ORDER = {"high": 0, "normal": 1}


@dataclass(frozen=True)
class Row:
    """The columns of a conversation the digest reads."""

    id: int
    platform: str
    state: str
    posted_at: datetime
    replied_at: datetime | None
    dismiss_reason: str | None
    claimed_by: str | None
    urgency: str | None
    url: str
    author_handle: str
    slack_channel: str | None
    slack_ts: str | None


@dataclass(frozen=True)
class Missed:
    row: Row
    reason: str
    waited: float  # seconds from the post to the end of the window


@dataclass(frozen=True)
class Times:
    """Time to first reply over some replies, in seconds."""

    count: int
    median: float | None
    p90: float | None
    median_business: float | None
    p90_business: float | None


@dataclass
class Figures:
    start: datetime
    end: datetime
    received: int = 0
    replied: int = 0
    dismissed: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    answered_elsewhere: int = 0
    deleted: int = 0
    waiting_within_sla: int = 0
    missed: list[Missed] = field(default_factory=list)
    times: dict[str, Times] = field(default_factory=dict)  # per platform, and "all"

    @property
    def needing_answer(self) -> int:
        return self.received - self.skipped - sum(self.dismissed.values()) - self.deleted

    @property
    def answered(self) -> int:
        return self.replied + self.answered_elsewhere

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.needing_answer if self.needing_answer > 0 else None


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def load_rows(db: Database, start: datetime, end: datetime, *, channel: str | None = None) -> list[Row]:
    """``channel``: only the conversations routed to that review channel (None: all)."""
    columns = [getattr(Conversation, name) for name in Row.__dataclass_fields__]
    query = select(*columns).where(Conversation.posted_at >= start, Conversation.posted_at < end)
    if channel is not None:
        query = query.where(Conversation.review_channel == channel)
    with db.session() as session:
        return [Row(*values) for values in session.execute(query)]


def figures_for(settings, rows: list[Row], start: datetime, end: datetime, *, times: bool = True) -> Figures:
    """The figures of the conversations posted in [start, end), from their current outcome (``times``: with reply times)."""
    sla = timedelta(minutes=settings.review_sla_minutes)
    figures = Figures(start=start, end=end)
    dismissed: Counter[str] = Counter()
    waits: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if not (start <= row.posted_at < end):
            continue
        figures.received += 1
        state = row.state
        if state == State.REPLIED.value:
            figures.replied += 1
            if row.replied_at and times:
                wall = (row.replied_at - row.posted_at).total_seconds()
                open_time = business_hours.open_seconds(row.posted_at, row.replied_at, settings.business_hours, settings.digest_timezone)
                waits[row.platform].append((wall, open_time))
        elif state == State.DISMISSED.value:
            dismissed[row.dismiss_reason or "no_reason"] += 1
        elif state == State.SKIPPED.value:
            figures.skipped += 1
        elif state == State.ANSWERED_ELSEWHERE.value:
            figures.answered_elsewhere += 1
        elif state == State.DELETED.value:
            figures.deleted += 1
        elif row.posted_at + sla <= end:
            figures.missed.append(Missed(row, why_missed(row, settings), (end - row.posted_at).total_seconds()))
        else:
            figures.waiting_within_sla += 1
    figures.dismissed = dict(dismissed)
    figures.missed.sort(key=lambda m: (URGENCY_ORDER.get(m.row.urgency or "", 2), m.row.posted_at))
    everything = [w for platform_waits in waits.values() for w in platform_waits]
    if everything:
        figures.times["all"] = _times(everything)
    for platform, platform_waits in sorted(waits.items()):
        figures.times[platform] = _times(platform_waits)
    return figures


def _times(waits: list[tuple[float, float]]) -> Times:
    wall = [w for w, _ in waits]
    business = [b for _, b in waits]
    return Times(len(waits), percentile(wall, 0.5), percentile(wall, 0.9), percentile(business, 0.5), percentile(business, 0.9))


def why_missed(row: Row, settings) -> str:
    state = row.state
    if state == State.POST_FAILED.value:
        return "post failed"
    if state in (State.APPROVED.value, State.POSTING.value):
        return "approved but not posted yet"
    if state != State.CARDED.value or not row.slack_ts:
        return "no card reached Slack"
    if row.claimed_by:
        return "claimed by {who} but not sent"
    if settings.business_hours and not business_hours.is_open(row.posted_at, settings.business_hours, settings.digest_timezone):
        return "arrived outside business hours"
    return "never claimed"


def compute(db: Database, settings, *, start: datetime, end: datetime) -> Figures:
    return figures_for(settings, load_rows(db, start, end), start, end)


def local_midnight(moment: datetime, tz: ZoneInfo) -> datetime:
    return business_hours.local_moment(moment.astimezone(tz).date(), datetime.min.time(), tz)


# -- the digest's figures ---------------------------------------------------------


@dataclass
class Digest:
    figures: Figures
    previous: Figures  # the seven days before, for comparison
    received_per_hour: list[int]
    answered_per_hour: list[int]
    hour_labels: list[str]
    trend: list[tuple[str, float | None]]  # (local date, response rate) for the last 14 days
    paused: Pause | None
    timezone: ZoneInfo

    @property
    def local_date(self) -> date:
        return (self.figures.end - timedelta(seconds=1)).astimezone(self.timezone).date()


def build_digest(db: Database, settings, *, end: datetime, channel: str | None = None) -> Digest:
    """Everything the digest shows, for the 24 hours before ``end`` (``channel``: of one routed channel)."""
    tz = settings.digest_timezone
    start = end - DAY
    rows = sorted(load_rows(db, end - TREND_DAYS * DAY, end, channel=channel), key=lambda row: row.posted_at)
    posted = [row.posted_at for row in rows]

    def between(first: datetime, last: datetime) -> list[Row]:
        return rows[bisect_left(posted, first):bisect_left(posted, last)]

    figures = figures_for(settings, between(start, end), start, end)
    previous = figures_for(settings, between(start - COMPARE_DAYS * DAY, start), start - COMPARE_DAYS * DAY, start)
    hours = [start + timedelta(hours=i) for i in range(25)]
    received = [0] * 24
    answered = [0] * 24
    for row in rows:
        if start <= row.posted_at < end:
            received[int((row.posted_at - start).total_seconds() // 3600)] += 1
        if row.state == State.REPLIED.value and row.replied_at and start <= row.replied_at < end:
            answered[int((row.replied_at - start).total_seconds() // 3600)] += 1
    trend = []
    for days_back in range(TREND_DAYS - 1, -1, -1):
        day_end = end - days_back * DAY
        day = figures_for(settings, between(day_end - DAY, day_end), day_end - DAY, day_end, times=False)
        trend.append(((day_end - timedelta(seconds=1)).astimezone(tz).strftime("%d %b"), day.response_rate))
    with db.session() as session:
        paused = get_pause(session)
    return Digest(figures, previous, received, answered, [h.astimezone(tz).strftime("%H:%M") for h in hours[:24]], trend, paused, tz)


def quality(db: Database, start: datetime, end: datetime) -> DailyQuality:
    """How the model's drafts fared on the replies sent in [start, end)."""
    with db.session() as session:
        return quality_between(session, start, end)


def queue(db: Database, settings) -> CardQueue:
    """How many conversations wait for a card."""
    return card_queue(db, settings)


@dataclass(frozen=True)
class RefusedCards:
    """Open conversations whose full card Slack refused (see ``backlog.card_refused``)."""

    shortened: int = 0  # on Slack as a short card
    retrying: int = 0  # not on Slack yet: tried again soon
    reasons: dict[str, int] = field(default_factory=dict)  # Slack's reasons, e.g. {"invalid_blocks": 2}

    @property
    def total(self) -> int:
        return self.shortened + self.retrying


def refused_cards(db: Database) -> RefusedCards:
    ready = {State.DRAFTED.value, State.DRAFT_FAILED.value}
    with db.session() as session:
        rows = session.execute(
            select(Conversation.state, Conversation.slack_ts, Conversation.card_error)
            .where(Conversation.card_error.is_not(None),
                   Conversation.state.in_([*ready, *(s.value for s in OPEN_ON_SLACK)]))
        ).all()
    retrying = sum(1 for state, ts, _ in rows if state in ready)
    shortened = sum(1 for state, ts, _ in rows if state not in ready and ts)
    return RefusedCards(shortened, retrying, dict(Counter(reason for *_, reason in rows)))


@dataclass(frozen=True)
class Today:
    """What the Home tab shows: today's figures, the drafts' quality, the queue, the open cards."""

    figures: Figures
    quality: DailyQuality
    queue: CardQueue
    waiting: list  # open cards on Slack, oldest first
    paused: Pause | None
    refused: RefusedCards = RefusedCards()


def today(db: Database, settings, *, now: datetime) -> Today:
    start = local_midnight(now, settings.digest_timezone)
    with db.session() as session:
        paused = get_pause(session)
        waiting = list(session.scalars(
            select(Conversation)
            .where(Conversation.state.in_([s.value for s in OPEN_ON_SLACK]), Conversation.slack_ts.is_not(None))
            .order_by(Conversation.posted_at)
        ))
    return Today(compute(db, settings, start=start, end=now), quality(db, start, now), queue(db, settings), waiting, paused,
                 refused_cards(db))
