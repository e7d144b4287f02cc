"""Conversant against the AT Protocol's reference PDS and AppView, driven as an operator would.

The network lives for the whole session, so every test tags its posts with a
token of its own and looks only at the cards that carry it.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from atproto import models

from bot.slack.payloads import REPLY_BLOCK, REPLY_INPUT, ActionId, ModalId
from bot.config import load_settings
from bot.db import migrate
from bot.models import Conversation, State
from bot.pipeline import poll_once
from bot.platforms.base import Rejected
from bot.platforms.bluesky import BlueskyPlatform
from bot.policy import check
from bot.services import build_services
from tests.conftest import eventually, serve_web, triage
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import plain_text_value
from tests.integration.bsky_network import post_mention
from tests.support import card_buttons, card_text, click, press, submit


class Operator:
    """An installation of Conversant pointed at the local network, with Slack and the model faked."""

    def __init__(self, network, tmp_path, slack: FakeSlack, model: FakeOpenAI) -> None:
        self.network, self.slack, self.model = network, slack, model
        self.env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'conversant.db'}",
            "SLACK_BOT_TOKEN": "xoxb-integration", "SLACK_SIGNING_SECRET": "test-signing-secret-0123456789",
            "SLACK_API_URL": slack.api_url, "SLACK_REVIEW_CHANNEL": "C_REVIEW",
            "OPENAI_API_KEY": "sk-integration", "OPENAI_BASE_URL": model.api_url,
            "BRAND_NAME": "Brand", "BRAND_KEYWORDS": "Conversantly", "BRAND_ALLOWED_DOMAINS": "brand.example",
            "BLUESKY_HANDLE": "brand.test", "BLUESKY_APP_PASSWORD": network.accounts["brand.test"][1],
            "BLUESKY_PDS_URL": network.pds_url,
        }
        self.cwd = tmp_path
        migrate(self.env["DATABASE_URL"])
        self.services = build_services(load_settings(self.env, dotenv_path="/nonexistent/.env"))

    def poll_in_a_new_process(self) -> str:
        result = subprocess.run([sys.executable, "-m", "bot", "poll", "--once"], env={**os.environ, **self.env},
                                cwd=self.cwd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def cards(self, token: str) -> list[dict]:
        return [c for c in self.slack.calls_to("chat.postMessage") if token in card_text(c)]

    def conversation(self, external_id: str) -> Conversation:
        with self.services.db.session() as session:
            return session.query(Conversation).filter_by(external_id=external_id).one()


@pytest.fixture
def operator(bsky_network, tmp_path):
    with FakeSlack() as slack, FakeOpenAI() as model:
        model.reply_with(triage("Thanks for saying hi! What are you working on?"))
        operator = Operator(bsky_network, tmp_path, slack, model)
        yield operator
        operator.services.db.dispose()


def strong_ref(ref: dict) -> tuple[str, str]:
    return ref["uri"], ref["cid"]


def token() -> str:
    return secrets.token_hex(4)


def test_a_mention_becomes_one_card_and_approve_threads_the_reply_in_the_appview(operator, bsky_network):
    tag = token()
    alice = bsky_network.login("alice.test")
    mention = post_mention(alice, f"@brand.test hello from a real PDS {tag}")
    bsky_network.process_all()

    poll_once(operator.services)

    [card] = operator.cards(tag)
    assert card_buttons(card) == ["Approve", "Reply privately", "Edit", "Dismiss"]
    conv = operator.conversation(mention.uri)
    with serve_web(operator.services) as web:
        assert click(web, ActionId.APPROVE, conv)[0] == 200
        eventually(lambda: operator.conversation(mention.uri).state == State.REPLIED.value, timeout=30)
    bsky_network.process_all()

    thread = bsky_network.appview_thread(mention.uri)["thread"]
    [reply] = thread["replies"]
    assert reply["post"]["author"]["handle"] == "brand.test"
    assert reply["post"]["record"]["text"] == "Thanks for saying hi! What are you working on?"
    refs = reply["post"]["record"]["reply"]
    assert strong_ref(refs["root"]) == strong_ref(refs["parent"]) == (mention.uri, mention.cid)
    assert operator.conversation(mention.uri).reply_url.endswith(reply["post"]["uri"].rsplit("/", 1)[1])


def test_a_mention_deep_in_a_thread_gets_the_threads_root_and_its_own_parent(operator, bsky_network):
    tag = token()
    alice, bob = bsky_network.login("alice.test"), bsky_network.login("bob.test")
    root = bob.send_post(f"Which tools do you use? {tag}")
    root_ref = models.create_strong_ref(root)
    middle = alice.send_post("A few", reply_to=models.AppBskyFeedPost.ReplyRef(root=root_ref, parent=root_ref))
    deep = post_mention(alice, f"and @brand.test for notes {tag}")  # a top-level mention...
    # Without a mention facet the brand would get no notification: only the ancestors' authors do.
    deeper = post_mention(alice, f"@brand.test also here {tag}", reply_to=models.AppBskyFeedPost.ReplyRef(
        root=root_ref, parent=models.create_strong_ref(middle)))
    bsky_network.process_all()

    poll_once(operator.services)

    conv = operator.conversation(deeper.uri)
    assert conv.parent_text == "A few"
    assert operator.conversation(deep.uri).thread_ref["root"]["uri"] == deep.uri
    with serve_web(operator.services) as web:
        click(web, ActionId.APPROVE, conv)
        eventually(lambda: operator.conversation(deeper.uri).state == State.REPLIED.value, timeout=30)
    bsky_network.process_all()
    thread = bsky_network.appview_thread(deeper.uri)["thread"]
    refs = thread["replies"][0]["post"]["record"]["reply"]
    assert strong_ref(refs["root"]) == (root.uri, root.cid)
    assert strong_ref(refs["parent"]) == (deeper.uri, deeper.cid)
    assert thread["parent"]["post"]["uri"] == middle.uri


def test_emoji_cjk_and_a_link_get_the_right_byte_offsets_and_the_limit_agrees(operator, bsky_network):
    tag = token()
    mention = post_mention(bsky_network.login("alice.test"), f"@brand.test 你好 {tag}")
    bsky_network.process_all()
    poll_once(operator.services)
    conv = operator.conversation(mention.uri)
    text = "ありがとう 🙏🏽 See https://brand.example/help?q=1 for more 🎉"

    with serve_web(operator.services) as web:
        submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, text))
        eventually(lambda: operator.conversation(mention.uri).state == State.REPLIED.value, timeout=30)
    bsky_network.process_all()

    record = bsky_network.appview_thread(mention.uri)["thread"]["replies"][0]["post"]["record"]
    [link] = record["facets"]
    encoded = text.encode()
    assert encoded[link["index"]["byteStart"]:link["index"]["byteEnd"]] == b"https://brand.example/help?q=1"
    assert link["features"][0] == {"$type": "app.bsky.richtext.facet#link", "uri": "https://brand.example/help?q=1"}

    # The preflight and the PDS agree at the boundary: 300 graphemes pass, 301 do not.
    rules = operator.services.rules.reply(conv)
    at_limit = "👍🏽" * 150 + "字" * 150
    assert check(at_limit, rules) == [] and check(at_limit + "!", rules) != []
    adapter: BlueskyPlatform = operator.services.platforms["bluesky"]
    adapter.post_reply(conv.thread_ref, at_limit, idempotency_key="boundary")
    with pytest.raises(Rejected, match="grapheme"):
        adapter.post_reply(conv.thread_ref, at_limit + "!", idempotency_key="boundary+1")


def test_a_mention_the_brand_answered_natively_gets_no_card(operator, bsky_network):
    tag = token()
    mention = post_mention(bsky_network.login("alice.test"), f"@brand.test quick one {tag}")
    ref = models.create_strong_ref(mention)
    bsky_network.login("brand.test").send_post("Answered in the app", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
    bsky_network.process_all()

    poll_once(operator.services)

    assert operator.cards(tag) == []
    assert operator.conversation(mention.uri).state == State.ANSWERED_ELSEWHERE.value


def test_replies_and_quotes_make_cards_likes_and_follows_do_not(operator, bsky_network):
    tag = token()
    brand, bob = bsky_network.login("brand.test"), bsky_network.login("bob.test")
    announcement = brand.send_post(f"We launched a thing {tag}")
    ref = models.create_strong_ref(announcement)
    # The AppView indexes each repo's events in its own queue: a reply processed before its
    # parent gets no reply notification. People reply to posts they have seen, so let it index.
    bsky_network.process_all()
    reply = bob.send_post(f"Congrats! Does it work offline? {tag}", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
    quote = bob.send_post(f"Look at this {tag}", embed=models.AppBskyEmbedRecord.Main(record=ref))
    bob.like(announcement.uri, announcement.cid)
    bob.follow(bsky_network.accounts["brand.test"][0])
    bsky_network.process_all()

    poll_once(operator.services)

    assert len(operator.cards(tag)) == 2
    assert operator.conversation(reply.uri).reason == "reply"
    assert operator.conversation(reply.uri).parent_text == f"We launched a thing {tag}"
    assert operator.conversation(quote.uri).reason == "quote"


def test_a_restart_between_polls_neither_misses_nor_repeats(operator, bsky_network):
    tag = token()
    alice = bsky_network.login("alice.test")
    first = post_mention(alice, f"@brand.test first {tag}")
    bsky_network.process_all()
    operator.poll_in_a_new_process()
    second = post_mention(alice, f"@brand.test second {tag}")
    bsky_network.process_all()
    operator.poll_in_a_new_process()
    operator.poll_in_a_new_process()

    texts = [card_text(c) for c in operator.cards(tag)]
    assert len(texts) == 2
    assert sum(f"first {tag}" in t for t in texts) == 1 and sum(f"second {tag}" in t for t in texts) == 1
    assert {operator.conversation(first.uri).state, operator.conversation(second.uri).state} == {State.CARDED.value}
    brand = bsky_network.login("brand.test")
    assert brand.app.bsky.notification.get_unread_count().count == 0  # updateSeen reached the real server


def test_keyword_search_finds_a_post_that_does_not_tag_the_brand(operator, bsky_network):
    tag = token()
    post = bsky_network.login("bob.test").send_post(f"Has anyone tried Conversantly for this? {tag}")
    bsky_network.process_all()

    poll_once(operator.services)

    [card] = operator.cards(tag)
    assert "talked about the brand" in card_text(card)
    assert operator.conversation(post.uri).reason == "keyword"


def test_a_post_deleted_after_its_card_closes_the_card_and_approve_posts_nothing(operator, bsky_network):
    tag = token()
    alice = bsky_network.login("alice.test")
    mention = post_mention(alice, f"@brand.test never mind {tag}")
    bsky_network.process_all()
    poll_once(operator.services)
    conv = operator.conversation(mention.uri)
    alice.delete_post(mention.uri)
    bsky_network.process_all()

    with serve_web(operator.services) as web:
        click(web, ActionId.APPROVE, conv)
        eventually(lambda: operator.conversation(mention.uri).state == State.DELETED.value, timeout=30)
    assert "Deleted by the author" in card_text(operator.slack.last("chat.update"))
    brand_posts = bsky_network.login("brand.test").get_author_feed(bsky_network.accounts["brand.test"][0]).feed
    assert not any(tag in getattr(item.post.record, "text", "") for item in brand_posts)


def test_a_follow_up_on_the_real_servers_is_the_next_turn_in_the_same_slack_thread(operator, bsky_network):
    tag = token()
    alice = bsky_network.login("alice.test")
    mention = post_mention(alice, f"@brand.test does sync work offline? {tag}")
    bsky_network.process_all()
    poll_once(operator.services)
    first = operator.conversation(mention.uri)
    with serve_web(operator.services) as web:
        click(web, ActionId.APPROVE, first)
        eventually(lambda: operator.conversation(mention.uri).state == State.REPLIED.value, timeout=30)
    bsky_network.process_all()
    brand_reply = bsky_network.appview_thread(mention.uri)["thread"]["replies"][0]["post"]

    follow_up = alice.send_post(f"Thanks! And on Android? {tag}", reply_to=models.AppBskyFeedPost.ReplyRef(
        root=models.create_strong_ref(mention),
        parent=models.ComAtprotoRepoStrongRef.Main(uri=brand_reply["uri"], cid=brand_reply["cid"])))
    bsky_network.process_all()
    operator.model.reply_with(triage("Yes, Android too. Which version are you on?"))
    poll_once(operator.services)

    second = operator.conversation(follow_up.uri)
    assert (second.reason, second.turn, second.first_turn_id) == ("reply", 2, first.id)
    turn_card = operator.slack.calls_to("chat.postMessage")[-1]
    assert turn_card["thread_ts"] == first.slack_ts
    prompt = operator.model.chat_requests()[-1]["messages"][-1]["content"]
    assert "does sync work offline?" in prompt and "Thanks for saying hi!" in prompt  # turn 1 and our reply


def test_a_burst_on_the_real_servers_is_one_card_and_one_reply_each(operator, bsky_network):
    tag = token()
    people = [bsky_network.login("alice.test"), bsky_network.login("bob.test")]
    mentions = [post_mention(people[i % 2], f"@brand.test is the status page down? cannot reach it {tag} {'!' * i}") for i in range(5)]
    bsky_network.process_all()

    poll_once(operator.services)

    cards = [c for c in operator.slack.calls_to("chat.postMessage") if tag in card_text(c)]
    assert len(cards) == 1 and "5 similar mentions" in cards[0]["text"]
    burst_id = operator.conversation(mentions[0].uri).burst_id
    with serve_web(operator.services) as web:
        press(operator.services, web, ActionId.APPROVE_ALL, burst_id)
        eventually(lambda: all(operator.conversation(m.uri).state == State.REPLIED.value for m in mentions), timeout=60)
    bsky_network.process_all()
    for mention in mentions:
        [reply] = bsky_network.appview_thread(mention.uri)["thread"]["replies"]
        assert reply["post"]["author"]["handle"] == "brand.test"
