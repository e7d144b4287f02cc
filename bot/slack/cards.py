"""Block Kit for review cards, burst cards and modals. Pure functions: state in, dicts out.

Only ``slack/sync.py`` sends these to Slack; the demo prints them with ``as_text``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge.grounding import alternatives, based_on
from bot.platforms.formats import PrivateChannel
from bot.models import RECONCILE_AFTER, UNKNOWN_OUTCOME, Conversation, Direction, DismissReason, SnoozeFor, State
from bot.slack.format import context as _context
from bot.slack.format import escape, quote, slack_time
from bot.slack.format import section as _section
from bot.slack.limits import (
    BUTTON_TEXT,
    INPUT_LABEL,
    INPUT_MAX_LENGTH,
    MESSAGE_BLOCKS,
    MODAL_TITLE,
    OPTION_TEXT,
    PLACEHOLDER,
    fit,
    fit_blocks,
    units,
)
from bot.slack.payloads import (
    PRIVATE_BLOCK,
    PRIVATE_INPUT,
    REASON_BLOCK,
    REASON_INPUT,
    REDRAFT_BLOCK,
    REDRAFT_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    ActionId,
    ModalId,
    burst_value,
    conversation_value,
)
from bot.threads import ThreadSummary


@dataclass(frozen=True)
class CardFacts:
    """What a card needs beyond the row: the platform's name and how it counts length."""

    platform_label: str
    limit: int
    draft_length: int | None
    thread: ThreadSummary | None = None  # on the first card of a conversation with later turns
    private: str | None = None  # how the platform carries a private reply ("a Bluesky chat message"); None: it has none
    no_private: str | None = None  # why it has none, when someone would ask (X)
    signoff_note: str | None = None  # the draft fits, but not with an approver's sign-off
    replying_as: str | None = None  # "@AcmeSupport", when the brand has several accounts on the platform
    reply_as_options: tuple[tuple[str, str], ...] = ()  # (account id, label): the others that could reply


def review_card(conversation: Conversation, facts: CardFacts) -> dict:
    """The card's ``text`` (notification fallback) and ``blocks`` for its current state."""
    c = conversation
    if c.card_error:  # Slack refused the full card: it stays short from then on
        return short_card(c, facts, buttons=c.card_failures < 2)
    blocks: list[dict] = []
    if facts.thread:
        latest = STATE_WORDS.get(facts.thread.latest_state, facts.thread.latest_state.replace("_", " "))
        blocks.append(_context(f":speech_balloon: Conversation with @{escape(c.author_handle)} · *{facts.thread.turns} turns* · latest: {latest} (see the thread)"))
    elif c.turn and c.turn > 1:
        blocks.append(_context(f":speech_balloon: Turn {c.turn} of this conversation"))
    blocks.append(_section(_who_line(c, facts)))
    if c.parent_text:
        label = "Quoting" if c.reason == "quote" else "In reply to"
        blocks.append(_context(f"{label}:\n{quote(c.parent_text)}"))
    blocks.append(_section(quote(c.text)))
    blocks.append(_context(f"<{c.url}|Open the post on {facts.platform_label}>" + _triage_phrase(c) + _drafted_by(c)))
    blocks.extend(_draft_blocks(c, facts))
    blocks.extend(_private_blocks(c, facts))
    if facts.replying_as:
        blocks.append(_context(f"{'Replied' if c.state == State.REPLIED.value else 'Replying'} as *{escape(facts.replying_as)}*"))
    blocks.extend(_outcome_blocks(c, facts))
    blocks.extend(_attention_blocks(c))
    actions = _buttons(c, facts) + _reply_as_menu(c, facts)
    if actions:
        blocks.append({"type": "actions", "block_id": f"conversation_{c.id}", "elements": actions})
    return {"text": f"{facts.platform_label} mention from @{escape(c.author_handle)}: {escape(c.text[:150])}",
            "blocks": fit_blocks(blocks, MESSAGE_BLOCKS)}


CARD_EVENT, BURST_CARD_EVENT = "conversant_card", "conversant_burst_card"


def card_metadata(conversation_id: int) -> dict:
    """Slack message metadata on a card: which conversation it shows, so a card whose post got
    no answer can be found in the channel's history instead of being posted twice."""
    return {"event_type": CARD_EVENT, "event_payload": {"conversation_id": conversation_id}}


def burst_card_metadata(burst_id: int) -> dict:
    return {"event_type": BURST_CARD_EVENT, "event_payload": {"burst_id": burst_id}}


def short_card(c: Conversation, facts: CardFacts, *, buttons: bool) -> dict:
    """The card for a conversation whose full card Slack refused: who, where, a link to the post,
    what happened to it, and (unless Slack refused those too) the buttons. No draft is shown, so
    no Approve: *Edit* shows the draft before it is posted."""
    blocks = [
        _section(_who_line(c, facts)),
        _context(f"<{c.url}|Open the post on {facts.platform_label}> to read it. Slack refused the full card "
                 f"({escape(c.card_error or 'unknown reason')}), so this one is short."),
        *_outcome_blocks(c, facts),
    ]
    if buttons:
        blocks.extend(_attention_blocks(c))
        actions = [b for b in _buttons(c, facts) if b.get("action_id") not in (ActionId.APPROVE.value, ActionId.REPLY_PRIVATELY.value)]
        if actions:
            blocks.append({"type": "actions", "block_id": f"conversation_{c.id}", "elements": actions})
    return {"text": f"{facts.platform_label} mention from @{escape(c.author_handle)} (short card)", "blocks": blocks}


def _who_line(c: Conversation, facts: CardFacts) -> str:
    who = f"*{escape(c.author_name)}* (@{escape(c.author_handle)})" if c.author_name else f"*@{escape(c.author_handle)}*"
    return f"{who} {_reason_phrase(c.reason)} on *{facts.platform_label}* · {slack_time(c.posted_at, '{ago}')}"


STATE_WORDS = {
    "new": "being drafted", "drafting": "being drafted", "drafted": "being drafted", "draft_failed": "being drafted",
    "carded": "waiting for review", "approved": "posting", "posting": "posting", "replied": "replied",
    "post_failed": "posting failed", "dismissed": "dismissed", "answered_elsewhere": "answered on the platform",
    "deleted": "deleted by the author", "skipped": "no reply needed",
}


def _reason_phrase(reason: str) -> str:
    return {
        "mention": "mentioned the brand",
        "reply": "replied to the brand",
        "quote": "quoted the brand",
        "keyword": "talked about the brand",
    }.get(reason, "mentioned the brand")


def _triage_phrase(c: Conversation) -> str:
    parts = [p for p in (c.category, c.sentiment and f"{c.sentiment} sentiment", c.urgency and f"{c.urgency} urgency") if p]
    return " · " + " · ".join(parts) if parts else ""


def _drafted_by(c: Conversation) -> str:
    return f" · drafted by {escape(c.draft_model)}" if c.draft_text and c.draft_model else ""


def _draft_blocks(c: Conversation, facts: CardFacts) -> list[dict]:
    if c.reply_private and c.reply_text and (c.state in (State.REPLIED.value, State.APPROVED.value, State.POSTING.value) or c.private_sent_at):
        return [_section(f"*Private message{' (edited)' if c.reply_edited else ''}:*\n{quote(c.reply_text)}"),
                _context(f"Public note: {escape(c.notice_text or '')}")]
    if c.state in (State.REPLIED.value, State.APPROVED.value, State.POSTING.value) and c.reply_text:
        return [_section(f"*Reply{' (edited)' if c.reply_edited else ''}:*\n{quote(c.reply_text)}")]
    if c.draft_text:
        blocks = [_section(f"*Draft* ({facts.draft_length}/{facts.limit}):\n{quote(c.draft_text)}")]
        if blocks[0]["text"]["text"].endswith("…") and _is_open(c):  # Slack shows 3,000 characters; Reddit takes 10,000
            blocks.append(_context(f":scissors: The card shows the start of the draft; all {len(c.draft_text):,} "
                                   "characters of it are what gets posted."))
        if c.draft_stale and _is_open(c):
            blocks.append(_section(":hourglass: *A newer message arrived in this thread*, so this draft is out of date and "
                                   "can't be approved as it stands. The newest turn has a fresh draft; *Edit* or *Dismiss* this one."))
        elif c.policy_problems and _is_open(c):
            problems = "\n".join(f"• {escape(p)}" for p in c.policy_problems)
            blocks.append(_section(f":warning: *This draft can't be approved as written:*\n{problems}\nUse *Edit* to fix it."))
        elif facts.signoff_note and _is_open(c):
            blocks.append(_section(f":pencil: {escape(facts.signoff_note)}"))
        return blocks + _source_blocks(c)
    if _is_open(c):
        reason = escape(c.draft_error or "No draft is available.")
        return [_section(f":pencil2: *No draft available.* {reason}\nUse *Edit* to write the reply.")]
    return []


def _private_blocks(c: Conversation, facts: CardFacts) -> list[dict]:
    """The suggestion to answer privately, and where the platform has no private replies, why."""
    if not c.private_hint or c.state != State.CARDED.value:
        return []
    why = " · ".join(escape(reason) for reason in c.private_hint)
    if facts.private:
        return [_section(f":lock: *Reply privately?* Why: {why}.\n*Reply privately* sends {escape(facts.private)} "
                         "and posts a short public note that you did.")]
    return [_section(f":lock: *A private reply is suggested* (why: {why}), but {escape(facts.no_private or 'this platform has none')}")]


def _source_blocks(c: Conversation) -> list[dict]:
    """The help article the draft is based on, and a menu to redraft with another one found."""
    if c.grounding is None:
        return []
    source = based_on(c.grounding)
    block = _section(f":books: Based on: <{_href(source['url'])}|{escape(source['title'])}>" if source else
                     ":books: No help article matched well, so the draft says the team will look into it.")
    others = alternatives(c.grounding)
    if others and c.state == State.CARDED.value:
        block["accessory"] = _menu(ActionId.REDRAFT_ARTICLE, "Use another article",
                                   [(a["title"], conversation_value(c.id, article=a["id"])) for a in others])
    return [block]


def _href(url: str) -> str:
    """A URL as Slack's <url|text> link syntax takes it: nothing in it may end the link."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def _unconfirmed(c: Conversation, facts: CardFacts) -> str:
    """A post of unknown outcome, said plainly: what happened, what happens next, and when."""
    reason = escape(c.post_error.removeprefix(UNKNOWN_OUTCOME))
    when = slack_time(c.posting_since + RECONCILE_AFTER, "{time}") if c.posting_since else "in a few minutes"
    return (f":warning: *{facts.platform_label} did not confirm the reply* ({reason}).\n"
            f"Conversant looks for it in the thread from {when} before trying again, so nothing will be posted twice.")


def _outcome_blocks(c: Conversation, facts: CardFacts) -> list[dict]:
    by = f"<@{c.decided_by}>" if c.decided_by else "someone"
    when = slack_time(c.decided_at) if c.decided_at else ""
    state = State(c.state)
    if state is State.POSTING and (c.post_error or "").startswith(UNKNOWN_OUTCOME):
        return [_section(_unconfirmed(c, facts))]
    if state in (State.APPROVED, State.POSTING):
        how = "sending privately on" if c.reply_private and not c.private_sent_at else "posting to"
        return [_context(f":hourglass_flowing_sand: Approved by {by} {when}; {how} {facts.platform_label}…")]
    if state is State.REPLIED:
        link = f"<{c.reply_url}|View the {'public note' if c.reply_private else 'reply'}>" if c.reply_url else "reply posted"
        sent = slack_time(c.replied_at) if c.replied_at else when
        actor = f"Approved by {by}" if c.decided_by else "Posted"
        privately = f" · sent privately {slack_time(c.private_sent_at)}" if c.reply_private and c.private_sent_at else ""
        return [_context(f":white_check_mark: {actor}{privately} · replied {sent} · {link}")]
    if state is State.POST_FAILED:
        error = escape(c.post_error or "unknown error")
        if c.reply_private and c.private_sent_at:
            return [_section(f":x: *The private message was sent, but the public note failed:* {error}\n*Retry* posts the note.")]
        if c.reply_private:
            return [_section(f":x: *Sending privately failed:* {error}\n*Retry* sends it again; *Edit* or *Reply privately* change the text first.")]
        return [_section(f":x: *Posting failed:* {error}\nNothing was posted. *Retry* tries again; *Edit* changes the text first.")]
    if state is State.DISMISSED:
        reason = DismissReason(c.dismiss_reason).label.lower() if c.dismiss_reason else "no reason given"
        return [_context(f":no_entry_sign: Dismissed by {by} {when} ({reason})")]
    if state is State.ANSWERED_ELSEWHERE:
        link = f": <{c.reply_url}|see the reply>" if c.reply_url else ""
        return [_context(f":leftwards_arrow_with_hook: Already answered on {facts.platform_label}{link}. Nothing to do.")]
    if state is State.DELETED:
        return [_context(f":wastebasket: Deleted by the author on {facts.platform_label}. Nothing will be posted.")]
    return []


def _attention_blocks(c: Conversation) -> list[dict]:
    """Who is on a waiting card (with *I'm on it*), and its nudges (with *Snooze*)."""
    if c.state not in (State.CARDED.value, State.POST_FAILED.value):
        return []
    if c.claimed_by:
        since = f" since {slack_time(c.claimed_at, '{time}')}" if c.claimed_at else ""
        who = _context(f":raising_hand: <@{c.claimed_by}> is on it{since}; nudges go to them only.")
    else:
        who = _section(":bust_in_silhouette: Nobody is on this yet.")
        who["accessory"] = _button("I'm on it", ActionId.CLAIM, conversation_value(c.id))
    if c.snoozed_until:
        by = f" by <@{c.snoozed_by}>" if c.snoozed_by else ""
        nudges = _section(f":zzz: Nudges snoozed{by} until {slack_time(c.snoozed_until)}.")
    else:
        nudges = _section(":bell: On-call is nudged when this waits too long.")
    nudges["accessory"] = _snooze_menu(c.id)
    return [who, nudges]


def _is_open(c: Conversation) -> bool:
    return c.state in (State.CARDED.value, State.DRAFTED.value, State.DRAFT_FAILED.value, State.POST_FAILED.value)


def _buttons(c: Conversation, facts: CardFacts) -> list[dict]:
    if not _is_open(c):
        return []
    value = conversation_value(c.id)
    buttons = []
    if c.state == State.POST_FAILED.value:
        buttons.append(_button("Retry", ActionId.RETRY, value, style="primary"))
    elif c.draft_text and not c.policy_problems and not c.draft_stale:
        buttons.append(_button("Approve", ActionId.APPROVE, value, style="primary"))
    if facts.private and not c.private_sent_at and c.state in (State.CARDED.value, State.POST_FAILED.value):
        buttons.append(_button("Reply privately", ActionId.REPLY_PRIVATELY, value))
    if c.private_sent_at:  # the message went: only Retry (the public note) is left
        return buttons
    buttons.append(_button("Edit", ActionId.EDIT, value))
    buttons.append(_button("Dismiss", ActionId.DISMISS, value, style="danger"))
    if c.state == State.CARDED.value:
        buttons.append(_redraft_menu(c.id))
    return buttons


def _reply_as_menu(c: Conversation, facts: CardFacts) -> list[dict]:
    if not facts.reply_as_options or c.state not in (State.CARDED.value, State.POST_FAILED.value):
        return []
    return [_menu(ActionId.REPLY_AS, "Reply as…",
                  [(f"Reply as {label}", conversation_value(c.id, account=account)) for account, label in facts.reply_as_options])]


def _redraft_menu(conversation_id: int) -> dict:
    return _menu(ActionId.REDRAFT, "Redraft…", [(d.label, conversation_value(conversation_id, redraft=d)) for d in Direction])


def _snooze_menu(conversation_id: int) -> dict:
    return _menu(ActionId.SNOOZE, "Snooze nudges",
                 [(choice.label, conversation_value(conversation_id, snooze=choice)) for choice in SnoozeFor])


def _menu(action: ActionId, placeholder: str, options: list[tuple[str, str]]) -> dict:
    return {
        "type": "static_select",
        "action_id": action.value,
        "placeholder": {"type": "plain_text", "text": fit(placeholder, PLACEHOLDER)},
        "options": [{"text": {"type": "plain_text", "text": fit(label, OPTION_TEXT)}, "value": value} for label, value in options],
    }


def _button(label: str, action: ActionId, value: str, style: str | None = None) -> dict:
    button = {"type": "button", "text": {"type": "plain_text", "text": fit(label, BUTTON_TEXT)}, "action_id": action.value, "value": value}
    if style:
        button["style"] = style
    return button


def _modal(modal: ModalId, c: Conversation, title: str, submit: str, blocks: list[dict]) -> dict:
    return {
        "type": "modal",
        "callback_id": modal.value,
        "private_metadata": conversation_value(c.id),
        "title": {"type": "plain_text", "text": fit(title, MODAL_TITLE)},
        "submit": {"type": "plain_text", "text": fit(submit, MODAL_TITLE)},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def _input(block_id: str, label: str, element: dict) -> dict:
    return {"type": "input", "block_id": block_id, "label": {"type": "plain_text", "text": fit(label, INPUT_LABEL)}, "element": element}


def edit_modal(c: Conversation, facts: CardFacts, initial: str) -> dict:
    """The reply in a text box. Slack's box holds 3,000 characters, less than Reddit allows, so the
    label says which bound applies and a longer draft is cut with a note saying so. The platform's
    own limit (graphemes, X's weights) is checked when the modal is submitted."""
    box = INPUT_MAX_LENGTH
    blocks = [_context(f"Replying to @{escape(c.author_handle)} on {facts.platform_label}:\n{quote(c.text)}")]
    if units(initial) > box:
        blocks.append(_context(f":warning: The draft is {len(initial):,} characters; Slack's text box holds {box:,}, "
                               "so it was cut here. Write the reply to fit, or *Approve* the whole draft on the card."))
    at_most = f"at most {facts.limit:,} characters" if facts.limit <= box else f"at most {box:,} characters here"
    blocks.append(_input(REPLY_BLOCK, f"Reply ({at_most})", {
        "type": "plain_text_input", "action_id": REPLY_INPUT, "multiline": True, "max_length": box,
        "initial_value": fit(initial, box),
    }))
    return _modal(ModalId.EDIT, c, "Edit the reply", "Post reply", blocks)


def private_modal(c: Conversation, channel: PrivateChannel, initial: str, notice: str) -> dict:
    """The private message in a text box, and the public note that follows it once it is sent."""
    box = min(INPUT_MAX_LENGTH, channel.limit)
    blocks = [
        _context(f"Replying privately to @{escape(c.author_handle)}, as {escape(channel.label)}:\n{quote(c.text)}"),
        _input(PRIVATE_BLOCK, f"Private message (at most {channel.limit:,} characters)", {
            "type": "plain_text_input", "action_id": PRIVATE_INPUT, "multiline": True, "max_length": box,
            **({"initial_value": fit(initial, box)} if initial else {}),
        }),
        _context(f"Once it is sent, this public note is posted under their post:\n{quote(notice)}"),
    ]
    return _modal(ModalId.PRIVATE, c, "Reply privately", "Send privately", blocks)


def dismiss_modal(c: Conversation) -> dict:
    options = [
        {"text": {"type": "plain_text", "text": reason.label}, "value": reason.value} for reason in DismissReason
    ]
    return _modal(ModalId.DISMISS, c, "Dismiss", "Dismiss", [
        _section(f"Dismiss the mention from @{escape(c.author_handle)}? Nothing will be posted."),
        _input(REASON_BLOCK, "Why?", {"type": "radio_buttons", "action_id": REASON_INPUT, "options": options}),
    ])


EXAMPLES_ON_BURST_CARD = 3


def burst_card(burst_id: int, members: list[Conversation], *, ready: int, opened: bool) -> dict:
    """One card for many similar mentions: a few examples, the counts, and bulk actions."""
    waiting = [m for m in members if m.state in (State.CARDED.value, State.POST_FAILED.value)]
    counts = {}
    for m in members:
        word = STATE_WORDS.get(m.state, m.state)
        counts[word] = counts.get(word, 0) + 1
    blocks = [
        _section(f":rotating_light: *{len(members)} similar mentions* since {slack_time(members[0].posted_at, '{time}')}"),
    ]
    for m in members[:EXAMPLES_ON_BURST_CARD]:
        blocks.append(_context(f"*@{escape(m.author_handle)}* <{m.url}|on {m.platform}>:\n{quote(m.text)}"))
    if len(members) > EXAMPLES_ON_BURST_CARD:
        blocks.append(_context(f"…and {len(members) - EXAMPLES_ON_BURST_CARD} more."))
    sample = next((m for m in members if m.draft_text), None)
    if sample:
        blocks.append(_section(f"*Each gets a reply written for them*, for example to @{escape(sample.author_handle)}:\n{quote(sample.draft_text)}"))
    blocks.append(_context(" · ".join(f"{n} {word}" for word, n in counts.items())))
    if opened:
        blocks.append(_context(":thread: Opened one by one in this thread."))
    if waiting:
        value = burst_value(burst_id)
        elements = []
        if ready:
            elements.append(_button(f"Approve all ({ready})", ActionId.APPROVE_ALL, value, style="primary"))
        if not opened:
            elements.append(_button("Open one by one", ActionId.OPEN_EACH, value))
        elements.append(_button("Dismiss all", ActionId.DISMISS_ALL, value, style="danger"))
        blocks.append({"type": "actions", "block_id": f"burst_{burst_id}", "elements": elements})
    return {"text": f"{len(members)} similar mentions: {escape(members[0].text[:120])}", "blocks": fit_blocks(blocks, MESSAGE_BLOCKS)}


def redraft_modal(c: Conversation) -> dict:
    return _modal(ModalId.REDRAFT, c, "Redraft", "Redraft", [
        _context(f"Current draft:\n{quote(c.draft_text or '(none)')}"),
        _input(REDRAFT_BLOCK, "How should the new draft differ?", {
            "type": "plain_text_input", "action_id": REDRAFT_INPUT, "max_length": 300,
            "placeholder": {"type": "plain_text", "text": "e.g. mention the status page and keep it to one line"},
        }),
    ])


def as_text(card: dict) -> str:
    """A plain-text rendering of a card, for the terminal demo."""
    lines = []
    for block in card["blocks"]:
        if block["type"] == "section":
            accessory = block.get("accessory")
            label = accessory and (accessory.get("text") or accessory.get("placeholder"))
            lines.append(block["text"]["text"] + (f"  [ {label['text']} ]" if label else ""))
        elif block["type"] == "context":
            lines.extend(e["text"] for e in block["elements"])
        elif block["type"] == "actions":
            lines.append("  ".join(f"[ {(e.get('text') or e['placeholder'])['text']} ]" for e in block["elements"]))
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", "\n".join(lines))
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"<@(\w+)>", r"@\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
