"""Slack's message syntax in one place: escaping, quoting, times, mentions, durations, permalinks,
and the Block Kit texts every view is made of, cut to Slack's limits (``limits.py``).
Pure, apart from ``permalink``'s cached call."""
from __future__ import annotations

import logging
import threading
from datetime import datetime

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.limits import CONTEXT_TEXT, FIELD_TEXT, HEADER_TEXT, SECTION_TEXT, fit
from bot.text import HIDDEN_CHARACTERS

log = logging.getLogger(__name__)

PERMALINKS_KEPT = 5000  # a process remembers this many card permalinks, then starts again


def escape(text: str) -> str:
    """Slack mrkdwn control characters, so people's posts cannot ping or link; invisible and
    direction-changing characters shown as their code points, so nothing hides on a card."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return HIDDEN_CHARACTERS.sub(lambda m: f"[U+{ord(m.group()):04X}]", escaped)


def quote(text: str) -> str:
    if not text:  # deleted by its author, or past the retention window (`conversant purge`)
        return "> _(text no longer stored)_"
    return fit("\n".join("> " + line for line in (escape(text).splitlines() or [""])), SECTION_TEXT)


def slack_time(moment: datetime, token: str = "{date_short_pretty} at {time}") -> str:
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{token}|{moment.strftime('%Y-%m-%d %H:%M UTC')}>"


def user(user_id: str) -> str:
    return f"<@{user_id}>"


def mention(slack_id: str) -> str:
    """How Slack pings a user (``<@U…>``) or a user group (``<!subteam^S…>``)."""
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def mention_list(ids) -> str:
    return " ".join(mention(i) for i in ids)


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>"


def link(url: str, text: str) -> str:
    return f"<{url}|{text}>"


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


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT)}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text, CONTEXT_TEXT)}]}


def header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": fit(text, HEADER_TEXT)}}


def field(text: str) -> dict:
    """One of a section's ``fields``."""
    return {"type": "mrkdwn", "text": fit(text, FIELD_TEXT)}


def slack_error_code(error: Exception) -> str:
    """Slack's error code (``not_in_channel``), else the exception's type; never a token or URL."""
    response = getattr(error, "response", None)
    if isinstance(error, SlackApiError) and response is not None:
        return str(response.get("error", "unknown_error"))
    return type(error).__name__


_permalinks: dict[tuple[str, str, str], str] = {}
_permalinks_lock = threading.Lock()


def permalink(client, channel_id: str | None, ts: str | None) -> str | None:
    """A link to a Slack message (``chat.getPermalink``), cached: a message's permalink never changes."""
    if client is None or not channel_id or not ts:
        return None
    key = (str(getattr(client, "base_url", "")), channel_id, ts)
    with _permalinks_lock:
        if key in _permalinks:
            return _permalinks[key]
    try:
        found = client.chat_getPermalink(channel=channel_id, message_ts=ts)["permalink"]
    except (SlackClientError, OSError, KeyError) as error:
        log.warning("no permalink for %s/%s: %s", channel_id, ts, slack_error_code(error))
        return None
    with _permalinks_lock:
        if len(_permalinks) >= PERMALINKS_KEPT:
            _permalinks.clear()
        _permalinks[key] = found
    return found
