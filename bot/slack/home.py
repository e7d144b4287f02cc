"""The App Home tab (``views.publish``), and card permalinks for the views that link to cards.

The Home tab is rebuilt from the database each time someone opens it: the
live queue, today's figures, the configuration in force, paused or running.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import select

from bot import business_hours
from bot.backlog import card_queue
from bot.cards import escape, slack_time
from bot.examples import quality_line
from bot.models import OPEN_ON_SLACK, Conversation, get_pause, utcnow
from bot.review import PLATFORM_LABELS
from bot.services import Services

log = logging.getLogger(__name__)

QUEUE_SHOWN = 20  # Home shows at most this many waiting cards, then "and N more"
PERMALINKS_KEPT = 5000  # a process remembers this many card permalinks, then starts again

_permalinks: dict[tuple[str, str, str], str] = {}
_permalinks_lock = threading.Lock()


def permalink(services: Services, channel: str | None, ts: str | None) -> str | None:
    """A link to a Slack message (``chat.getPermalink``), cached: a message's permalink never changes."""
    client = services.slack_client
    if client is None or not channel or not ts:
        return None
    key = (str(getattr(client, "base_url", "")), channel, ts)
    with _permalinks_lock:
        if key in _permalinks:
            return _permalinks[key]
    try:
        link = client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"]
    except (SlackClientError, OSError, KeyError) as error:
        log.warning("no permalink for %s/%s: %s", channel, ts, slack_error_code(error))
        return None
    with _permalinks_lock:
        if len(_permalinks) >= PERMALINKS_KEPT:
            _permalinks.clear()
        _permalinks[key] = link
    return link


def slack_error_code(error: Exception) -> str:
    """Slack's error code (``not_in_channel``), else the exception's type; never a token or URL."""
    response = getattr(error, "response", None)
    if isinstance(error, SlackApiError) and response is not None:
        return str(response.get("error", "unknown_error"))
    return type(error).__name__


def platform_label(name: str) -> str:
    return PLATFORM_LABELS.get(name, name)


def publish_home(services: Services, user: str, *, now: datetime | None = None) -> None:
    """Show ``user`` the Home tab as it is now."""
    view = home_view(services, now=now or utcnow())
    try:
        services.slack_client.views_publish(user_id=user, view=view)
    except (SlackClientError, OSError) as error:
        log.error("could not publish the Home tab for %s: %s", user, slack_error_code(error))


def home_view(services: Services, *, now: datetime) -> dict:
    from bot.jobs.digest import compute, local_midnight  # the digest owns the figures

    with services.db.session() as session:
        pause = get_pause(session)
        waiting = list(
            session.scalars(
                select(Conversation)
                .where(Conversation.state.in_([s.value for s in OPEN_ON_SLACK]), Conversation.slack_ts.is_not(None))
                .order_by(Conversation.posted_at)
            )
        )
    figures = compute(services, start=local_midnight(now, services.settings.digest_timezone), end=now)
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Conversant"}},
        _section(_status_line(pause)),
        {"type": "divider"},
        _section(f"*Waiting for review* ({len(waiting)})"),
    ]
    blocks.extend(_queue_blocks(services, waiting, now))
    blocks.append(_context(card_queue(services).home_text()))  # what is still on its way to a card
    blocks += [
        {"type": "divider"},
        _section("*Today so far*\n" + figures.short_summary() + "\n" + quality_line(services, local_midnight(now, services.settings.digest_timezone), now)),
        {"type": "divider"},
        _section("*Configuration in force*\n" + _configuration(services, pause)),
        _context("Use `/conversant status | pause | resume | digest | help` in any channel."),
    ]
    return {"type": "home", "blocks": blocks}


def _status_line(pause) -> str:
    if pause:
        return f":double_vertical_bar: *Paused* by <@{pause.by}> {slack_time(pause.at)}: no polling, no nudges. Cards already posted still work. `/conversant resume` to start again."
    return ":large_green_circle: *Running*: polling the platforms and nudging on-call about waiting cards."


def _queue_blocks(services: Services, waiting: list[Conversation], now: datetime) -> list[dict]:
    from bot.jobs.nudges import human_duration

    if not waiting:
        return [_context(":white_check_mark: Nothing is waiting. Every card has been handled.")]
    lines = []
    for c in waiting[:QUEUE_SHOWN]:
        link = permalink(services, c.slack_channel, c.slack_ts) or c.url
        who = f"<@{c.claimed_by}> is on it" if c.claimed_by else "nobody on it"
        failed = " · :x: posting failed" if c.state == "post_failed" else ""
        lines.append(f"• <{link}|@{escape(c.author_handle)} on {platform_label(c.platform)}> · waiting {human_duration((now - c.posted_at).total_seconds())} · {who}{failed}")
    if len(waiting) > QUEUE_SHOWN:
        lines.append(f"…and {len(waiting) - QUEUE_SHOWN} more.")
    return [_section("\n".join(lines))]


def _configuration(services: Services, pause) -> str:
    from bot.jobs.nudges import human_minutes, mention_list

    s = services.settings
    platforms = ", ".join(p.label for p in services.platforms.values()) or "none enabled"
    oncall = mention_list(s.slack_oncall) or "nobody (set SLACK_ONCALL)"
    from bot.streaming import ingest_lines

    arrive = ingest_lines(services, utcnow())
    return "\n".join([
        f"• Platforms: {platforms}",
        *(f"• {platform_label(name)}: {line}" for name, line in arrive.items()),
        f"• Review SLA: {human_minutes(s.review_sla_minutes)}; nudges at most every {human_minutes(s.nudge_repeat_minutes)}; escalation at 3× the SLA",
        f"• On call: {oncall}",
        f"• Business hours: {business_hours.describe(s.business_hours)} ({s.digest_timezone.key})",
        f"• Daily digest: {s.digest_time:%H:%M} {s.digest_timezone.key} in <#{s.digest_channel}>",
        f"• Review channel: <#{s.slack_review_channel}>",
        f"• State: {'paused' if pause else 'running'}",
    ])


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
