"""The firehose (com.atproto.sync.subscribeRepos) of the real PDS pushes mentions that become cards at once.

Runs against the local reference servers (bsky_network.py). The network lives for the whole session,
so each test tags its posts with a token of its own and looks only at the cards that carry it.
"""
from __future__ import annotations

import secrets
from contextlib import contextmanager

import pytest

from bot.slack.payloads import ActionId
from bot.config import load_settings
from bot.db import migrate
from bot.models import Conversation, State
from bot.platforms.streams.registry import account_streams
from bot.services import build_services
from bot.streaming import Carder, StreamRunner
from tests.conftest import eventually, serve_web, triage
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.integration.bsky_network import post_mention
from tests.support import card_text, click


@pytest.fixture
def operator(bsky_network, tmp_path):
    with FakeSlack() as slack, FakeOpenAI() as model:
        model.reply_with(triage("Thanks for the mention! What are you building?"))
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'conversant.db'}",
            "SLACK_BOT_TOKEN": "xoxb-integration", "SLACK_SIGNING_SECRET": "test-signing-secret-0123456789",
            "SLACK_API_URL": slack.api_url, "SLACK_REVIEW_CHANNEL": "C_REVIEW", "SLACK_MESSAGES_PER_SECOND": "1000",
            "OPENAI_API_KEY": "sk-integration", "OPENAI_BASE_URL": model.api_url,
            "BRAND_NAME": "Brand", "BRAND_KEYWORDS": "Conversantly", "BRAND_ALLOWED_DOMAINS": "brand.example",
            "BLUESKY_HANDLE": "brand.test", "BLUESKY_APP_PASSWORD": bsky_network.accounts["brand.test"][1],
            "BLUESKY_PDS_URL": bsky_network.pds_url,
            "BLUESKY_STREAM": "firehose", "BLUESKY_FIREHOSE_URL": bsky_network.pds_url.replace("http", "ws", 1),
        }
        migrate(env["DATABASE_URL"])
        services = build_services(load_settings(env, dotenv_path="/nonexistent/.env"))
        yield services, slack, model
        services.db.dispose()


@contextmanager
def streaming(services):
    [(_, stream)] = account_streams(services.settings, services.brand)
    carder = Carder(services).start()
    runner = StreamRunner(services, stream, on_new=carder.wake, backoff=(0.2,)).start()
    try:
        yield runner
    finally:
        runner.stop()
        carder.stop()


def cards(slack, token: str) -> list[dict]:
    return [c for c in slack.calls_to("chat.postMessage") if c.get("blocks") and token in card_text(c)]


def conversation(services, uri: str) -> Conversation:
    with services.db.session() as session:
        return session.query(Conversation).filter_by(external_id=uri).one()


def test_a_mention_on_the_real_pds_is_carded_from_the_firehose_and_approve_threads_the_reply(operator, bsky_network):
    services, slack, model = operator
    token = secrets.token_hex(4)
    alice = bsky_network.login("alice.test")
    with streaming(services) as runner:
        eventually(lambda: runner.state.state == "streaming", timeout=30)
        posted = post_mention(alice, f"@brand.test the firehose should find this {token}")

        [card] = eventually(lambda: cards(slack, token), timeout=30)

        assert "@alice.test" in card_text(card)
        # the card is posted a moment before its ts is stored: a click needs the stored card
        mention = eventually(lambda: (c := conversation(services, posted.uri)).state == State.CARDED.value and c.slack_ts and c)
        assert mention.reason == "mention"
        assert mention.thread_ref["cid"] == posted.cid
        with serve_web(services) as web:
            assert click(web, ActionId.APPROVE, mention)[0] == 200
            done = eventually(lambda: conversation(services, posted.uri).state == State.REPLIED.value
                              and conversation(services, posted.uri), timeout=30)
    bsky_network.process_all()
    replies = bsky_network.appview_thread(posted.uri)["thread"]["replies"]
    assert [r["post"]["uri"] for r in replies] == [done.reply_id]
    assert replies[0]["post"]["author"]["handle"] == "brand.test"


def test_keywords_replies_and_quotes_come_through_the_firehose_too(operator, bsky_network):
    services, slack, model = operator
    token = secrets.token_hex(4)
    alice, bob, brand = (bsky_network.login(h) for h in ("alice.test", "bob.test", "brand.test"))
    brand_post = brand.send_post(f"We shipped offline mode {token}")
    with streaming(services) as runner:
        eventually(lambda: runner.state.state == "streaming", timeout=30)
        keyword = bob.send_post(f"trying conversantly today {token}")
        from atproto import models

        ref = models.create_strong_ref(brand_post)
        reply = alice.send_post(f"finally! {token}", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
        quote = bob.send_post(f"big news {token}", embed=models.AppBskyEmbedRecord.Main(record=ref))
        alice.send_post(f"nothing about anyone {token}")

        eventually(lambda: len(cards(slack, token)) == 3, timeout=30)
    reasons = {conversation(services, p.uri).reason for p in (keyword, reply, quote)}
    assert reasons == {"keyword", "reply", "quote"}


def test_a_stream_stopped_mid_flow_and_restarted_neither_misses_nor_repeats(operator, bsky_network):
    services, slack, model = operator
    token = secrets.token_hex(4)
    alice, bob = bsky_network.login("alice.test"), bsky_network.login("bob.test")
    with streaming(services) as runner:
        eventually(lambda: runner.state.state == "streaming", timeout=30)
        post_mention(alice, f"@brand.test before the stop {token}")
        eventually(lambda: cards(slack, f"before the stop {token}"), timeout=30)
    down = [post_mention(bob, f"@brand.test while stopped {n} {token}") for n in range(3)]
    with streaming(services) as runner:
        eventually(lambda: len(cards(slack, f"while stopped")) >= 3 and all(cards(slack, f"while stopped {n} {token}") for n in range(3)),
                   timeout=60)
        assert runner.gap_polls == 0  # replayed from the stored seq, no polling pass needed
    for text in [f"before the stop {token}"] + [f"while stopped {n} {token}" for n in range(3)]:
        assert len(cards(slack, text)) == 1
    assert {conversation(services, p.uri).state for p in down} == {State.CARDED.value}
