"""A card is posted once even when Slack's answer is lost: every card carries message metadata
naming its conversation, and a card whose post got no answer (a crash between chat.postMessage
and the database, a gateway error) is looked for in the channel's history and adopted."""
from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta

from sqlalchemy import update

from bot import flows
from bot.models import AuditEvent, Burst, Conversation, State, utcnow
from bot.pipeline import poll_once
from tests.cli import CliPopen
from tests.conftest import triage
from tests.scenario.test_bursts import outage
from tests.support import carded_mention, load

CARD = "conversant_card"


def cards_of(slack, conversation_id: int) -> list[dict]:
    """The messages in the review channel (threads included) carrying this conversation's metadata."""
    return [m for m in slack.messages.values()
            if (m.get("metadata") or {}).get("event_type") == CARD
            and m["metadata"]["event_payload"] == {"conversation_id": conversation_id}]


def test_every_card_carries_its_conversation_in_metadata_and_keeps_it_when_updated(services, slack, model, bluesky):
    conversation = carded_mention(services, bluesky, model)
    [card] = cards_of(slack, conversation.id)
    assert card["ts"] == conversation.slack_ts
    assert slack.last("chat.postMessage")["metadata"] == {"event_type": CARD, "event_payload": {"conversation_id": conversation.id}}

    flows.claim(services, conversation.id, "U_BOB")
    assert "is on it" in str(slack.messages[("C_REVIEW", conversation.slack_ts)]["blocks"])
    assert cards_of(slack, conversation.id) == [slack.messages[("C_REVIEW", conversation.slack_ts)]]


def test_a_card_whose_answer_was_lost_is_found_in_the_history_not_posted_again(services, slack, model, bluesky):
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    slack.lose_answers("chat.postMessage")  # Slack stores the card; the gateway answers 502

    poll_once(services)
    waiting = load(services)
    assert waiting.state == State.DRAFTED.value and waiting.slack_ts is None and waiting.card_unconfirmed_at
    assert len(cards_of(slack, waiting.id)) == 1

    poll_once(services)

    carded = load(services)
    [card] = cards_of(slack, carded.id)
    assert (carded.state, carded.slack_ts, carded.card_unconfirmed_at) == (State.CARDED.value, card["ts"], None)
    assert len(slack.calls_to("chat.postMessage")) == 1
    history = slack.last("conversations.history")
    assert history["include_all_metadata"] in ("1", "true", True) and float(history["oldest"]) > 0
    with services.db.session() as session:
        assert session.query(AuditEvent).filter_by(action="card_found").count() == 1


def test_the_history_is_read_a_few_pages_back_by_its_cursor(services, slack, model, bluesky):
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    slack.lose_answers("chat.postMessage")
    poll_once(services)
    for i in range(150):  # people talk in the channel meanwhile: the card is now on the second page
        slack.messages[("C_REVIEW", f"1800000000.{i:06d}")] = {"type": "message", "channel": "C_REVIEW", "ts": f"1800000000.{i:06d}",
                                                               "text": f"chat {i}", "user": "U_PERSON"}

    poll_once(services)

    assert len(cards_of(slack, load(services).id)) == 1 and load(services).slack_ts
    cursors = [c.get("cursor") for c in slack.calls_to("conversations.history")]
    assert cursors[0] is None and cursors[1]  # the second page came from next_cursor


def test_a_lost_answer_and_no_card_in_the_history_posts_it_once(services, slack, model, bluesky):
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    slack.fail_next("chat.postMessage", error="fatal_error", status=502)  # nothing stored this time

    poll_once(services)
    poll_once(services)

    assert len(cards_of(slack, load(services).id)) == 1 and load(services).slack_ts
    assert len(slack.calls_to("conversations.history")) == 1


def test_without_the_history_scope_the_card_is_still_posted(services, slack, model, bluesky, caplog):
    slack.bot_scopes = [s for s in slack.bot_scopes if not s.endswith(":history")]  # app not reinstalled yet
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    slack.fail_next("chat.postMessage", error="fatal_error", status=502)
    poll_once(services)

    poll_once(services)

    assert load(services).slack_ts
    assert "could not look for an earlier post of its card" in caplog.text and "missing_scope" in caplog.text


def test_a_card_in_a_thread_is_looked_for_in_that_thread(services, slack):
    """A later turn's card is posted in the first card's thread, where the channel's history does not show it."""
    publisher, metadata = services.publisher, {"event_type": CARD, "event_payload": {"conversation_id": 42}}
    channel, parent = publisher.post({"text": "the first turn's card"})
    publisher.post({"text": "the second turn's card", "metadata": metadata}, channel=channel, thread_ts=parent)
    since = utcnow().timestamp()

    assert publisher.find(metadata, since=since, channel=channel) is None
    found = publisher.find(metadata, since=since, channel=channel, thread_ts=parent)
    assert found and slack.messages[(channel, found)]["thread_ts"] == parent
    assert slack.last("conversations.replies")["ts"] == parent


def test_a_burst_card_whose_answer_was_lost_is_found_not_posted_twice(services, slack, model, bluesky):
    outage(bluesky, model, count=6)
    slack.lose_answers("chat.postMessage")

    poll_once(services)
    with services.db.session() as session:
        burst = session.query(Burst).one()
    assert burst.slack_ts is None and burst.slack_channel.startswith("unconfirmed:")

    poll_once(services)

    with services.db.session() as session:
        burst = session.query(Burst).one()
        members = session.query(Conversation).filter(Conversation.burst_id == burst.id).all()
    burst_cards = [m for m in slack.messages.values()
                   if (m.get("metadata") or {}) == {"event_type": "conversant_burst_card", "event_payload": {"burst_id": burst.id}}]
    assert [m["ts"] for m in burst_cards] == [burst.slack_ts]
    assert {m.state for m in members} == {State.CARDED.value} and {m.slack_ts for m in members} == {burst.slack_ts}
    assert len(slack.calls_to("chat.postMessage")) == 1


def run_poller(env: dict, cwd) -> subprocess.Popen:
    return CliPopen(["poll", "--once"], env={**os.environ, **env}, cwd=cwd,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_crash_after_the_post_and_before_the_commit_leaves_one_card_after_a_restart(env, services, slack, model, bluesky, tmp_path):
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    release = slack.hold_answers("chat.postMessage")  # the card is stored; the answer never comes back

    poller = run_poller(env, tmp_path)
    assert slack.held_arrived.wait(60), poller.stdout.read() if poller.poll() is not None else "no card was posted"
    poller.send_signal(signal.SIGKILL)  # dies between chat.postMessage and the database commit
    poller.wait(10)
    release.set()
    crashed = load(services)
    assert crashed.state == State.CARDED.value and crashed.slack_ts is None

    with services.db.session() as session:  # its lease runs out: nobody renews it any more
        session.execute(update(Conversation).values(carding_since=utcnow() - timedelta(hours=1)))
    poll_once(services)  # the restart

    done = load(services)
    [card] = cards_of(slack, done.id)
    assert (done.state, done.slack_ts) == (State.CARDED.value, card["ts"])
    assert len(slack.calls_to("chat.postMessage")) == 1
