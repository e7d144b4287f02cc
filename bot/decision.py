"""What a person decides on a card: approve, approve an edited text, dismiss, retry, claim, snooze,
and which of the brand's accounts replies.

Each is one conditional update plus an audit record, so a double click, a
Slack retry or a second process changes nothing the second time. Posting is
not done here, nor showing the result: ``flows.py`` strings those together.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from bot import business_hours, policy, signoffs
from bot.config import Settings
from bot.db import Database
from bot.knowledge.grounding import offered_urls
from bot.models import OPEN_ON_SLACK, Conversation, DismissReason, SnoozeFor, State, audit, transition, utcnow
from bot.rulebook import Rulebook

OPEN_STATES = [s.value for s in OPEN_ON_SLACK]


class Outcome(enum.Enum):
    DONE = "done"
    NOT_FOUND = "not_found"
    ALREADY_HANDLED = "already_handled"
    BLOCKED = "blocked"  # the text breaks the output policy


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    message: str = ""  # for the person who clicked; ``{who}`` stands for the person named in ``who``
    who: str | None = None  # a Slack user ID

    @property
    def done(self) -> bool:
        return self.outcome is Outcome.DONE


def approve(db: Database, rules: Rulebook, conversation_id: int, user: str) -> Decision:
    """Approve the draft as it stands (with the approver's sign-off, when they have one)."""
    conversation = _load(db, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    if not conversation.draft_text:
        return Decision(Outcome.BLOCKED, "There is no draft to approve; use Edit to write the reply.")
    if conversation.draft_stale:
        return Decision(Outcome.BLOCKED, "A newer message arrived in this thread, so this draft is out of date. "
                                         "Approve the newest turn's draft, or use Edit here.")
    text = rules.signed(conversation.draft_text, user)
    problem = _problem(text, conversation.draft_text, rules.draft(conversation, offered_urls(conversation.grounding)))
    if problem:
        return Decision(Outcome.BLOCKED, "This draft can't be approved as written: " + problem + " Use Edit to fix it.")
    return _approve(db, conversation, user, text, edited=False, from_states=(State.CARDED,))


def approve_edited(db: Database, rules: Rulebook, conversation_id: int, user: str, text: str) -> Decision:
    """Approve a text written or changed by a person (Edit)."""
    conversation = _load(db, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    problem = edit_problem(rules, conversation, user, text)
    if problem:
        return Decision(Outcome.BLOCKED, problem)
    signed = rules.signed(text.strip(), user)
    edited = text.strip() != (conversation.draft_text or "")
    return _approve(db, conversation, user, signed, edited=edited, from_states=(State.CARDED, State.POST_FAILED))


def edit_problem(rules: Rulebook, conversation: Conversation, user: str, text: str, *, private: bool = False) -> str | None:
    """How ``text``, signed by ``user``, breaks the output policy (of a private reply when ``private``); None when it may be sent."""
    text = private_text(rules, conversation, text) if private else text.strip()
    reply_rules = rules.private(conversation) if private else rules.reply(conversation)
    if reply_rules is None:
        return rules.format(conversation.platform).no_private or f"Conversant can't reply privately on {conversation.platform}."
    return _problem(rules.signed(text, user), text, reply_rules)


def _problem(signed: str, unsigned: str, reply_rules: policy.ReplyRules) -> str | None:
    """The policy's verdict on the signed text; a sign-off that makes it break the policy is named, never cut."""
    problems = policy.check(signed, reply_rules)
    if not problems:
        return None
    if signed != unsigned and not policy.check(unsigned, reply_rules):
        mark = signed.rsplit(" ", 1)[-1]
        return f"With your sign-off {mark} it breaks the policy: {' '.join(problems)} Nothing was cut; shorten the reply with Edit."
    return " ".join(problems)


def signoff_warning(rules: Rulebook, conversation: Conversation) -> str | None:
    """For the card: the draft may be approved, but not with the longest sign-off configured."""
    initials = signoffs.longest(rules.signoffs)
    draft = conversation.draft_text
    if not initials or not draft:
        return None
    draft_rules = rules.draft(conversation, offered_urls(conversation.grounding))
    signed = signoffs.sign(draft, initials)
    if policy.check(draft, draft_rules) or not policy.check(signed, draft_rules):
        return None
    return (f"With a sign-off such as ^{initials} this draft is {draft_rules.length(signed)}/{draft_rules.limit} characters: "
            "an approver with a sign-off must shorten it with Edit (nothing is cut).")


def approve_private(db: Database, rules: Rulebook, conversation_id: int, user: str, text: str) -> Decision:
    """Send ``text`` as a private message, then a short public note that it was sent (``bot/outbox.py``)."""
    conversation = _load(db, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    problem = edit_problem(rules, conversation, user, text, private=True)
    if problem:
        return Decision(Outcome.BLOCKED, problem)
    message = rules.signed(private_text(rules, conversation, text), user)
    platform_format = rules.format(conversation.platform)
    notice = rules.signed(platform_format.compose(platform_format.private.notice, conversation.author_handle), user)
    notice_problems = policy.check(notice, rules.reply(conversation))
    if notice_problems:  # a platform limit below a one-line note: say so rather than send a message nobody is told about
        return Decision(Outcome.BLOCKED, "The public note would break the policy: " + " ".join(notice_problems))
    return _approve(db, conversation, user, message, edited=message != conversation.draft_text,
                    from_states=(State.CARDED, State.POST_FAILED), private=True, notice=notice)


def private_text(rules: Rulebook, conversation: Conversation, text: str) -> str:
    """The private message as it will be sent: on Mastodon a direct status must @mention its reader."""
    return rules.format(conversation.platform).compose(text.strip(), conversation.author_handle)


def _approve(db: Database, conversation, user, text, *, edited, from_states, private: bool = False, notice: str | None = None) -> Decision:
    if conversation.private_sent_at is not None:  # the message went; only its public note is left to post
        return Decision(Outcome.BLOCKED, "The private message was already sent; Retry posts the public note.")
    with db.session() as session:
        won = transition(
            session, conversation.id, from_states, State.APPROVED,
            reply_text=text, reply_edited=edited, decided_by=user, decided_at=utcnow(), post_error=None,
            reply_private=private, notice_text=notice,
        )
        if won:
            action = "approved_private" if private else "approved_edited" if edited else "approved"
            audit(session, conversation.id, user, action, text if notice is None else f"{text}\n(public note: {notice})")
    return Decision(Outcome.DONE) if won else already_handled(db, conversation.id)


def dismiss(db: Database, conversation_id: int, user: str, reason: DismissReason) -> Decision:
    with db.session() as session:
        won = transition(
            session, conversation_id, (State.CARDED, State.POST_FAILED), State.DISMISSED,
            dismiss_reason=reason.value, decided_by=user, decided_at=utcnow(),
        )
        if won:
            audit(session, conversation_id, user, "dismissed", reason.value)
    return Decision(Outcome.DONE) if won else already_handled(db, conversation_id)


def retry(db: Database, conversation_id: int, user: str) -> Decision:
    with db.session() as session:
        won = transition(session, conversation_id, State.POST_FAILED, State.APPROVED, decided_by=user, decided_at=utcnow())
        if won:
            audit(session, conversation_id, user, "retried")
    return Decision(Outcome.DONE) if won else already_handled(db, conversation_id)


def claim(db: Database, conversation_id: int, user: str, *, now: datetime | None = None) -> Decision:
    """*I'm on it*: the card shows who has it, and its nudges go to them only."""
    now = now or utcnow()
    with db.session() as session:
        won = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state.in_(OPEN_STATES), Conversation.claimed_by.is_(None))
            .values(claimed_by=user, claimed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            audit(session, conversation_id, user, "claimed")
            return Decision(Outcome.DONE)
        conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.state not in OPEN_STATES:
        return already_handled(db, conversation_id)
    if conversation.claimed_by == user:
        return Decision(Outcome.ALREADY_HANDLED, "You're already on this one.")
    return Decision(Outcome.ALREADY_HANDLED, "{who} is already on this one.", who=conversation.claimed_by)


def snooze(db: Database, settings: Settings, conversation_id: int, user: str, choice: SnoozeFor, *, now: datetime | None = None) -> Decision:
    """Hold this card's nudges for an hour, or until tomorrow's opening."""
    now = now or utcnow()
    until = snooze_until(settings, choice, now)
    with db.session() as session:
        won = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state.in_(OPEN_STATES))
            .values(snoozed_until=until, snoozed_by=user)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            audit(session, conversation_id, user, "snoozed", until.isoformat())
    return Decision(Outcome.DONE) if won else already_handled(db, conversation_id)


def reply_as(db: Database, rules: Rulebook, conversation_id: int, user: str, account_id: str) -> Decision:
    """Reply from another of the brand's accounts on the same platform; the draft's checks follow
    that account's allowed link domains."""
    conversation = _load(db, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    account = rules.accounts.account(account_id)
    if account is None or account.platform != conversation.platform or account.id not in rules.accounts.adapters:
        return Decision(Outcome.BLOCKED, "That account cannot reply here any more; pick another from the card.")
    conversation.account = account.id  # detached: only to compute the checks under the new account
    problems = policy.check(conversation.draft_text, rules.draft(conversation, offered_urls(conversation.grounding))) \
        if conversation.draft_text else []
    with db.session() as session:
        won = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state.in_([State.CARDED.value, State.POST_FAILED.value]))
            .values(account=account.id, policy_problems=problems, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            audit(session, conversation_id, user, "reply_as", account.id)
    return Decision(Outcome.DONE) if won else already_handled(db, conversation_id)


def snooze_until(settings, choice: SnoozeFor, now: datetime) -> datetime:
    if choice is SnoozeFor.HOUR:
        return now + timedelta(hours=1)
    tz = settings.digest_timezone
    tomorrow = now.astimezone(tz).date() + timedelta(days=1)
    opens = settings.business_hours.start if settings.business_hours else settings.digest_time
    return business_hours.local_moment(tomorrow, opens, tz)


def _load(db: Database, conversation_id: int) -> Conversation | None:
    with db.session() as session:
        return session.get(Conversation, conversation_id)


def is_open(db: Database, conversation_id: int) -> Conversation | None:
    """The conversation while a person can still act on its card, else None."""
    conversation = _load(db, conversation_id)
    return conversation if conversation is not None and conversation.state in OPEN_STATES else None


def already_handled(db: Database, conversation_id: int) -> Decision:
    conversation = _load(db, conversation_id)
    if conversation is None:
        return Decision(Outcome.NOT_FOUND, "That conversation no longer exists.")
    what = State(conversation.state).value.replace("_", " ")
    if conversation.decided_by:
        return Decision(Outcome.ALREADY_HANDLED, f"This conversation was already handled by {{who}} (it is {what}).", who=conversation.decided_by)
    return Decision(Outcome.ALREADY_HANDLED, f"This conversation was already handled (it is {what}).")
