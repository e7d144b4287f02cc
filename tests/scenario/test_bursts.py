"""A burst of similar mentions makes one card in Slack, and every mention still gets its own reply."""
from __future__ import annotations

import json

from bot.slack.payloads import ActionId
from bot.models import Burst, Conversation, State
from bot.pipeline import poll_once
from tests.conftest import eventually, triage
from tests.support import card_buttons, card_text, press

PEOPLE = [f"user{i}.test" for i in range(30)]


def outage(bluesky, model, count: int = 30) -> None:
    for handle in PEOPLE[:count]:
        bluesky.add_account(handle)
    model.responder = lambda request: triage(
        "So sorry, we're on it! Is it still failing for you right now?", category="complaint", urgency="high")
    for i, handle in enumerate(PEOPLE[:count]):
        bluesky.post(handle, f"@brand.test is the app down? login keeps failing for me {'!' * (i % 3)}")


def conversations(services) -> list[Conversation]:
    with services.db.session() as session:
        return list(session.query(Conversation).order_by(Conversation.id))


def test_thirty_similar_mentions_make_one_card_and_approve_all_sends_thirty_replies(services, web, slack, model, bluesky):
    outage(bluesky, model)
    bluesky.post("alice.test", "@brand.test love the new dark mode, thank you")

    poll_once(services)

    posted = slack.calls_to("chat.postMessage")
    assert len(posted) == 2  # the burst, and alice's unrelated mention
    burst_card = next(c for c in posted if "similar mentions" in c["text"])
    latest = eventually(lambda: [c for c in slack.calls_to("chat.update") if "Approve all" in json.dumps(c)])[-1]
    assert "*30 similar mentions*" in card_text(latest) and "…and 27 more." in card_text(latest)
    assert card_buttons(latest) == ["Approve all (30)", "Open one by one", "Dismiss all"]
    members = [c for c in conversations(services) if c.burst_id]
    assert len(members) == 30 and {c.state for c in members} == {State.CARDED.value}
    assert {c.slack_ts for c in members} == {latest["ts"]}  # nudges and links point at the burst card
    assert burst_card["channel"] == "C_REVIEW"

    press(services, web, ActionId.APPROVE_ALL, members[0].burst_id)

    eventually(lambda: len(bluesky.created("brand.test")) == 30, timeout=30)
    replied_to = {r.value["reply"]["parent"]["uri"] for r in bluesky.created("brand.test")}
    assert replied_to == {c.external_id for c in members}  # one reply each, threaded under each mention
    eventually(lambda: all(c.state == State.REPLIED.value for c in conversations(services) if c.burst_id))
    final = eventually(lambda: "30 replied" in card_text(slack.last("chat.update")) and slack.last("chat.update"))
    assert card_buttons(final) == []
    assert len(slack.calls_to("chat.update")) < 10  # one card rewritten a few times, not once per reply


def test_open_one_by_one_cards_each_in_the_burst_thread(services, web, slack, model, bluesky):
    outage(bluesky, model, count=6)
    poll_once(services)
    burst_id = next(c.burst_id for c in conversations(services) if c.burst_id)
    with services.db.session() as session:
        burst_ts = session.get(Burst, burst_id).slack_ts

    press(services, web, ActionId.OPEN_EACH, burst_id)

    opened = eventually(lambda: [c for c in slack.calls_to("chat.postMessage") if c.get("thread_ts") == burst_ts] if len(
        [c for c in slack.calls_to("chat.postMessage") if c.get("thread_ts") == burst_ts]) == 6 else None)
    assert all(card_buttons(c) == ["Approve", "Reply privately", "Edit", "Dismiss"] for c in opened)
    eventually(lambda: "Opened one by one" in card_text(slack.last("chat.update")))
    members = [c for c in conversations(services) if c.burst_id]
    assert all(c.slack_thread_ts == burst_ts and c.slack_ts != burst_ts for c in members)


def test_a_few_similar_mentions_stay_separate_cards(services, slack, model, bluesky):
    outage(bluesky, model, count=3)
    poll_once(services)
    assert len(slack.calls_to("chat.postMessage")) == 3
    assert not any(c.burst_id for c in conversations(services))


def test_outsiders_cannot_approve_a_burst(make_services, slack, model, bluesky):
    from tests.conftest import serve_web

    services = make_services(SLACK_APPROVERS="U_LEAD")
    outage(bluesky, model, count=5)
    poll_once(services)
    burst_id = next(c.burst_id for c in conversations(services) if c.burst_id)
    with serve_web(services) as web:
        press(services, web, ActionId.APPROVE_ALL, burst_id, user="U_INTRUDER")
        eventually(lambda: slack.calls_to("chat.postEphemeral"))
    assert bluesky.created("brand.test") == []
