"""The `/conversant` slash command: status, pause, resume, digest, help.

``handle_command`` returns the private answer to ack with, and optionally work
to do after the ack (posting the digest takes longer than Slack's 3 seconds).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from bot.models import (
    Conversation,
    PlatformStatus,
    State,
    clear_pause,
    get_pause,
    set_pause,
    utcnow,
)
from bot.services import Services
from bot.slack import sync
from bot.slack.format import slack_time
from bot.slack.publish import CardPublishError

log = logging.getLogger(__name__)

HELP = (
    "*Conversant* keeps the brand in the conversation.\n"
    "• `/conversant status`: what is waiting and how each platform is doing\n"
    "• `/conversant pause`: stop polling and nudges (cards already posted still work)\n"
    "• `/conversant resume`: start polling and nudges again\n"
    "• `/conversant digest`: post the digest of the last 24 hours now\n"
    "• `/conversant help`: this message\n"
    "Cards arrive in <#{channel}>; use their buttons to approve, edit or dismiss a reply, "
    "*I'm on it* to take one, *Snooze nudges* to hold its reminders. The Home tab shows the queue."
)
NOT_ALLOWED = "Sorry, only the people in SLACK_APPROVERS can {what}. Nothing was changed."


@dataclass(frozen=True)
class CommandReply:
    text: str
    then: Callable[[], None] | None = None  # runs after the ack


def handle_command(services: Services, command: dict, *, allowed: Callable[[str], bool]) -> CommandReply:
    user = command.get("user_id", "")
    word = (command.get("text") or "").strip().split(" ")[0].lower()
    if word == "status":
        return CommandReply(status_text(services))
    if word in ("pause", "resume", "digest") and not allowed(user):
        what = "post the digest" if word == "digest" else f"{word} Conversant"
        return CommandReply(NOT_ALLOWED.format(what=what))
    if word == "pause":
        return pause(services, user)
    if word == "resume":
        return resume(services, user)
    if word == "digest":
        return digest_now(services, user, command.get("channel_id"))
    return CommandReply(HELP.format(channel=services.settings.slack_review_channel))


def pause(services: Services, user: str) -> CommandReply:
    now = utcnow()
    with services.db.session() as session:
        done = set_pause(session, user, now)
        current = get_pause(session)
    if not done:
        return CommandReply(f"Conversant is already paused (by <@{current.by}> {slack_time(current.at)}). `/conversant resume` starts it again.")
    log.info("paused by %s", user)
    return CommandReply(
        ":double_vertical_bar: Paused: no polling and no nudges until `/conversant resume`. Cards already posted still work.",
        then=lambda: _notice(services, f":double_vertical_bar: <@{user}> paused Conversant: no polling and no nudges until `/conversant resume`. Cards already posted still work."),
    )


def resume(services: Services, user: str) -> CommandReply:
    with services.db.session() as session:
        done = clear_pause(session)
    if not done:
        return CommandReply("Conversant is not paused; it is polling and nudging as usual.")
    log.info("resumed by %s", user)
    return CommandReply(
        ":arrow_forward: Resumed: polling and nudges start again with the next cycle.",
        then=lambda: _notice(services, f":arrow_forward: <@{user}> resumed Conversant: polling and nudges are back on."),
    )


def digest_now(services: Services, user: str, channel: str | None) -> CommandReply:
    from bot.jobs.digest import send_digest

    target = services.settings.digest_channel

    def send() -> None:
        try:
            send_digest(services)
        except CardPublishError as error:
            log.error("digest requested by %s not posted: %s", user, error)
            if channel:
                services.publisher.tell(channel, user, f"The digest could not be posted: {error}")

    return CommandReply(f"Posting the digest of the last 24 hours to <#{target}>…", then=send)


def _notice(services: Services, text: str) -> None:
    sync.notice(services, text)


def status_text(services: Services) -> str:
    with services.db.session() as session:
        counts = dict(session.execute(select(Conversation.state, func.count()).group_by(Conversation.state)).all())
        statuses = session.scalars(select(PlatformStatus)).all()
        paused = get_pause(session)
    waiting = counts.get(State.CARDED.value, 0) + counts.get(State.POST_FAILED.value, 0)
    in_progress = sum(counts.get(s.value, 0) for s in (State.NEW, State.DRAFTING, State.DRAFTED, State.DRAFT_FAILED))
    lines = []
    if paused:
        lines.append(f":double_vertical_bar: *Paused* by <@{paused.by}> {slack_time(paused.at)}: no polling, no nudges. `/conversant resume` starts them again.")
    lines.append(
        f"*{waiting}* waiting for review, *{in_progress}* being drafted, "
        f"*{counts.get(State.REPLIED.value, 0)}* replied, *{counts.get(State.DISMISSED.value, 0)}* dismissed in total."
    )
    from bot.streaming import ingest_lines

    by_name = {s.platform: s for s in statuses}
    arrive = ingest_lines(services, utcnow())
    brand = services.brand
    for account in brand.accounts:  # one line per account: each logs in and polls on its own
        status, label = by_name.get(account.id), brand.label(account)
        if status is None:
            line = f"• {label}: not polled yet"
        elif status.ok:
            line = f"• {label}: working"
        else:
            line = f"• {label}: failing: {status.error}"
        lines.append(f"{line} · {arrive[account.id]}" if account.id in arrive else line)
    return "\n".join(lines)
