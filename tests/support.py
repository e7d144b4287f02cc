"""Small helpers shared by the tests: reading cards, clicking buttons, submitting modals."""
from __future__ import annotations

import json

from bot.slack.payloads import ActionId, ModalId, burst_value, conversation_value
from bot.models import Burst, Conversation
from bot.pipeline import poll_once
from tests.conftest import SIGNING_SECRET, triage
from tests.fakes.slack_requests import block_actions_body, post_signed, view_submission_body


def card_buttons(message: dict) -> list[str]:
    """The labels of the buttons in the card's action row (menus such as Redraft are not buttons)."""
    return [e["text"]["text"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]


def card_text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def load(services, conversation_id: int | None = None) -> Conversation:
    with services.db.session() as session:
        if conversation_id is not None:
            return session.get(Conversation, conversation_id)
        return session.query(Conversation).one()


def carded_mention(services, bluesky, model, text="@brand.test how do I export my notes?", reply="Happy to help! Which app version are you on?", **triage_fields) -> Conversation:
    """Alice mentions the brand, one poll cycle runs, and the card is posted."""
    bluesky.post("alice.test", text)
    model.reply_with(triage(reply, **triage_fields))
    poll_once(services)
    return load(services)


def click(web: str, action: ActionId, conversation: Conversation, user: str = "U_ALICE", *, value: str | None = None, retry_num: int | None = None):
    value = value or conversation_value(conversation.id)
    body = block_actions_body(user_id=user, action_id=action.value, value=value, message_ts=conversation.slack_ts or "1.1")
    return post_signed(f"{web}/slack/events", body, SIGNING_SECRET, retry_num=retry_num)


def submit(web: str, modal: ModalId, conversation: Conversation, values: dict, user: str = "U_ALICE"):
    body = view_submission_body(user_id=user, callback_id=modal.value, private_metadata=conversation_value(conversation.id), values=values)
    return post_signed(f"{web}/slack/events", body, SIGNING_SECRET)


def press(services, web: str, action: ActionId, burst_id: int, user: str = "U_LEAD"):
    """Click a button of the burst card (the message the burst's card is)."""
    with services.db.session() as session:
        message_ts = session.get(Burst, burst_id).slack_ts
    body = block_actions_body(user_id=user, action_id=action.value, value=burst_value(burst_id), message_ts=message_ts)
    return post_signed(f"{web}/slack/events", body, SIGNING_SECRET)
