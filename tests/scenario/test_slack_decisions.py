"""Edit, Dismiss, who may decide, forged requests and the output policy, through signed Slack requests."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from bot.slack.payloads import REASON_BLOCK, REASON_INPUT, REPLY_BLOCK, REPLY_INPUT, ActionId, ModalId
from bot.models import State
from tests.conftest import SIGNING_SECRET, eventually, serve_web
from tests.fakes.slack_requests import block_actions_body, plain_text_value, post_signed, radio_value, slash_command_body
from bot.pipeline import poll_once
from tests.conftest import triage
from tests.support import card_buttons, card_text, carded_mention, click, load, submit


def test_edit_opens_a_modal_holding_the_draft_and_posts_the_edited_text(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model, reply="Thanks! Which version?")

    assert click(web, ActionId.EDIT, conv)[0] == 200
    opened = eventually(lambda: slack.calls_to("views.open"))[0]
    assert opened["trigger_id"] == "123.456.abc"
    element = opened["view"]["blocks"][1]["element"]
    assert element["initial_value"] == "Thanks! Which version?"

    status, _ = submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, "Thanks Alice! Which version are you on?"))
    assert status == 200
    reply = eventually(lambda: bluesky.created("brand.test"))[0]
    assert reply.value["text"] == "Thanks Alice! Which version are you on?"
    done = eventually(lambda: load(services).state == State.REPLIED.value and load(services))
    assert done.reply_edited is True and done.draft_text == "Thanks! Which version?"
    assert "(edited)" in card_text(slack.last("chat.update"))


def test_an_edit_that_breaks_the_policy_is_refused_in_the_modal(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)

    status, body = submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, "See https://evil.example/x and ask @bob.test"))

    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert "evil.example" in answer["errors"][REPLY_BLOCK] and "@bob.test" in answer["errors"][REPLY_BLOCK]
    # A later click that needs the card still waiting goes through: the refused edit approved nothing.
    assert submit(web, ModalId.DISMISS, conv, radio_value(REASON_BLOCK, REASON_INPUT, "spam"))[0] == 200
    eventually(lambda: load(services).state == State.DISMISSED.value)
    assert bluesky.created("brand.test") == []


def test_dismiss_asks_for_a_reason_and_rewrites_the_card(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)

    click(web, ActionId.DISMISS, conv)
    view = eventually(lambda: slack.calls_to("views.open"))[0]["view"]
    options = [o["value"] for o in view["blocks"][1]["element"]["options"]]
    assert options == ["not_relevant", "spam", "handled_elsewhere", "no_reply_needed"]

    assert submit(web, ModalId.DISMISS, conv, radio_value(REASON_BLOCK, REASON_INPUT, "spam"))[0] == 200

    done = eventually(lambda: load(services).state == State.DISMISSED.value and load(services))
    assert done.dismiss_reason == "spam" and done.decided_by == "U_ALICE"
    card = eventually(lambda: slack.calls_to("chat.update"))[-1]
    assert card_buttons(card) == [] and "Dismissed by <@U_ALICE>" in card_text(card) and "(spam)" in card_text(card)
    assert bluesky.created("brand.test") == []


def test_dismiss_without_a_reason_keeps_the_modal_open(services, web, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    status, body = submit(web, ModalId.DISMISS, conv, radio_value(REASON_BLOCK, REASON_INPUT, None))
    assert json.loads(body)["errors"][REASON_BLOCK] == "Pick a reason."
    assert load(services).state == State.CARDED.value


def test_people_outside_the_approvers_are_told_privately_and_change_nothing(make_services, slack, model, bluesky, env):
    services = make_services(SLACK_APPROVERS="U_LEAD,S_SOCIAL")
    slack.usergroups["S_SOCIAL"] = ["U_SOCIAL"]
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        click(web, ActionId.APPROVE, conv, user="U_INTRUDER")
        told = eventually(lambda: slack.calls_to("chat.postEphemeral"))[0]
        assert told["user"] == "U_INTRUDER" and "SLACK_APPROVERS" in told["text"]
        click(web, ActionId.EDIT, conv, user="U_INTRUDER")
        eventually(lambda: len(slack.calls_to("chat.postEphemeral")) == 2)
        assert slack.calls_to("views.open") == []
        assert load(services).state == State.CARDED.value

        click(web, ActionId.APPROVE, conv, user="U_SOCIAL")  # a member of the user group
        eventually(lambda: load(services).state == State.REPLIED.value)
    assert len(bluesky.created("brand.test")) == 1
    assert load(services).decided_by == "U_SOCIAL"


def test_forged_or_stale_requests_get_401_and_change_nothing(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    body = block_actions_body(user_id="U_ALICE", action_id=ActionId.APPROVE.value, value=json.dumps({"conversation": conv.id}), message_ts=conv.slack_ts)

    assert post_signed(f"{web}/slack/events", body, SIGNING_SECRET, bad_signature=True)[0] == 401
    assert post_signed(f"{web}/slack/events", body, "not-the-secret")[0] == 401
    assert post_signed(f"{web}/slack/events", body, SIGNING_SECRET, timestamp=int(time.time()) - 3600)[0] == 401
    unsigned = urllib.request.Request(f"{web}/slack/events", data=body.encode(), method="POST")
    try:
        urllib.request.urlopen(unsigned)
        raise AssertionError("an unsigned request was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 401

    # A genuine click after them is handled: by then the refused ones would have shown any effect.
    assert click(web, ActionId.CLAIM, conv)[0] == 200
    eventually(lambda: load(services).claimed_by == "U_ALICE")
    assert load(services).state == State.CARDED.value and bluesky.created("brand.test") == []
    updates = eventually(lambda: slack.calls_to("chat.update"))
    assert len(updates) == 1 and "is on it" in json.dumps(updates[0]["blocks"])  # the claim's, and nothing before it


def test_a_malformed_button_value_is_400_and_changes_nothing(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    other = {"conversation": conv.id + 1}
    for value in ("not json", json.dumps({"conversation": "1; DROP TABLE"}), json.dumps({"conversation": True}),
                  json.dumps({"conversation": None}), json.dumps([conv.id]), json.dumps({"conversation": -1})):
        assert click(web, ActionId.APPROVE, conv, value=value)[0] == 400, value
    assert click(web, ActionId.APPROVE, conv, value=json.dumps(other))[0] == 200  # well formed, but no such card
    told = eventually(lambda: slack.calls_to("chat.postEphemeral"))
    assert len(told) == 1 and "no longer exists" in told[0]["text"]
    assert load(services).state == State.CARDED.value and slack.calls_to("chat.update") == []


def test_a_payload_of_the_wrong_shape_is_400_and_changes_nothing(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    good = json.loads(urllib.parse.parse_qs(block_actions_body(
        user_id="U_ALICE", action_id=ActionId.APPROVE.value, value=json.dumps({"conversation": conv.id}), message_ts=conv.slack_ts))["payload"][0])
    for payload in ([1, 2], None, {**good, "user": None}, {**good, "actions": {"value": "x"}}, {**good, "actions": [None]},
                    {**good, "user": [conv.id]}):
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        assert post_signed(f"{web}/slack/events", body, SIGNING_SECRET)[0] == 400, payload
    # the same click, well formed, goes through: the refused ones did nothing before it
    assert post_signed(f"{web}/slack/events", urllib.parse.urlencode({"payload": json.dumps(good)}), SIGNING_SECRET)[0] == 200
    eventually(lambda: load(services).state == State.REPLIED.value)
    assert len(bluesky.created("brand.test")) == 1


def test_a_button_value_must_belong_to_the_card_it_was_clicked_on(services, web, slack, model, bluesky):
    bluesky.post("alice.test", "@brand.test first question")
    bluesky.post("bob.test", "@brand.test second question")
    model.reply_with(triage("Thanks!"))
    poll_once(services)
    first, second = load(services, 1), load(services, 2)

    # a click on the first card carrying the second card's value
    body = block_actions_body(user_id="U_ALICE", action_id=ActionId.APPROVE.value, value=json.dumps({"conversation": second.id}),
                              message_ts=first.slack_ts)
    assert post_signed(f"{web}/slack/events", body, SIGNING_SECRET)[0] == 200
    told = eventually(lambda: slack.calls_to("chat.postEphemeral"))
    assert "does not belong to this card" in told[0]["text"]
    assert load(services, 2).state == State.CARDED.value and bluesky.created("brand.test") == []


def test_a_malformed_payload_is_400_when_signed_and_401_when_not(services, web, slack):
    body = urllib.parse.urlencode({"payload": "{not json"})
    assert post_signed(f"{web}/slack/events", body, SIGNING_SECRET)[0] == 400
    assert post_signed(f"{web}/slack/events", body, "forged")[0] == 401
    assert slack.calls_to("chat.postEphemeral") == [] and slack.calls_to("chat.update") == []


def test_a_draft_that_breaks_the_policy_is_flagged_and_cannot_be_approved(services, web, slack, model, bluesky):
    long_reply = "Thanks so much for this! " * 14  # well over 300 graphemes
    conv = carded_mention(services, bluesky, model, reply=long_reply + " Ping @everyone and see https://evil.example")

    card = slack.last("chat.postMessage")
    assert card_buttons(card) == ["Reply privately", "Edit", "Dismiss"]
    text = card_text(card)
    assert "can't be approved as written" in text and "Too long for Bluesky" in text
    assert "evil.example" in text and "@everyone" in text

    click(web, ActionId.APPROVE, conv)  # an old card or a crafted request still cannot approve it
    told = eventually(lambda: slack.calls_to("chat.postEphemeral"))[0]
    assert "can't be approved as written" in told["text"]
    assert load(services).state == State.CARDED.value and bluesky.created("brand.test") == []


def test_people_are_not_pinged_by_mention_text_on_the_card(services, slack, model, bluesky):
    carded_mention(services, bluesky, model, text="@brand.test <!channel> <@U123> look <https://x.example|here>")
    text = card_text(slack.last("chat.postMessage"))
    assert "<!channel>" not in text and "<@U123>" not in text and "&lt;!channel&gt;" in text


def test_slash_command_status_and_help(services, web, model, bluesky):
    carded_mention(services, bluesky, model)
    status, body = post_signed(f"{web}/slack/events", slash_command_body(user_id="U_ALICE", text="status"), SIGNING_SECRET)
    assert status == 200 and "*1* waiting for review" in body and "Bluesky: working" in body
    _, body = post_signed(f"{web}/slack/events", slash_command_body(user_id="U_ALICE", text="help"), SIGNING_SECRET)
    assert "/conversant status" in body


def test_healthz_answers_when_the_database_does(web):
    with urllib.request.urlopen(f"{web}/healthz") as response:
        assert response.status == 200 and json.loads(response.read())["database"] == "ok"
