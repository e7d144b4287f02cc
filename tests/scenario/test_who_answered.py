"""Who answered: the approver is recorded, shown on the card and in the audit, and signs the reply
with their initials (SLACK_SIGNOFFS) when the platform's limit leaves room; otherwise the card says so."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.models import AuditEvent, State
from bot.slack.payloads import PRIVATE_BLOCK, PRIVATE_INPUT, REPLY_BLOCK, REPLY_INPUT, ActionId, ModalId
from tests.conftest import eventually, serve_web
from tests.fakes.slack_requests import plain_text_value
from tests.support import card_buttons, card_text, carded_mention, click, load, submit

SIGNOFFS = {"SLACK_SIGNOFFS": "U_ALICE:JD,U_CAROL:ABCD"}


@pytest.fixture
def signing(make_services):
    services = make_services(**SIGNOFFS)
    with serve_web(services) as web:
        yield services, web


def audit(services) -> list[tuple[str, str, str]]:
    with services.db.session() as session:
        return [(e.actor, e.action, e.detail or "") for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_the_reply_carries_the_approvers_initials_and_the_card_and_audit_name_them(signing, slack, model, bluesky):
    services, web = signing
    conv = carded_mention(services, bluesky, model, reply="Happy to help! Which version are you on?")

    click(web, ActionId.APPROVE, conv, user="U_ALICE")

    eventually(lambda: load(services).state == State.REPLIED.value)
    [reply] = bluesky.created("brand.test")
    assert reply.value["text"] == "Happy to help! Which version are you on? ^JD"
    done = load(services)
    assert done.decided_by == "U_ALICE" and done.reply_text.endswith(" ^JD")
    eventually(lambda: "Approved by <@U_ALICE>" in card_text(slack.last("chat.update")))
    actions = audit(services)
    assert ("U_ALICE", "approved", "Happy to help! Which version are you on? ^JD") in actions
    assert any(actor == "conversant" and action == "posted" and "approved by U_ALICE" in detail for actor, action, detail in actions)


def test_an_approver_without_initials_posts_the_draft_as_it_is(signing, model, bluesky):
    services, web = signing
    conv = carded_mention(services, bluesky, model, reply="Happy to help!")

    click(web, ActionId.APPROVE, conv, user="U_BOB")

    eventually(lambda: load(services).state == State.REPLIED.value)
    assert bluesky.created("brand.test")[0].value["text"] == "Happy to help!"


def test_a_draft_with_no_room_for_a_signoff_is_flagged_and_never_cut(signing, slack, model, bluesky):
    services, web = signing
    draft = "Thanks for the report! " + "x" * 275  # 298 of Bluesky's 300: fits, but not with " ^JD"
    conv = carded_mention(services, bluesky, model, reply=draft)

    card = slack.last("chat.postMessage")
    assert "Approve" in card_buttons(card)  # someone without a sign-off may still approve it
    assert "With a sign-off such as ^ABCD this draft is 304/300 characters" in card_text(card)

    click(web, ActionId.APPROVE, conv, user="U_ALICE")
    told = eventually(lambda: slack.calls_to("chat.postEphemeral"))[0]["text"]
    assert "With your sign-off ^JD" in told and "302/300" in told and "Nothing was cut" in told
    assert load(services).state == State.CARDED.value and bluesky.created("brand.test") == []

    status, body = submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, draft), user="U_ALICE")
    assert status == 200 and "With your sign-off ^JD" in body  # the Edit modal counts it too

    submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, "Thanks for the report!"), user="U_ALICE")
    eventually(lambda: load(services).state == State.REPLIED.value)
    assert bluesky.created("brand.test")[0].value["text"] == "Thanks for the report! ^JD"


def test_a_private_reply_and_its_public_note_are_signed(signing, model, bluesky):
    services, web = signing
    bluesky.accounts["alice.test"].allow_incoming = "all"
    conv = carded_mention(services, bluesky, model, text="@brand.test order #558812 is lost", reply="Sorry! Checking it now.")

    submit(web, ModalId.PRIVATE, conv, plain_text_value(PRIVATE_BLOCK, PRIVATE_INPUT, "Sorry! Checking it now."), user="U_ALICE")

    eventually(lambda: load(services).state == State.REPLIED.value)
    assert [m["text"] for m in bluesky.messages_to("alice.test")] == ["Sorry! Checking it now. ^JD"]
    assert bluesky.created("brand.test")[0].value["text"] == "We've sent you a message in chat. ^JD"
