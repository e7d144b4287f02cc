"""Conversations waiting for a card, and the one status message about them during a burst.

Slack takes about ``SLACK_MESSAGES_PER_SECOND`` × 60 messages a minute in a
channel. When more conversations wait for a card than that (an outage, a
viral post), the pipeline cards the most urgent first and the rest stay
queued: never dropped, carded in later cycles. While that lasts, one status
message in the review channel says how many wait; each cycle edits it in
place (``chat.update``), and once the queue has drained it says so and the
next burst gets a message of its own. Its channel and ts are kept in
``app_state``, so a restart or a second process edits the same message.

The Home tab shows the same figures with ``card_queue(services).home_text()``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from bot.models import AppState, Conversation, State, insert_state, utcnow
from bot.services import Services
from bot.slack.publish import CardPublishError

log = logging.getLogger(__name__)

STATUS_KEY = "card_queue_status"  # value: JSON {"channel", "ts", "text"}; no row: no burst under way
READY = (State.DRAFTED, State.DRAFT_FAILED)  # waiting only for a card
COMING = (State.NEW, State.DRAFTING)  # still being checked and drafted
URGENCIES = ("high", "normal", "low")
ABANDONED = timedelta(minutes=5)  # a claim on the status message this old, never posted, is taken over


@dataclass(frozen=True)
class CardQueue:
    """How many conversations wait for a card, against what Slack takes in a minute."""

    ready: int = 0  # drafted (or without a draft), waiting only for their card
    drafting: int = 0  # new or with the model; a card follows unless triage skips them
    by_urgency: dict[str, int] = field(default_factory=dict)  # of the ready ones; "unknown" without triage
    oldest: datetime | None = None  # when the longest-waiting ready one was posted
    per_minute: int = 60  # cards Slack takes in a minute in one channel

    @property
    def waiting(self) -> int:
        return self.ready + self.drafting

    @property
    def queued(self) -> bool:
        """More wait than Slack takes in a minute: the most urgent go first, the rest wait their turn."""
        return self.waiting > self.per_minute

    def minutes_to_clear(self) -> int:
        return -(-self.waiting // max(1, self.per_minute))

    def counts_text(self) -> str:
        parts = [f"{self.by_urgency[u]:,} {u}" for u in (*URGENCIES, "unknown") if self.by_urgency.get(u)]
        text = f"{self.ready:,} ready" + (f" ({', '.join(parts)} urgency)" if parts else "")
        return text + (f", {self.drafting:,} still being drafted" if self.drafting else "")

    def status_text(self) -> str:
        """The status message in the review channel, while the burst lasts."""
        oldest = f" The longest waiting was posted <!date^{int(self.oldest.timestamp())}^{{date_short_pretty}} {{time}}|{self.oldest:%Y-%m-%d %H:%M} UTC>." if self.oldest else ""
        return (f":hourglass_flowing_sand: *{self.waiting:,} conversations are queued for a card* ({self.counts_text()}). "
                f"Slack takes about {self.per_minute} cards a minute here, so the most urgent are carded first; "
                f"none is dropped, and the rest follow in about {self.minutes_to_clear()} min.{oldest} "
                "This message updates as the queue drains.")

    def home_text(self) -> str:
        """One line for the Home tab."""
        if not self.waiting:
            return ":white_check_mark: No conversation is waiting for a card."
        if not self.queued:
            return f"{self.waiting:,} waiting for a card ({self.counts_text()}); all carded within a minute."
        return (f":hourglass_flowing_sand: *Burst:* {self.waiting:,} queued for a card ({self.counts_text()}); "
                f"most urgent first, about {self.minutes_to_clear()} min to clear at {self.per_minute} cards a minute.")


def card_queue(services: Services) -> CardQueue:
    """The queue as it stands: one grouped query."""
    states = [s.value for s in (*READY, *COMING)]
    ready_states = {s.value for s in READY}
    ready, drafting, by_urgency, oldest = 0, 0, {}, None
    with services.db.session() as session:
        rows = session.execute(
            select(Conversation.state, Conversation.urgency, func.count(), func.min(Conversation.posted_at))
            .where(Conversation.state.in_(states), Conversation.burst_id.is_(None))  # a burst is one card, see bursts.py
            .group_by(Conversation.state, Conversation.urgency)
        ).all()
    for state, urgency, count, first in rows:
        if state in ready_states:
            ready += count
            key = urgency if urgency in URGENCIES else "unknown"
            by_urgency[key] = by_urgency.get(key, 0) + count
            oldest = first if oldest is None or (first and first < oldest) else oldest
        else:
            drafting += count
    per_minute = max(1, int(services.settings.slack_messages_per_second * 60))
    return CardQueue(ready, drafting, by_urgency, oldest, per_minute)


def report(services: Services, queue: CardQueue | None = None) -> CardQueue:
    """Post, edit or close the one status message so it matches the queue; returns the queue."""
    queue = queue or card_queue(services)
    with services.db.session() as session:
        row = session.get(AppState, STATUS_KEY)
        status = json.loads(row.value) if row else None
        if status is not None and not status.get("ts") and row.updated_at < utcnow() - ABANDONED:
            session.delete(row)  # a process died between claiming the message and posting it
            status = None
    if queue.queued:
        text = queue.status_text()
        if status is None:
            _open(services, text)
        elif status.get("ts") and status.get("text") != text:
            _edit(services, status, text)
    elif status is not None and status.get("ts"):
        _close(services, status, queue)
    return queue


def _message(text: str) -> dict:
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2990]}}]}


def _open(services: Services, text: str) -> None:
    with services.db.session() as session:  # claim the key first: two processes never post two messages
        if not insert_state(session, STATUS_KEY, json.dumps({"posting": True}), utcnow()):
            return
    try:
        channel, ts = services.publisher.post(_message(text))
    except CardPublishError as error:
        log.error("could not post the queue status message: %s", error)
        with services.db.session() as session:
            session.execute(delete(AppState).where(AppState.key == STATUS_KEY))
        return
    _store(services, {"channel": channel, "ts": ts, "text": text})


def _edit(services: Services, status: dict, text: str) -> None:
    try:
        services.publisher.update(status["channel"], status["ts"], _message(text))
    except CardPublishError as error:
        log.warning("could not update the queue status message: %s", error)
        return
    _store(services, {**status, "text": text})


def _close(services: Services, status: dict, queue: CardQueue) -> None:
    left = f" {queue.waiting:,} still waiting, all carded within a minute." if queue.waiting else ""
    text = f":white_check_mark: *The queue of cards has drained.* Every queued conversation has its card.{left}"
    try:
        services.publisher.update(status["channel"], status["ts"], _message(text))
    except CardPublishError as error:
        log.warning("could not close the queue status message: %s", error)
    with services.db.session() as session:
        session.execute(delete(AppState).where(AppState.key == STATUS_KEY))


def _store(services: Services, value: dict) -> None:
    with services.db.session() as session:
        session.execute(
            update(AppState).where(AppState.key == STATUS_KEY).values(value=json.dumps(value), updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
