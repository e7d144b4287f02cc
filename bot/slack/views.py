"""Pure texts and views: the Home tab, the digest, nudges and escalations, the queue message,
and what a person is told after a click. Figures in, Slack text and Block Kit out.

Links to cards come from a ``link(channel, ts)`` function (``chat.getPermalink``, cached),
so these stay pure and testable without Slack.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot import business_hours
from bot.backlog import URGENCIES, CardQueue
from bot.examples import DailyQuality
from bot.knowledge.store import Status as KnowledgeStatus
from bot.models import Conversation, DismissReason
from bot.platforms.formats import label
from bot.slack.format import context as _context
from bot.slack.format import escape, field, header, human_duration, human_minutes, mention_list, slack_time, user
from bot.slack.format import section as _section
from bot.slack.limits import MESSAGE_BLOCKS, MODAL_BLOCKS, SECTION_TEXT, fit_blocks, fit_lines
from bot.stats import COMPARE_DAYS, Digest, Figures, RefusedCards, Today

Link = Callable[[str | None, str | None], str | None]
GROUP_FROM = 3  # this many cards due at once get one message listing them
LISTED = 15  # a grouped message lists at most this many, then "and N more"
ESCALATE_AT = 3  # times the review SLA
MISSED_LISTED = 10  # then "and N more"
QUEUE_SHOWN = 20  # Home shows at most this many waiting cards, then "and N more"


def no_link(channel: str | None, ts: str | None) -> str | None:
    return None


def decision_text(message: str, who: str | None) -> str:
    """What a person is told when their click changed nothing (``{who}`` names someone)."""
    return message.replace("{who}", user(who)) if who else message


# -- figures ----------------------------------------------------------------------------------


def figures_summary(f: Figures) -> str:
    rate = f"{f.response_rate:.0%}" if f.response_rate is not None else "n/a"
    median = f.times["all"].median if "all" in f.times else None
    parts = [
        f"*{f.received}* received", f"*{f.replied}* replied", f"*{sum(f.dismissed.values())}* dismissed",
        f"*{f.skipped}* skipped by triage", f"*{f.answered_elsewhere}* answered elsewhere",
        f"*{len(f.missed)}* missed", f"response rate *{rate}*",
    ]
    if median is not None:
        parts.append(f"median first reply *{human_duration(median)}*")
    return " · ".join(parts)


def quality_line(q: DailyQuality) -> str:
    """One line for Home and the digest: how often the team sent the model's draft as it was."""
    if not q.sent:
        return "Drafts: none sent yet." if not q.written_without_draft else f"Drafts: none; {q.written_without_draft} replies written by hand."
    line = (f"Drafts: {q.sent_unedited} of {q.sent} sent unedited ({q.acceptance_rate:.0%}), "
            f"mean edit distance {q.mean_edit_distance:.0f} characters.")
    return line + (f" {q.written_without_draft} more written by hand." if q.written_without_draft else "")


# -- the queue of cards -----------------------------------------------------------------------


def queue_counts(q: CardQueue) -> str:
    parts = [f"{q.by_urgency[u]:,} {u}" for u in (*URGENCIES, "unknown") if q.by_urgency.get(u)]
    text = f"{q.ready:,} ready" + (f" ({', '.join(parts)} urgency)" if parts else "")
    return text + (f", {q.drafting:,} still being drafted" if q.drafting else "")


def queue_status_text(q: CardQueue) -> str:
    """The status message in the review channel, while the burst lasts."""
    oldest = f" The longest waiting was posted <!date^{int(q.oldest.timestamp())}^{{date_short_pretty}} {{time}}|{q.oldest:%Y-%m-%d %H:%M} UTC>." if q.oldest else ""
    return (f":hourglass_flowing_sand: *{q.waiting:,} conversations are queued for a card* ({queue_counts(q)}). "
            f"Slack takes about {q.per_minute} cards a minute here, so the most urgent are carded first; "
            f"none is dropped, and the rest follow in about {q.minutes_to_clear()} min.{oldest} "
            "This message updates as the queue drains.")


def queue_drained_text(q: CardQueue) -> str:
    left = f" {q.waiting:,} still waiting, all carded within a minute." if q.waiting else ""
    return f":white_check_mark: *The queue of cards has drained.* Every queued conversation has its card.{left}"


def queue_home_text(q: CardQueue) -> str:
    """One line for the Home tab."""
    if not q.waiting:
        return ":white_check_mark: No conversation is waiting for a card."
    if not q.queued:
        return f"{q.waiting:,} waiting for a card ({queue_counts(q)}); all carded within a minute."
    return (f":hourglass_flowing_sand: *Burst:* {q.waiting:,} queued for a card ({queue_counts(q)}); "
            f"most urgent first, about {q.minutes_to_clear()} min to clear at {q.per_minute} cards a minute.")


def refused_home_text(r: RefusedCards) -> str:
    """How many cards Slack refused, for the Home tab: each is tried again as a short card."""
    reasons = ", ".join(escape(reason) + (f" ×{n}" if n > 1 else "") for reason, n in sorted(r.reasons.items(), key=lambda kv: -kv[1]))
    parts = [f"{r.shortened:,} shown as a short card" if r.shortened else "", f"{r.retrying:,} to be tried again shortly" if r.retrying else ""]
    return (f":warning: *Slack refused {r.total:,} card{'s' if r.total != 1 else ''}* ({reasons}): "
            f"{' and '.join(p for p in parts if p)}. A short card has the author, the link to the post and, "
            "where Slack takes them, the buttons; the other cards are not held up.")


def queue_message(text: str) -> dict:
    return {"text": text, "blocks": [_section(text)]}


# -- the Home tab -----------------------------------------------------------------------------


def home_view(settings, platform_labels: list[str], today: Today, *, now: datetime, arrive: dict[str, str] | None = None,
              link: Link = no_link, knowledge: KnowledgeStatus | None = None) -> dict:
    """The Home tab; ``arrive`` says per platform (or account, by its label) how its mentions arrive (streamed or polled)."""
    blocks: list[dict] = [
        header("Conversant"),
        _section(_status_line(today.paused)),
        {"type": "divider"},
        _section(f"*Waiting for review* ({len(today.waiting)})"),
    ]
    blocks.extend(_queue_blocks(today.waiting, now, link))
    blocks.append(_context(queue_home_text(today.queue)))  # what is still on its way to a card
    if today.refused.total:
        blocks.append(_context(refused_home_text(today.refused)))
    blocks += [
        {"type": "divider"},
        _section("*Today so far*\n" + figures_summary(today.figures) + "\n" + quality_line(today.quality)),
        {"type": "divider"},
        _section("*Configuration in force*\n" + _configuration(settings, platform_labels, arrive or {}, today.paused, knowledge)),
        _context("Use `/conversant status | pause | resume | digest | help` in any channel."),
    ]
    return {"type": "home", "blocks": fit_blocks(blocks, MODAL_BLOCKS)}


def _status_line(pause) -> str:
    if pause:
        return f":double_vertical_bar: *Paused* by <@{pause.by}> {slack_time(pause.at)}: no polling, no nudges. Cards already posted still work. `/conversant resume` to start again."
    return ":large_green_circle: *Running*: polling the platforms and nudging on-call about waiting cards."


def _queue_blocks(waiting: list[Conversation], now: datetime, link: Link) -> list[dict]:
    if not waiting:
        return [_context(":white_check_mark: Nothing is waiting. Every card has been handled.")]
    lines = []
    for c in waiting[:QUEUE_SHOWN]:
        target = link(c.slack_channel, c.slack_ts) or c.url
        who = f"<@{c.claimed_by}> is on it" if c.claimed_by else "nobody on it"
        failed = " · :x: posting failed" if c.state == "post_failed" else ""
        lines.append(f"• <{target}|@{escape(c.author_handle)} on {label(c.platform)}> · waiting {human_duration((now - c.posted_at).total_seconds())} · {who}{failed}")
    # long links (a permalink, a 1,000-character URL) fit fewer lines
    return [_section(fit_lines(lines, SECTION_TEXT, hidden=len(waiting) - len(lines)))]


def _configuration(s, platform_labels: list[str], arrive: dict[str, str], pause, knowledge: KnowledgeStatus | None = None) -> str:
    oncall = mention_list(s.slack_oncall) or "nobody (set SLACK_ONCALL)"
    return "\n".join([
        f"• Platforms: {', '.join(platform_labels) or 'none enabled'}",
        *(f"• {name}: {line}" for name, line in arrive.items()),
        f"• Review SLA: {human_minutes(s.review_sla_minutes)}; nudges at most every {human_minutes(s.nudge_repeat_minutes)}; escalation at {ESCALATE_AT}× the SLA",
        f"• On call: {oncall}",
        f"• Business hours: {business_hours.describe(s.business_hours)} ({s.digest_timezone.key})",
        f"• Daily digest: {s.digest_time:%H:%M} {s.digest_timezone.key} in <#{s.digest_channel}>",
        f"• Review channel: <#{s.slack_review_channel}>",
        f"• State: {'paused' if pause else 'running'}",
        f"• Help articles: {_knowledge_line(knowledge)}",
    ])


def _knowledge_line(knowledge: KnowledgeStatus | None) -> str:
    if knowledge is None or not knowledge.articles:
        return "none imported, so drafts are not grounded in them (`conversant knowledge import PATH`)"
    return f"{knowledge.articles}, last imported {slack_time(knowledge.last_import)}" if knowledge.last_import else str(knowledge.articles)


# -- the digest -------------------------------------------------------------------------------


def digest_message(settings, digest: Digest, quality: DailyQuality, link: Link = no_link) -> dict:
    """The digest's Block Kit message; ``link`` gives a missed card's permalink."""
    f, prev = digest.figures, digest.previous
    tz = digest.timezone
    window = f"{f.start.astimezone(tz):%d %b %H:%M} – {f.end.astimezone(tz):%d %b %H:%M} ({tz.key})"
    blocks: list[dict] = [
        header(f"Conversant daily digest · {digest.local_date:%a %d %b %Y}"),
        _context(f"Mentions posted {window} · review SLA {human_minutes(settings.review_sla_minutes)}"),
    ]
    if digest.paused:
        blocks.append(_section(f":double_vertical_bar: *Conversant is paused* (by <@{digest.paused.by}> {slack_time(digest.paused.at)}): "
                               "no polling and no nudges. `/conversant resume` starts them again."))
    blocks.append({"type": "section", "fields": [field(f"*{name}*\n{value}") for name, value in _counts(f)]})
    blocks.append(_section(_rate_line(f, prev)))
    blocks.append(_section(_times_lines(f, prev, settings)))
    blocks.append(_context(quality_line(quality)))
    blocks.append({"type": "divider"})
    blocks.append(_section(_missed_text(settings, f, link)))
    blocks.append(_context("The chart: mentions received and answered per hour over the day, and the response rate over 14 days."))
    missed = len(f.missed)
    text = (f"Conversant digest: {f.received} received, {f.replied} replied, "
            + (f"{missed} missed" if missed else "nothing missed"))
    return {"text": text, "blocks": fit_blocks(blocks, MESSAGE_BLOCKS)}


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
        name = "All platforms" if key == "all" else label(key)
        line = f"• {name}: {human_duration(times.median)} · {human_duration(times.p90)}"
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


def _missed_text(settings, f: Figures, link: Link) -> str:
    sla = human_minutes(settings.review_sla_minutes)
    if not f.missed:
        if f.received == 0:
            return ":white_check_mark: *Nothing was missed.* No mentions arrived in these 24 hours."
        return f":white_check_mark: *Nothing was missed.* Every conversation that needed an answer got one or is still within the {sla} SLA."
    lines = [f"*Missed: {len(f.missed)}*, most urgent first (past the {sla} SLA with no answer):"]
    for m in f.missed[:MISSED_LISTED]:
        row = m.row
        card = link(row.slack_channel, row.slack_ts)
        card_link = f" (<{card}|card>)" if card else ""
        urgency = f" · {row.urgency} urgency" if row.urgency else ""
        lines.append(f"• <{row.url}|@{escape(row.author_handle)} on {label(row.platform)}>{card_link}{urgency}"
                     f" · waited {human_duration(m.waited)} · {m.reason.replace('{who}', user(row.claimed_by or ''))}")
    return fit_lines(lines, SECTION_TEXT, hidden=len(f.missed) - (len(lines) - 1))


# -- nudges and escalations -------------------------------------------------------------------


def _who(c: Conversation) -> str:
    return f"@{escape(c.author_handle)}'s {label(c.platform)} mention"


def nudge_text(c: Conversation, now: datetime, settings, oncall: tuple[str, ...] | None = None) -> str:
    """``oncall``: the route's on-call group (None: SLACK_ONCALL)."""
    age = human_duration((now - c.posted_at).total_seconds())
    sla = human_minutes(settings.review_sla_minutes)
    if c.claimed_by:
        return (f"<@{c.claimed_by}> :alarm_clock: You're on this one: {_who(c)} has waited {age}, past the {sla} review SLA. "
                "Approve or edit the reply, or dismiss it if it needs none.")
    ping = mention_list(settings.slack_oncall if oncall is None else oncall)
    lead = f"{ping} :alarm_clock:" if ping else ":alarm_clock:"
    return (f"{lead} {_who(c)} has waited {age}, past the {sla} review SLA. "
            "Approve, edit or dismiss it above, or click *I'm on it* so the team knows.")


def _card_line(c: Conversation, now: datetime, link: Link) -> str:
    target = link(c.slack_channel, c.slack_ts) or c.url
    who = f"<@{c.claimed_by}> is on it" if c.claimed_by else "nobody on it"
    return f"• <{target}|@{escape(c.author_handle)} on {label(c.platform)}> · waiting {human_duration((now - c.posted_at).total_seconds())} · {who}"


def _listed(cards: list[Conversation], now: datetime, link: Link) -> str:
    lines = [_card_line(c, now, link) for c in cards[:LISTED]]
    if len(cards) > LISTED:
        lines.append(f"…and {len(cards) - LISTED} more.")
    return "\n".join(lines)


def grouped_nudge_text(settings, cards: list[Conversation], now: datetime, link: Link = no_link,
                       oncall: tuple[str, ...] | None = None) -> str:
    ping = mention_list(settings.slack_oncall if oncall is None else oncall) if any(not c.claimed_by for c in cards) else ""
    lead = f"{ping} :alarm_clock:" if ping else ":alarm_clock:"
    head = f"{lead} {len(cards)} conversations are waiting past the {human_minutes(settings.review_sla_minutes)} review SLA, oldest first:"
    return head + "\n" + _listed(cards, now, link)


def escalation_text(settings, cards: list[Conversation], now: datetime, link: Link = no_link) -> str:
    sla = human_minutes(settings.review_sla_minutes)
    if len(cards) == 1:
        c = cards[0]
        age = human_duration((now - c.posted_at).total_seconds())
        found = link(c.slack_channel, c.slack_ts)
        card = f"<{found}|Open the card>" if found else "See the review channel"
        who = f"<@{c.claimed_by}> is on it" if c.claimed_by else "nobody is on it"
        return (f":rotating_light: *Escalation:* {_who(c)} has waited {age}, over {ESCALATE_AT}× the {sla} review SLA, "
                f"and is still unanswered ({who}). {card} · <{c.url}|the post>")
    return (f":rotating_light: *Escalation:* {len(cards)} conversations have waited over {ESCALATE_AT}× the {sla} review SLA "
            f"and are still unanswered, oldest first:\n" + _listed(cards, now, link))
