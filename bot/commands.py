"""The `/conversant` slash command's answers."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.models import Conversation, PlatformStatus, State
from bot.services import Services

HELP = (
    "*Conversant* keeps the brand in the conversation.\n"
    "• `/conversant status`: what is waiting and how each platform is doing\n"
    "• `/conversant help`: this message\n"
    "Cards arrive in <#{channel}>; use their buttons to approve, edit or dismiss a reply."
)


def slash_command_reply(services: Services, text: str) -> str:
    word = (text or "").strip().split(" ")[0].lower()
    if word == "status":
        return status_text(services)
    return HELP.format(channel=services.settings.slack_review_channel)


def status_text(services: Services) -> str:
    with services.db.session() as session:
        counts = dict(session.execute(select(Conversation.state, func.count()).group_by(Conversation.state)).all())
        statuses = session.scalars(select(PlatformStatus)).all()
    waiting = counts.get(State.CARDED.value, 0) + counts.get(State.POST_FAILED.value, 0)
    in_progress = sum(counts.get(s.value, 0) for s in (State.NEW, State.DRAFTING, State.DRAFTED, State.DRAFT_FAILED))
    lines = [
        f"*{waiting}* waiting for review, *{in_progress}* being drafted, "
        f"*{counts.get(State.REPLIED.value, 0)}* replied, *{counts.get(State.DISMISSED.value, 0)}* dismissed in total."
    ]
    by_name = {s.platform: s for s in statuses}
    for name, platform in services.platforms.items():
        status = by_name.get(name)
        if status is None:
            lines.append(f"• {platform.label}: not polled yet")
        elif status.ok:
            lines.append(f"• {platform.label}: working")
        else:
            lines.append(f"• {platform.label}: failing: {status.error}")
    return "\n".join(lines)
