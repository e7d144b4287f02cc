"""The daily digest: what the last 24 hours brought, what was missed and why, with a chart.

Figures are computed from timestamps (when the person posted, when the reply
went out) and each conversation's outcome, so nothing has to be marked as
missed: a conversation is *missed* when it needed an answer, has none, and the
review SLA had run out by the end of the window (whether it still waits or was
never answered). Time to first reply is measured from the person's post to
the brand's reply, in wall-clock time and in business hours.

The scheduled digest goes out at ``DIGEST_TIME`` in ``DIGEST_TIMEZONE``. The
local date of the last digest sent is kept in ``app_state``, and is moved
forward with a conditional update before sending: so a restart, a catch-up
after downtime and two processes all send it at most once per day, and a
worker that was down for three days sends one digest when it returns, not three.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackClientError
from sqlalchemy import select, update

from bot import business_hours
from bot.cards import escape, slack_time
from bot.examples import quality_line
from bot.jobs.chart import ChartData, draw
from bot.jobs.nudges import human_duration, human_minutes
from bot.models import (
    AppState,
    Conversation,
    DismissReason,
    Pause,
    State,
    get_pause,
    insert_state,
    utcnow,
)
from bot.services import Services
from bot.slack.home import permalink, platform_label, slack_error_code

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
TREND_DAYS = 14
COMPARE_DAYS = 7
MISSED_LISTED = 10  # then "and N more"
LAST_DIGEST_KEY = "last_digest_date"  # the local date (YYYY-MM-DD) of the last scheduled digest

NOT_NEEDING_AN_ANSWER = {State.SKIPPED.value, State.DISMISSED.value, State.DELETED.value}
ANSWERED = {State.REPLIED.value, State.ANSWERED_ELSEWHERE.value}
URGENCY_ORDER = {"high": 0, "normal": 1}


# -- figures ----------------------------------------------------------------------


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

    def short_summary(self) -> str:
        rate = f"{self.response_rate:.0%}" if self.response_rate is not None else "n/a"
        median = self.times["all"].median if "all" in self.times else None
        parts = [
            f"*{self.received}* received", f"*{self.replied}* replied", f"*{sum(self.dismissed.values())}* dismissed",
            f"*{self.skipped}* skipped by triage", f"*{self.answered_elsewhere}* answered elsewhere",
            f"*{len(self.missed)}* missed", f"response rate *{rate}*",
        ]
        if median is not None:
            parts.append(f"median first reply *{human_duration(median)}*")
        return " · ".join(parts)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def load_rows(services: Services, start: datetime, end: datetime) -> list[Row]:
    columns = [getattr(Conversation, name) for name in Row.__dataclass_fields__]
    with services.db.session() as session:
        result = session.execute(select(*columns).where(Conversation.posted_at >= start, Conversation.posted_at < end))
        return [Row(*values) for values in result]


def figures_for(services: Services, rows: list[Row], start: datetime, end: datetime, *, times: bool = True) -> Figures:
    """The figures of the conversations posted in [start, end), from their current outcome (``times``: with reply times)."""
    settings = services.settings
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
        return f"claimed by <@{row.claimed_by}> but not sent"
    if settings.business_hours and not business_hours.is_open(row.posted_at, settings.business_hours, settings.digest_timezone):
        return "arrived outside business hours"
    return "never claimed"


def compute(services: Services, *, start: datetime, end: datetime) -> Figures:
    return figures_for(services, load_rows(services, start, end), start, end)


def local_midnight(moment: datetime, tz: ZoneInfo) -> datetime:
    return business_hours.local_moment(moment.astimezone(tz).date(), datetime.min.time(), tz)


# -- the digest ----------------------------------------------------------------------


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


def build_digest(services: Services, *, end: datetime) -> Digest:
    """Everything the digest shows, for the 24 hours before ``end``."""
    tz = services.settings.digest_timezone
    start = end - DAY
    rows = sorted(load_rows(services, end - TREND_DAYS * DAY, end), key=lambda row: row.posted_at)
    posted = [row.posted_at for row in rows]

    def between(first: datetime, last: datetime) -> list[Row]:
        return rows[bisect_left(posted, first):bisect_left(posted, last)]

    figures = figures_for(services, between(start, end), start, end)
    previous = figures_for(services, between(start - COMPARE_DAYS * DAY, start), start - COMPARE_DAYS * DAY, start)
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
        day = figures_for(services, between(day_end - DAY, day_end), day_end - DAY, day_end, times=False)
        trend.append(((day_end - timedelta(seconds=1)).astimezone(tz).strftime("%d %b"), day.response_rate))
    with services.db.session() as session:
        paused = get_pause(session)
    return Digest(figures, previous, received, answered, [h.astimezone(tz).strftime("%H:%M") for h in hours[:24]], trend, paused, tz)


def digest_message(services: Services, digest: Digest) -> dict:
    """The digest's Block Kit message. Pure apart from permalinks of missed cards."""
    settings = services.settings
    f, prev = digest.figures, digest.previous
    tz = digest.timezone
    window = f"{f.start.astimezone(tz):%d %b %H:%M} – {f.end.astimezone(tz):%d %b %H:%M} ({tz.key})"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Conversant daily digest · {digest.local_date:%a %d %b %Y}"}},
        _context(f"Mentions posted {window} · review SLA {human_minutes(settings.review_sla_minutes)}"),
    ]
    if digest.paused:
        blocks.append(_section(f":double_vertical_bar: *Conversant is paused* (by <@{digest.paused.by}> {slack_time(digest.paused.at)}): "
                               "no polling and no nudges. `/conversant resume` starts them again."))
    blocks.append({"type": "section", "fields": [_field(label, value) for label, value in _counts(f)]})
    blocks.append(_section(_rate_line(f, prev)))
    blocks.append(_section(_times_lines(f, prev, settings)))
    blocks.append(_context(quality_line(services, f.start, f.end)))
    blocks.append({"type": "divider"})
    blocks.append(_section(_missed_text(services, f)))
    blocks.append(_context("The chart: mentions received and answered per hour over the day, and the response rate over 14 days."))
    missed = len(f.missed)
    text = (f"Conversant digest: {f.received} received, {f.replied} replied, "
            + (f"{missed} missed" if missed else "nothing missed"))
    return {"text": text, "blocks": blocks}


def _counts(f: Figures) -> list[tuple[str, str]]:
    dismissed = sum(f.dismissed.values())
    reasons = ", ".join(f"{_reason_label(r)} {n}" for r, n in sorted(f.dismissed.items(), key=lambda kv: (-kv[1], kv[0])))
    return [
        ("Received", str(f.received)),
        ("Replied", str(f.replied)),
        ("Dismissed", f"{dismissed} ({reasons})" if dismissed else "0"),
        ("Skipped by triage", str(f.skipped)),
        ("Answered elsewhere", str(f.answered_elsewhere)),
        ("Missed", f":warning: {len(f.missed)}" if f.missed else "0"),
    ]


def _reason_label(reason: str) -> str:
    try:
        return DismissReason(reason).label.lower()
    except ValueError:
        return reason.replace("_", " ")


def _rate_line(f: Figures, prev: Figures) -> str:
    if f.response_rate is None:
        line = "*Response rate:* no conversation needed an answer"
    else:
        line = f"*Response rate:* {f.response_rate:.0%} ({f.answered} of the {f.needing_answer} that needed an answer)"
    if prev.response_rate is not None and f.response_rate is not None:
        points = round((f.response_rate - prev.response_rate) * 100)
        line += f" · {_arrow(points)} {abs(points)} pts vs the previous {COMPARE_DAYS} days ({prev.response_rate:.0%})"
    elif prev.response_rate is not None:
        line += f" · previous {COMPARE_DAYS} days: {prev.response_rate:.0%}"
    average = prev.received / COMPARE_DAYS
    line += f"\n*Received:* {f.received} vs {average:.1f} a day over the previous {COMPARE_DAYS} days"
    if f.waiting_within_sla:
        line += f"\n{f.waiting_within_sla} more still waiting, within the SLA"
    return line


def _arrow(delta: float) -> str:
    return "↑" if delta > 0 else "↓" if delta < 0 else "→"


def _times_lines(f: Figures, prev: Figures, settings) -> str:
    if "all" not in f.times:
        return "*Time to first reply:* no replies were sent"
    with_hours = settings.business_hours is not None
    lines = ["*Time to first reply* (median · 90th percentile" + (" · in business hours" if with_hours else "") + ")"]
    for key, times in f.times.items():
        label = "All platforms" if key == "all" else platform_label(key)
        line = f"• {label}: {human_duration(times.median)} · {human_duration(times.p90)}"
        if with_hours:
            line += f" · {human_duration(times.median_business)} · {human_duration(times.p90_business)}"
        line += f" ({times.count} {'reply' if times.count == 1 else 'replies'})"
        before = prev.times.get(key)
        if before and before.median is not None:
            delta = times.median - before.median
            change = "same median as" if abs(delta) < 60 else f"{human_duration(abs(delta))} {'slower' if delta > 0 else 'faster'} than"
            line += f" · {change} the previous {COMPARE_DAYS} days ({human_duration(before.median)})"
        lines.append(line)
    return "\n".join(lines)


def _missed_text(services: Services, f: Figures) -> str:
    sla = human_minutes(services.settings.review_sla_minutes)
    if not f.missed:
        if f.received == 0:
            return ":white_check_mark: *Nothing was missed.* No mentions arrived in these 24 hours."
        return f":white_check_mark: *Nothing was missed.* Every conversation that needed an answer got one or is still within the {sla} SLA."
    lines = [f"*Missed: {len(f.missed)}*, most urgent first (past the {sla} SLA with no answer):"]
    for m in f.missed[:MISSED_LISTED]:
        row = m.row
        card = permalink(services, row.slack_channel, row.slack_ts)
        card_link = f" (<{card}|card>)" if card else ""
        urgency = f" · {row.urgency} urgency" if row.urgency else ""
        lines.append(f"• <{row.url}|@{escape(row.author_handle)} on {platform_label(row.platform)}>{card_link}{urgency}"
                     f" · waited {human_duration(m.waited)} · {m.reason}")
    if len(f.missed) > MISSED_LISTED:
        lines.append(f"…and {len(f.missed) - MISSED_LISTED} more.")
    return "\n".join(lines)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2990]}}


def _field(label: str, value: str) -> dict:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


# -- the chart ----------------------------------------------------------------------


def render_chart(digest: Digest) -> bytes:
    """A PNG: received and answered per hour over the day, and the 14-day response rate."""
    return draw(chart_data(digest))


def render_chart_in_child(digest: Digest) -> bytes:
    """The same PNG drawn in a short-lived process: matplotlib is ~50 MB that the
    worker would otherwise keep for the rest of its life, for a chart a day."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(draw, (chart_data(digest),))


def chart_data(digest: Digest) -> ChartData:
    return ChartData(
        received_per_hour=digest.received_per_hour, answered_per_hour=digest.answered_per_hour,
        hour_labels=digest.hour_labels, trend=digest.trend, local_date=digest.local_date,
        timezone=digest.timezone.key, trend_days=TREND_DAYS,
    )


# -- sending ------------------------------------------------------------------------


@dataclass
class DigestResult:
    channel: str
    ts: str
    file_id: str | None
    missed: int
    seconds: float  # time to compute the figures


def send_digest(services: Services, *, end: datetime | None = None) -> DigestResult:
    """Post the digest for the 24 hours before ``end`` (default now) and upload its chart.

    Raises CardPublishError when Slack refuses the message; a failed chart
    upload is logged and the digest stands without it.
    """
    end = end or utcnow()
    started = time.perf_counter()
    digest = build_digest(services, end=end)
    message = digest_message(services, digest)
    seconds = time.perf_counter() - started
    channel, ts = services.publisher.post(message, channel=services.settings.digest_channel)
    file_id = _upload_chart(services, channel, digest)
    log.info("digest for %s posted to %s (%d missed, figures in %.2fs)", digest.local_date, channel, len(digest.figures.missed), seconds)
    return DigestResult(channel, ts, file_id, len(digest.figures.missed), seconds)


def _upload_chart(services: Services, channel: str, digest: Digest) -> str | None:
    client = services.slack_client
    if client is None:
        return None
    try:
        png = render_chart_in_child(digest)
        response = client.files_upload_v2(
            channel=channel, file=png, filename=f"conversant-digest-{digest.local_date}.png",
            title=f"Conversant digest chart, {digest.local_date:%d %b %Y}",
            alt_txt="Bar chart of mentions received and answered per hour, and a line chart of the 14-day response rate",
        )
    except (SlackClientError, OSError) as error:
        log.error("digest chart not uploaded: %s (check the bot has files:write)", slack_error_code(error))
        return None
    files = response.get("files") or [response.get("file") or {}]
    return files[0].get("id")


def latest_slot(now: datetime, settings) -> datetime:
    """The most recent DIGEST_TIME (in DIGEST_TIMEZONE) at or before ``now``, in UTC."""
    tz = settings.digest_timezone
    today = now.astimezone(tz).date()
    slot = business_hours.local_moment(today, settings.digest_time, tz)
    return slot if slot <= now else business_hours.local_moment(today - DAY, settings.digest_time, tz)


def run_scheduled_digest(services: Services, *, now: datetime | None = None) -> DigestResult | None:
    """Send the digest of the latest DIGEST_TIME unless it was sent; at most once per local date.

    The first run ever only records the date, so a new install sends its
    first digest at the next DIGEST_TIME rather than the moment it starts.
    """
    now = now or utcnow()
    slot = latest_slot(now, services.settings)
    slot_date = slot.astimezone(services.settings.digest_timezone).date().isoformat()
    with services.db.session() as session:
        row = session.get(AppState, LAST_DIGEST_KEY)
        previous = row.value if row else None
        if row is None:
            insert_state(session, LAST_DIGEST_KEY, slot_date, now)
            log.info("digest: first run; the first digest goes out at the next %s %s", services.settings.digest_time.strftime("%H:%M"), services.settings.digest_timezone.key)
            return None
        won = previous < slot_date and session.execute(
            update(AppState)
            .where(AppState.key == LAST_DIGEST_KEY, AppState.value < slot_date)
            .values(value=slot_date, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
    if not won:
        return None
    try:
        return send_digest(services, end=slot)
    except Exception:
        with services.db.session() as session:  # not sent: let the next run try again
            session.execute(
                update(AppState).where(AppState.key == LAST_DIGEST_KEY, AppState.value == slot_date)
                .values(value=previous, updated_at=now).execution_options(synchronize_session=False)
            )
        raise
