"""Redraft: a direction from the card's menu (or typed in a modal) gives a new draft in place."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode

from bot.slack.payloads import REDRAFT_BLOCK, REDRAFT_INPUT, ActionId, ModalId
from bot.models import AuditEvent
from tests.conftest import SIGNING_SECRET, eventually, triage
from tests.fakes.slack_requests import block_actions_body, plain_text_value, post_signed
from tests.support import card_text, carded_mention, load, submit


def choose(web: str, conversation, direction: str, user: str = "U_ALICE"):
    """Pick an option of the card's Redraft menu, as Slack sends a static_select choice."""
    body = block_actions_body(user_id=user, action_id=ActionId.REDRAFT.value, value="", message_ts=conversation.slack_ts)
    payload = json.loads(parse_qs(body)["payload"][0])
    payload["actions"][0] = {
        "type": "static_select", "action_id": ActionId.REDRAFT.value, "block_id": "b", "action_ts": "1.2",
        "selected_option": {"text": {"type": "plain_text", "text": direction}, "value": json.dumps({"conversation": conversation.id, "redraft": direction})},
    }
    return post_signed(f"{web}/slack/events", urlencode({"payload": json.dumps(payload)}), SIGNING_SECRET)


def menu_options(card: dict) -> list[str]:
    for block in card["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == ActionId.REDRAFT.value:
                return [o["text"]["text"] for o in element["options"]]
    return []


def test_the_card_offers_redraft_directions(services, slack, model, bluesky):
    carded_mention(services, bluesky, model)
    assert menu_options(slack.last("chat.postMessage")) == [
        "Shorter", "Warmer", "More formal", "Answer directly", "Ask them a question", "Something else…"]


def test_a_direction_replaces_the_draft_in_place(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model, reply="Thanks so much for reaching out to us about your export question today!")
    model.reply_with(triage("Which file type fails to export?"))

    assert choose(web, conv, "shorter")[0] == 200

    eventually(lambda: load(services).draft_text == "Which file type fails to export?")
    request = model.chat_requests()[-1]
    instruction = request["messages"][-1]["content"]
    assert "Make it shorter" in instruction and "Thanks so much for reaching out" in instruction
    card = eventually(lambda: slack.calls_to("chat.update"))[-1]
    assert card["ts"] == conv.slack_ts and "Which file type fails to export?" in card_text(card)
    with services.db.session() as session:
        assert session.query(AuditEvent).filter_by(action="redrafted").one().actor == "U_ALICE"


def test_a_typed_instruction_goes_through_a_modal(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    choose(web, conv, "custom")
    view = eventually(lambda: slack.calls_to("views.open"))[0]["view"]
    assert view["callback_id"] == ModalId.REDRAFT.value

    model.reply_with(triage("Our status page has the details: https://brand.example/status"))
    submit(web, ModalId.REDRAFT, conv, plain_text_value(REDRAFT_BLOCK, REDRAFT_INPUT, "point them to the status page"))

    eventually(lambda: "status page" in (load(services).draft_text or ""))
    assert "point them to the status page" in model.chat_requests()[-1]["messages"][-1]["content"]


def test_a_failed_redraft_keeps_the_draft_and_says_so(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model, reply="Original draft")
    model.fail_next(status=500, times=10)
    choose(web, conv, "warmer")
    told = eventually(lambda: slack.calls_to("chat.postEphemeral"))[0]
    assert "Couldn't redraft" in told["text"] and "unchanged" in told["text"]
    assert load(services).draft_text == "Original draft"


def test_outsiders_cannot_redraft(make_services, slack, model, bluesky):
    from tests.conftest import serve_web

    services = make_services(SLACK_APPROVERS="U_LEAD")
    conv = carded_mention(services, bluesky, model, reply="Original draft")
    with serve_web(services) as web:
        choose(web, conv, "shorter", user="U_INTRUDER")
        eventually(lambda: slack.calls_to("chat.postEphemeral"))
    assert load(services).draft_text == "Original draft" and len(model.chat_requests()) == 1
