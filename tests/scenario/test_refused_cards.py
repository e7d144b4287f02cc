"""One card Slack refuses never holds up the others: it is recorded with Slack's reason, the other
cards go out in the same cycle, it goes out later as a short card, and Home counts it."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from bot import flows
from bot.models import AuditEvent, Conversation, State, utcnow
from bot.pipeline import poll_once
from bot.slack.home import publish_home
from tests.conftest import triage
from tests.scenario.test_brand_accounts import brand, brand_env  # noqa: F401 - the fixtures: accounts and routes
from tests.support import card_buttons, card_text

TOPICS = ("my export to PDF fails every time", "billing charged me twice this month",
          "the cursed post Slack will not take", "sync stopped working on my phone")


def refuse_the_cursed_card(slack, error="invalid_blocks"):
    slack.refuse("chat.postMessage", error, when=lambda args: "cursed post" in json.dumps(args.get("blocks") or []))


def cards(slack) -> list[dict]:
    return [m for m in slack.messages.values() if m["channel"] == "C_REVIEW" and m.get("blocks")]


def by_topic(services, topic: str) -> Conversation:
    with services.db.session() as session:
        return session.scalars(select(Conversation).where(Conversation.text.contains(topic))).one()


def home_text(services, slack, user="U_LEAD") -> str:
    publish_home(services, user)
    return json.dumps(slack.home_views[user]["blocks"], ensure_ascii=False)


def test_a_refused_card_is_skipped_then_posted_short_and_counted_on_home(services, slack, model, bluesky):
    for topic in TOPICS:
        bluesky.post("alice.test", f"@brand.test {topic}")
    model.reply_with(triage())
    refuse_the_cursed_card(slack)

    report = poll_once(services)

    assert report.carded == 3  # the refused card did not stop the queue
    assert sorted(json.dumps(m["blocks"]).count("the cursed post") for m in cards(slack)) == [0, 0, 0]
    refused = by_topic(services, "cursed post")
    assert (refused.state, refused.slack_ts, refused.card_error, refused.card_failures) == (State.DRAFTED.value, None, "invalid_blocks", 1)
    with services.db.session() as session:
        assert session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "card_refused")).all() == ["invalid_blocks"]
    home = home_text(services, slack)
    assert "Slack refused 1 card* (invalid_blocks): 1 to be tried again shortly" in home

    poll_once(services)  # too soon: it waits its turn and nothing else is held up
    assert len(cards(slack)) == 3 and by_topic(services, "cursed post").slack_ts is None

    with services.db.session() as session:
        session.execute(update(Conversation).values(card_retry_at=utcnow() - timedelta(seconds=1)))
    poll_once(services)

    short = by_topic(services, "cursed post")
    assert short.state == State.CARDED.value and short.slack_ts
    message = slack.messages[("C_REVIEW", short.slack_ts)]
    text = card_text(message)
    assert "Slack refused the full card (invalid_blocks)" in text and "@alice.test" in text and short.url in text
    assert card_buttons(message) == ["Edit", "Dismiss"]  # no Approve on a card that does not show the draft
    assert len(cards(slack)) == 4
    assert "1 shown as a short card" in home_text(services, slack)


def test_a_short_card_slack_also_refuses_is_tried_again_without_its_buttons(services, slack, model, bluesky):
    bluesky.post("alice.test", f"@brand.test {TOPICS[2]}")
    model.reply_with(triage())
    refuse_the_cursed_card(slack)
    poll_once(services)
    slack.refuse("chat.postMessage", "invalid_blocks", when=lambda args: "actions" in json.dumps(args.get("blocks") or []))

    for posted in (False, True):  # the short card with buttons is refused, then the one without is taken
        with services.db.session() as session:
            session.execute(update(Conversation).values(card_retry_at=utcnow() - timedelta(seconds=1)))
        poll_once(services)
        conversation = by_topic(services, "cursed post")
        assert (bool(conversation.slack_ts), conversation.card_failures) == (posted, 2)

    assert card_buttons(slack.messages[("C_REVIEW", conversation.slack_ts)]) == []
    assert "Open the post on Bluesky" in card_text(slack.messages[("C_REVIEW", conversation.slack_ts)])


def test_slack_failing_for_every_card_still_stops_the_cycle_and_records_no_refusal(services, slack, model, bluesky):
    for topic in TOPICS[:2]:
        bluesky.post("alice.test", f"@brand.test {topic}")
    model.reply_with(triage())
    slack.fail_next("chat.postMessage", error="not_in_channel")

    report = poll_once(services)

    assert report.carded == 0 and len(slack.calls_to("chat.postMessage")) == 1  # one try, not one per card
    assert by_topic(services, TOPICS[0]).card_error is None and by_topic(services, TOPICS[1]).card_error is None
    poll_once(services)
    assert len(cards(slack)) == 2


def test_a_card_slack_refuses_to_update_is_rewritten_short(services, slack, model, bluesky):
    bluesky.post("alice.test", f"@brand.test {TOPICS[2]}")
    model.reply_with(triage())
    poll_once(services)
    carded = by_topic(services, "cursed post")
    slack.refuse("chat.update", "msg_blocks_too_long", when=lambda args: "cursed post" in json.dumps(args.get("blocks") or []))
    flows.claim(services, carded.id, "U_BOB")

    now = by_topic(services, "cursed post")
    assert now.card_error == "msg_blocks_too_long" and now.claimed_by == "U_BOB"
    text = card_text(slack.messages[("C_REVIEW", carded.slack_ts)])
    assert "Slack refused the full card (msg_blocks_too_long)" in text and "is on it" in text


def test_a_routed_channel_without_the_bot_holds_up_only_its_own_cards(brand, bluesky, slack, model, caplog):
    services, _, _ = brand
    slack.channels_not_joined.add("C_PRESS")  # the press route's channel: the bot was never invited
    bluesky.post("bob.test", "@brand.test I'm a journalist writing about the outage, statement please")
    bluesky.post("alice.test", "@brand.test the export button does nothing at all")
    bluesky.post("bob.test", "@brand.test how do I share a notebook read only")
    model.reply_with(triage())

    report = poll_once(services)

    assert report.carded == 2  # the other route's cards went out in the same cycle
    press = by_topic(services, "journalist")
    assert (press.state, press.slack_ts, press.card_error) == (State.DRAFTED.value, None, None)
    assert "invite the bot to the channel" in caplog.text
    assert len([c for c in slack.calls_to("chat.postMessage") if c["channel"] == "C_PRESS"]) == 1  # tried once a cycle

    slack.channels_not_joined.discard("C_PRESS")
    poll_once(services)
    assert by_topic(services, "journalist").slack_channel == "C_PRESS"
