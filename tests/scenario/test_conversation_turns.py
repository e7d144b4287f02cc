"""A conversation, not a broadcast: follow-ups stay in one Slack thread, each turn drafted with the ones before."""
from __future__ import annotations

import json

import pytest

from bot import decision, flows
from bot.models import Conversation, State
from bot.pipeline import poll_once
from bot.platforms.mastodon import MastodonPlatform
from tests.conftest import triage
from tests.fakes.mastodon_api import FakeMastodon
from tests.support import card_buttons, card_text


class BlueskyThread:
    """Alice and the brand talking on the Bluesky fake."""

    def __init__(self, bluesky) -> None:
        self.fake = bluesky
        self.platforms = None  # the env's Bluesky settings build the adapter

    def alice_says(self, text: str, reply_to: str | None = None) -> str:
        return self.fake.post("alice.test", text if reply_to else f"@brand.test {text}", reply_to=reply_to)

    def brand_replies(self) -> list[tuple[str, str]]:
        return [(r.value["text"], r.value["reply"]["parent"]["uri"]) for r in self.fake.created("brand.test")]


class MastodonThread:
    """Alice and the brand talking on the Mastodon fake."""

    def __init__(self, fake: FakeMastodon) -> None:
        self.fake = fake
        self.platforms = {"mastodon": MastodonPlatform(fake.base_url, "brand-token", timeout=5)}

    def alice_says(self, text: str, reply_to: str | None = None) -> str:
        return self.fake.post("alice", f"@brand {text}", in_reply_to=reply_to)

    def brand_replies(self) -> list[tuple[str, str]]:
        return [(s.text, s.in_reply_to_id) for s in self.fake.created("brand")]


@pytest.fixture(params=["bluesky", "mastodon"])
def thread(request, bluesky):
    if request.param == "bluesky":
        yield BlueskyThread(bluesky)
        return
    with FakeMastodon() as fake:
        fake.add_account("brand", display_name="Brand", token="brand-token")
        fake.add_account("alice", display_name="Alice")
        yield MastodonThread(fake)


def turns(services) -> list[Conversation]:
    with services.db.session() as session:
        return list(session.query(Conversation).order_by(Conversation.turn))


def approve_and_send(services, conversation_id: int) -> None:
    assert decision.approve(services.db, services.rules, conversation_id, "U_ALICE").done
    assert flows.send(services, conversation_id) is State.REPLIED


def last_brand_reply_id(thread) -> str:
    if isinstance(thread, BlueskyThread):
        return thread.fake.created("brand.test")[-1].uri
    return thread.fake.created("brand")[-1].id


def test_a_three_turn_conversation_stays_in_one_slack_thread(make_services, thread, slack, model):
    services = make_services(platforms=thread.platforms)
    model.reply_sequence([
        triage("Sorry to hear that! Which device are you on?"),
        triage("Thanks! On Android 14 we know of a sync bug; does restarting the app help for now?"),
        triage("Noted, both of those. We'll follow up once the fix is out. Anything else we can do meanwhile?"),
        triage("Glad it helped! Thanks for bearing with us."),
    ])

    first = thread.alice_says("sync keeps failing for me")
    poll_once(services)
    approve_and_send(services, turns(services)[0].id)

    second = thread.alice_says("Android 14, Pixel 8", reply_to=last_brand_reply_id(thread))
    poll_once(services)

    one, two = turns(services)
    assert (two.turn, two.first_turn_id) == (2, one.id)
    turn_card = slack.calls_to("chat.postMessage")[-1]
    assert turn_card["thread_ts"] == one.slack_ts and "Turn 2" in card_text(turn_card)
    header = card_text(slack.last("chat.update"))
    assert "2 turns" in header and "waiting for review" in header
    # the draft for turn 2 was written with turn 1 and our reply in view
    prompt = model.chat_requests()[-1]["messages"][-1]["content"]
    data = json.loads(prompt.split("<untrusted_mention>", 1)[1].split("</untrusted_mention>")[0])
    assert data["thread_so_far"][0]["said"].endswith("sync keeps failing for me")
    assert data["thread_so_far"][0]["we_replied"].endswith("Which device are you on?")

    # turn 3 arrives before anyone answered turn 2: turn 2's draft is now stale
    third = thread.alice_says("also the widget is blank", reply_to=second)
    poll_once(services)
    one, two, three = turns(services)
    assert two.draft_stale and not three.draft_stale
    stale_card = next(c for c in reversed(slack.calls_to("chat.update")) if c["ts"] == two.slack_ts)
    assert "Approve" not in card_buttons(stale_card) and "out of date" in card_text(stale_card)
    assert not decision.approve(services.db, services.rules, two.id, "U_ALICE").done
    data = json.loads(model.chat_requests()[-1]["messages"][-1]["content"].split("<untrusted_mention>", 1)[1].split("</untrusted_mention>")[0])
    assert data["thread_so_far"][-1]["said"].endswith("Android 14, Pixel 8")  # the unanswered turn 2 is read too

    approve_and_send(services, three.id)
    assert slack.calls_to("chat.postMessage")[-1]["thread_ts"] == one.slack_ts
    assert len({c.get("thread_ts") for c in slack.calls_to("chat.postMessage") if c.get("thread_ts")}) == 1
    replies = thread.brand_replies()
    assert [parent for _, parent in replies] == [first, third]
    header = card_text(next(c for c in reversed(slack.calls_to("chat.update")) if c["ts"] == one.slack_ts))
    assert "3 turns" in header and "replied" in header
