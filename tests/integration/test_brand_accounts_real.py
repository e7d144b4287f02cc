"""Two real Bluesky accounts of the brand (brand.test and brandhelp.test) on the reference PDS and
AppView, configured through an accounts file: each logs in and reads its own notifications, a
post naming both is one card, another account can be chosen to reply, and a native reply from
either account counts as answered."""
from __future__ import annotations

import secrets
import textwrap

import pytest
from atproto import models

from bot.config import load_settings
from bot.db import migrate
from bot.models import Conversation, PlatformCursor, State
from bot.pipeline import poll_once
from bot.services import build_services
from bot.slack.payloads import ActionId, conversation_value
from tests.conftest import eventually, serve_web, triage
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.integration.bsky_network import post_mention
from tests.support import card_text, click

ACCOUNTS = """
    [[accounts]]
    id = "main"
    platform = "bluesky"
    credentials = { BLUESKY_HANDLE = "MAIN_HANDLE", BLUESKY_APP_PASSWORD = "MAIN_PASSWORD", BLUESKY_PDS_URL = "PDS_URL" }

    [[accounts]]
    id = "help"
    platform = "bluesky"
    credentials = { BLUESKY_HANDLE = "HELP_HANDLE", BLUESKY_APP_PASSWORD = "HELP_PASSWORD", BLUESKY_PDS_URL = "PDS_URL" }
"""


@pytest.fixture
def brand(bsky_network, tmp_path):
    with FakeSlack() as slack, FakeOpenAI() as model:
        model.reply_with(triage("Thanks for asking! Which version are you on?"))
        (tmp_path / "accounts.toml").write_text(textwrap.dedent(ACCOUNTS), encoding="utf-8")
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'conversant.db'}",
            "SLACK_BOT_TOKEN": "xoxb-integration", "SLACK_SIGNING_SECRET": "test-signing-secret-0123456789",
            "SLACK_API_URL": slack.api_url, "SLACK_REVIEW_CHANNEL": "C_REVIEW",
            "OPENAI_API_KEY": "sk-integration", "OPENAI_BASE_URL": model.api_url, "BRAND_NAME": "Brand",
            "BLUESKY_STREAM": "off", "CONVERSANT_ACCOUNTS": str(tmp_path / "accounts.toml"), "PDS_URL": bsky_network.pds_url,
            "MAIN_HANDLE": "brand.test", "MAIN_PASSWORD": bsky_network.accounts["brand.test"][1],
            "HELP_HANDLE": "brandhelp.test", "HELP_PASSWORD": bsky_network.accounts["brandhelp.test"][1],
        }
        migrate(env["DATABASE_URL"])
        services = build_services(load_settings(env, dotenv_path="/nonexistent/.env"))
        yield services, slack
        services.db.dispose()


def conversations(services, tag: str) -> list[Conversation]:
    with services.db.session() as session:
        return [c for c in session.query(Conversation).all() if tag in c.text]


def test_a_post_naming_both_accounts_is_one_card_and_the_chosen_account_replies(brand, bsky_network):
    services, slack = brand
    tag = secrets.token_hex(4)
    mention = post_mention(bsky_network.login("alice.test"), f"@brandhelp.test @brand.test my sync stopped {tag}")
    bsky_network.process_all()

    report = poll_once(services)

    assert {r.platform for r in report.ingested} == {"main", "help"}, report.summary()
    assert all(r.fetched >= 1 for r in report.ingested)  # each account's own notifications had it
    with services.db.session() as session:
        assert {row.account for row in session.query(PlatformCursor)} == {"main", "help"}
    [conversation] = conversations(services, tag)
    assert conversation.account == "help"  # named first
    [card] = [c for c in slack.calls_to("chat.postMessage") if tag in card_text(c)]
    assert "Replying as *@brandhelp.test*" in card_text(card) and "Reply as @brand.test" in card_text(card)

    with serve_web(services) as web:
        click(web, ActionId.REPLY_AS, conversation, value=conversation_value(conversation.id, account="main"))
        eventually(lambda: conversations(services, tag)[0].account == "main", timeout=30)
        click(web, ActionId.APPROVE, conversations(services, tag)[0])
        eventually(lambda: conversations(services, tag)[0].state == State.REPLIED.value, timeout=30)
    bsky_network.process_all()

    [reply] = bsky_network.appview_thread(mention.uri)["thread"]["replies"]
    assert reply["post"]["author"]["handle"] == "brand.test"
    assert reply["post"]["record"]["text"] == "Thanks for asking! Which version are you on?"


def test_a_native_reply_from_the_other_account_counts_as_answered(brand, bsky_network):
    services, slack = brand
    tag = secrets.token_hex(4)
    mention = post_mention(bsky_network.login("alice.test"), f"@brand.test @brandhelp.test is the export down? {tag}")
    ref = models.create_strong_ref(mention)
    bsky_network.login("brandhelp.test").send_post("It's back up, sorry!", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
    bsky_network.process_all()

    poll_once(services)

    [conversation] = conversations(services, tag)
    assert conversation.account == "main"  # @brand.test comes first; @brandhelp.test answered
    assert conversation.state == State.ANSWERED_ELSEWHERE.value
    assert not [c for c in slack.calls_to("chat.postMessage") if tag in card_text(c)]
