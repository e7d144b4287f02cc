"""Use cases that span steps, in one place: decision → card sync → outbox → card sync → learning.

Slack handlers, the demo, bursts' bulk buttons and the CLI call these; none repeats the
sequence. Each returns what happened; a person who clicked (``user`` in ``channel``) is
told privately when their click changed nothing.
"""
from __future__ import annotations

import logging

from bot import bursts, decision, examples, outbox
from bot.decision import Decision
from bot.models import Burst, Conversation, Direction, DismissReason, SnoozeFor, State
from bot.redraft import RedraftResult
from bot.services import Services
from bot.slack import sync, views
from bot.slack.cards import CardFacts, dismiss_modal, edit_modal, private_modal, redraft_modal
from bot.slack.payloads import ButtonValue

log = logging.getLogger(__name__)


# -- one conversation -------------------------------------------------------------------------


def approve(services: Services, conversation_id: int, user: str, channel: str | None = None) -> Decision:
    return _decided(services, conversation_id, user, channel, decision.approve(services.db, services.rules, conversation_id, user))


def approve_edited(services: Services, conversation_id: int, user: str, text: str, channel: str | None = None) -> Decision:
    return _decided(services, conversation_id, user, channel, decision.approve_edited(services.db, services.rules, conversation_id, user, text))


def submit_edit(services: Services, conversation_id: int, user: str, text: str, channel: str | None = None) -> Decision | None:
    """The Edit modal was submitted; None when its text breaks the policy (the modal said so)."""
    if edit_problems(services, conversation_id, user, text):
        return None
    return approve_edited(services, conversation_id, user, text, channel)


def approve_private(services: Services, conversation_id: int, user: str, text: str, channel: str | None = None) -> Decision:
    """*Reply privately*: the message goes as a direct message, then a short public note says so."""
    return _decided(services, conversation_id, user, channel,
                    decision.approve_private(services.db, services.rules, conversation_id, user, text))


def submit_private(services: Services, conversation_id: int, user: str, text: str, channel: str | None = None) -> Decision | None:
    """The Reply privately modal was submitted; None when its text breaks the policy (the modal said so)."""
    if edit_problems(services, conversation_id, user, text, private=True):
        return None
    return approve_private(services, conversation_id, user, text, channel)


def edit_problems(services: Services, conversation_id: int, user: str, text: str, *, private: bool = False) -> list[str]:
    """How a text ``user`` wrote (signed with their sign-off) breaks the output policy; empty when it may be sent."""
    conversation = _load(services, conversation_id)
    problem = decision.edit_problem(services.rules, conversation, user, text, private=private) if conversation else None
    return [problem] if problem else []


def dismiss(services: Services, conversation_id: int, user: str, reason: DismissReason, channel: str | None = None) -> Decision:
    return _decided(services, conversation_id, user, channel, decision.dismiss(services.db, conversation_id, user, reason))


def retry(services: Services, conversation_id: int, user: str, channel: str | None = None) -> Decision:
    return _decided(services, conversation_id, user, channel, decision.retry(services.db, conversation_id, user))


def claim(services: Services, conversation_id: int, user: str, channel: str | None = None) -> Decision:
    return _settled(services, conversation_id, user, channel, decision.claim(services.db, conversation_id, user))


def snooze(services: Services, conversation_id: int, user: str, choice: SnoozeFor, channel: str | None = None) -> Decision:
    return _settled(services, conversation_id, user, channel, decision.snooze(services.db, services.settings, conversation_id, user, choice))


def reply_as(services: Services, conversation_id: int, user: str, account_id: str, channel: str | None = None) -> Decision:
    """The card's "Reply as" menu: another of the brand's accounts on the platform will reply."""
    return _settled(services, conversation_id, user, channel, decision.reply_as(services.db, services.rules, conversation_id, user, account_id))


def redraft(services: Services, conversation_id: int, user: str, direction: Direction, custom: str = "",
            channel: str | None = None) -> RedraftResult:
    result = services.redrafter.redraft(conversation_id, user, direction, custom)
    return _redrafted(services, conversation_id, user, channel, result)


def _redrafted(services: Services, conversation_id: int, user: str, channel: str | None,
               result: RedraftResult) -> RedraftResult:
    log.info("conversation %s: redraft by %s: %s", conversation_id, user, "done" if result.done else result.message)
    if result.done:
        sync.refresh_card(services, conversation_id)
    else:
        sync.tell(services, channel, user, result.message)
    return result


def redraft_with_article(services: Services, conversation_id: int, user: str, article_id: int,
                         channel: str | None = None) -> RedraftResult:
    result = services.redrafter.with_article(conversation_id, user, article_id)
    return _redrafted(services, conversation_id, user, channel, result)


def send(services: Services, conversation_id: int) -> State | None:
    """Post one approved reply, show the outcome on its card, and keep it as an example."""
    state = outbox.send(services.db, services.rules, conversation_id)
    if state is not None:
        _replied(services, conversation_id, state)
    return state


def _decided(services: Services, conversation_id: int, user: str, channel: str | None, result: Decision) -> Decision:
    """After a decision: say why nothing changed, or show it and post."""
    log.info("conversation %s: %s by %s", conversation_id, result.outcome.value, user)
    if not result.done:
        sync.tell(services, channel, user, views.decision_text(result.message, result.who))
    sync.refresh_card(services, conversation_id)
    if result.done:
        send(services, conversation_id)
    return result


def _settled(services: Services, conversation_id: int, user: str, channel: str | None, result: Decision) -> Decision:
    """After a claim or snooze: say why nothing changed, or show the change on the card."""
    if not result.done:
        sync.tell(services, channel, user, views.decision_text(result.message, result.who))
    sync.refresh_card(services, conversation_id)
    return result


def _replied(services: Services, conversation_id: int, state: State, *, card: bool = True) -> None:
    if card:
        sync.refresh_card(services, conversation_id)
    if state is State.REPLIED:  # after the card, so an embedding call never delays it
        examples.record(services.db, services.drafter, _load(services, conversation_id))


# -- forms: what a button opens ---------------------------------------------------------------


def _form_for(services: Services, conversation_id: int, user: str, channel: str | None) -> Conversation | None:
    """The conversation while its card is open; else the person is told and the card rewritten."""
    conversation = decision.is_open(services.db, conversation_id)
    if conversation is None:
        result = decision.already_handled(services.db, conversation_id)
        sync.tell(services, channel, user, views.decision_text(result.message, result.who))
        sync.refresh_card(services, conversation_id)
    return conversation


def edit_form(services: Services, conversation_id: int, user: str, channel: str | None = None) -> dict | None:
    conversation = _form_for(services, conversation_id, user, channel)
    if conversation is None:
        return None
    rules = services.rules.reply(conversation)
    initial = conversation.reply_text or conversation.draft_text or services.rules.compose(conversation, "")
    return edit_modal(conversation, CardFacts(rules.platform_label, rules.limit, None), initial)


def private_form(services: Services, conversation_id: int, user: str, channel: str | None = None) -> dict | None:
    """The private message in a text box, with the public note that follows it; or why the platform has none."""
    conversation = _form_for(services, conversation_id, user, channel)
    if conversation is None:
        return None
    platform_format = services.rules.format(conversation.platform)
    if platform_format.private is None:
        sync.tell(services, channel, user, platform_format.no_private or f"Conversant can't reply privately on {platform_format.label}.")
        return None
    initial = conversation.reply_text or conversation.draft_text or ""
    notice = services.rules.signed(platform_format.compose(platform_format.private.notice, conversation.author_handle), user)
    return private_modal(conversation, platform_format.private, initial, notice)


def dismiss_form(services: Services, conversation_id: int, user: str, channel: str | None = None) -> dict | None:
    conversation = _form_for(services, conversation_id, user, channel)
    return dismiss_modal(conversation) if conversation else None


def redraft_form(services: Services, conversation_id: int, user: str, channel: str | None = None) -> dict | None:
    conversation = _form_for(services, conversation_id, user, channel)
    return redraft_modal(conversation) if conversation else None


# -- bursts -----------------------------------------------------------------------------------


def approve_all(services: Services, burst_id: int, user: str, channel: str | None = None) -> bursts.BulkResult:
    skipped, approved = 0, []
    for conversation in bursts.waiting_members(services.db, burst_id):
        if bursts.ready(conversation) and decision.approve(services.db, services.rules, conversation.id, user).done:
            approved.append(conversation.id)
        elif conversation.state == State.CARDED.value:
            skipped += 1
    sync.refresh_burst(services, burst_id)  # once, not once per reply: it is one Slack message
    for conversation_id in approved:
        state = outbox.send(services.db, services.rules, conversation_id)
        if state is not None:
            _replied(services, conversation_id, state, card=False)
    sync.refresh_burst(services, burst_id)
    result = bursts.BulkResult(len(approved), skipped)
    log.info("burst %s: approve all by %s: %d approved, %d need a person", burst_id, user, result.done, result.skipped)
    if result.message:
        sync.tell(services, channel, user, result.message)
    return result


def dismiss_all(services: Services, burst_id: int, user: str, reason: DismissReason = DismissReason.NO_REPLY_NEEDED,
                channel: str | None = None) -> bursts.BulkResult:
    members = bursts.waiting_members(services.db, burst_id)
    done = sum(decision.dismiss(services.db, c.id, user, reason).done for c in members if c.state == State.CARDED.value)
    sync.refresh_burst(services, burst_id)
    return bursts.BulkResult(done, 0)


def open_each(services: Services, burst_id: int, user: str, channel: str | None = None) -> int:
    return sync.open_burst(services, burst_id, user)


# -- what the worker settles ------------------------------------------------------------------


def send_approved(services: Services) -> int:
    """Send approvals left behind (a web process that died after the click, a rate limit)."""
    return sum(send(services, cid) is State.REPLIED for cid in outbox.approved_ids(services.db))


def reconcile(services: Services) -> int:
    """Posts of unknown outcome: settled from the platform's thread, posted again when it has no reply."""
    settled = outbox.reconcile(services.db, services.brand)
    for conversation_id, state in settled.items():
        if state is State.APPROVED:
            send(services, conversation_id)
        else:
            _replied(services, conversation_id, state)
    return len(settled)


def recheck_open(services: Services) -> int:
    """Waiting cards whose mention was meanwhile deleted or answered natively are closed."""
    changed = outbox.recheck_open(services.db, services.brand)
    sync.refresh_cards(services, changed)
    return len(changed)


def belongs_to_message(services: Services, value: ButtonValue, channel: str | None, message_ts: str | None) -> bool:
    """A button's value names the card it sits on: a click whose value names another card
    (a crafted request, or a value copied between messages) is refused."""
    with services.db.session() as session:
        row = session.get(Burst, value.burst) if value.burst is not None else session.get(Conversation, value.conversation)
    if row is None or not row.slack_ts:
        return True  # nothing on Slack to compare with; the flow says it no longer exists
    return row.slack_ts == message_ts and (channel is None or row.slack_channel in (None, channel))


def card_channel(services: Services, conversation_id: int) -> str | None:
    conversation = _load(services, conversation_id)
    return conversation.slack_channel if conversation else None


def _load(services: Services, conversation_id: int) -> Conversation | None:
    with services.db.session() as session:
        return session.get(Conversation, conversation_id)
