"""A brand with two Bluesky accounts, a Mastodon account and a Reddit account, three routes and a
default, end to end against the fakes: each account logs in and reads on its own, a post naming
two accounts is one card, cards and nudges and digests follow the routes, and the card's
"Reply as" menu makes another account post the reply."""
from __future__ import annotations

import json
import textwrap
from datetime import timedelta

import pytest

from bot.config import load_settings
from bot.doctor import run_doctor
from bot.jobs.digest import send_digest
from bot.jobs.nudges import nudge_once
from bot.models import Conversation, PlatformCursor, State
from bot.pipeline import poll_once
from bot.slack.commands import status_text
from bot.slack.payloads import ActionId, conversation_value
from bot.slack.views import ESCALATE_AT
from tests.conftest import SIGNING_SECRET, eventually, serve_web, triage
from tests.fakes.mastodon_api import FakeMastodon
from tests.fakes.reddit_api import FakeReddit
from tests.fakes.slack_requests import block_actions_body, post_signed
from tests.support import card_text

ACCOUNTS = """
    [[accounts]]
    id = "main"
    platform = "bluesky"
    display_name = "Brand"
    review_channel = "C_SOCIAL"
    credentials = { BLUESKY_HANDLE = "MAIN_HANDLE", BLUESKY_APP_PASSWORD = "MAIN_PASSWORD", BLUESKY_PDS_URL = "PDS_URL" }

    [[accounts]]
    id = "help"
    platform = "bluesky"
    display_name = "Brand Help"
    review_channel = "C_HELP"
    keywords = ["brandapp"]
    voice = "help-voice.md"
    credentials = { BLUESKY_HANDLE = "HELP_HANDLE", BLUESKY_APP_PASSWORD = "HELP_PASSWORD", BLUESKY_PDS_URL = "PDS_URL" }

    [[accounts]]
    id = "fedi"
    platform = "mastodon"
    handle = "brand"
    credentials = { MASTODON_API_BASE_URL = "FEDI_URL", MASTODON_ACCESS_TOKEN = "FEDI_TOKEN" }

    [[accounts]]
    id = "reddit"
    platform = "reddit"
    credentials = { REDDIT_CLIENT_ID = "R_ID", REDDIT_CLIENT_SECRET = "R_SECRET", REDDIT_USERNAME = "R_USER", REDDIT_PASSWORD = "R_PASSWORD" }

    [[routes]]
    name = "complaints"
    category = "complaint"
    channel = "C_SUPPORT"
    oncall = "S_SUPPORT"

    [[routes]]
    name = "press"
    keyword = ["journalist", "reporter"]
    channel = "C_PRESS"
    oncall = "U_PRESS"

    [[routes]]
    name = "german"
    language = "de"
    channel = "C_DACH"

    [default_route]
    oncall = "U_LEAD"
"""


@pytest.fixture
def brand_env(env, bluesky, slack, tmp_path):
    """The workspace: the fakes with the brand's four accounts, and the environment naming the accounts file."""
    bluesky.add_account("brandhelp.test", password="help-app-password", display_name="Brand Help")
    slack.channels |= {"C_SOCIAL", "C_HELP", "C_SUPPORT", "C_PRESS", "C_DACH", "C_LEAD"}
    with FakeMastodon() as mastodon, FakeReddit(client_id="app-id", client_secret="app-secret") as reddit:
        mastodon.add_account("brand", display_name="Brand", token="fedi-token")
        mastodon.add_account("carol")
        reddit.add_user("BrandCo", password="reddit-password")
        reddit.add_user("dave")
        path = tmp_path / "accounts.toml"
        path.write_text(textwrap.dedent(ACCOUNTS), encoding="utf-8")
        (tmp_path / "help-voice.md").write_text("You are {brand}'s help desk: calm, exact, one step at a time.", encoding="utf-8")
        overrides = dict(
            CONVERSANT_ACCOUNTS=str(path), MASTODON_STREAM="OFF", SLACK_DIGEST_CHANNEL="C_LEAD", SLACK_ONCALL="U_ANYONE", REVIEW_SLA_MINUTES="30",
            MAIN_HANDLE="brand.test", MAIN_PASSWORD="brand-app-password", PDS_URL=bluesky.base_url,
            HELP_HANDLE="brandhelp.test", HELP_PASSWORD="help-app-password",
            FEDI_URL=mastodon.base_url, FEDI_TOKEN="fedi-token",
            R_ID="app-id", R_SECRET="app-secret", R_USER="BrandCo", R_PASSWORD="reddit-password",
            REDDIT_USER_AGENT="test:conversant:v1 (by /u/BrandCo)", REDDIT_API_BASE_URL=reddit.base_url,
            REDDIT_AUTH_BASE_URL=reddit.base_url,
        )
        yield overrides, mastodon, reddit


@pytest.fixture
def brand(brand_env, make_services):
    overrides, mastodon, reddit = brand_env
    return make_services(**overrides), mastodon, reddit


def triage_by_text(model, answers: dict[str, dict]) -> None:
    """The model triages each mention by a word in it, as a real one would by its meaning."""
    def responder(request: dict) -> dict:
        prompt = json.dumps(request)
        return next((answer for word, answer in answers.items() if word in prompt), triage())
    model.responder = responder


def click(web: str, action: ActionId, conversation: Conversation, value: str | None = None):
    """A click on the card, in the channel the card was routed to."""
    body = block_actions_body(user_id="U_ALICE", action_id=action.value, value=value or conversation_value(conversation.id),
                              message_ts=conversation.slack_ts, channel_id=conversation.slack_channel)
    return post_signed(f"{web}/slack/events", body, SIGNING_SECRET)


def by_text(services) -> dict[str, Conversation]:
    with services.db.session() as session:
        return {c.text.split()[-1]: c for c in session.query(Conversation).all()}


def cards_in(slack) -> dict[str, str]:
    """Where each card went: its last word → channel."""
    return {call["text"].split()[-1]: call["channel"]
            for call in slack.calls_to("chat.postMessage") if "mention from" in call.get("text", "")}


def test_each_conversation_is_carded_once_on_its_route_and_replied_from_the_chosen_account(brand, bluesky, slack, model):
    services, mastodon, reddit = brand
    bluesky.post("alice.test", "@brandhelp.test @brand.test the export button does nothing at all")
    bluesky.post("bob.test", "@brand.test I'm a journalist writing about the outage, statement please")
    bluesky.post("bob.test", "@brand.test die App stürzt ständig ab", langs=("de",))
    mastodon.post("carol", "@brand my order never arrived")
    post = reddit.submit("dave", "gadgets", "Export", "Which export format is best?")
    reddit.comment("dave", post, "u/BrandCo thanks, the new version is lovely")
    triage_by_text(model, {"never arrived": triage("So sorry! What's your order number?", category="complaint"),
                           "version is lovely": triage("Thank you, that made our day!", category="praise")})

    report = poll_once(services)

    # Each account logged in and read its own notifications, with its own cursors.
    assert sorted(r.platform for r in report.ingested) == ["fedi", "help", "main", "reddit"], report.summary()
    with services.db.session() as session:
        assert {row.account for row in session.query(PlatformCursor)} == {"fedi", "help", "main", "reddit"}
    status = status_text(services)  # /conversant status: one line per account
    for line in ("• Bluesky @brand.test: working", "• Bluesky @brandhelp.test: working", "• Mastodon: working", "• Reddit: working"):
        assert line in status, status
    conversations = by_text(services)
    assert len(conversations) == 5  # Alice's post reached both Bluesky accounts: one conversation
    assert cards_in(slack) == {
        "all": "C_HELP",  # names @brandhelp.test first: its account replies, on its channel (default route)
        "please": "C_PRESS",  # a keyword route
        "ab": "C_DACH",  # a language route
        "arrived": "C_SUPPORT",  # triaged a complaint
        "lovely": "C_REVIEW",  # Reddit's account has no channel of its own: SLACK_REVIEW_CHANNEL
    }
    alice = conversations["all"]
    assert (alice.account, alice.route) == ("help", "default")
    card = card_text(next(c for c in slack.calls_to("chat.postMessage") if c["channel"] == "C_HELP"))
    assert "Replying as *@brandhelp.test*" in card
    assert "Reply as @brand.test" in card
    drafted_for = lambda words: next(p for p in model.chat_requests() if words in json.dumps(p))  # noqa: E731
    assert "Brand's help desk: calm, exact" in json.dumps(drafted_for("the export button does nothing"))  # the help account's own voice
    assert "one step at a time" not in json.dumps(drafted_for("the new version is lovely"))  # the others speak in prompts/voice.md

    # Someone picks the main account in the menu, then approves: the main account posts the reply.
    with serve_web(services) as web:
        click(web, ActionId.REPLY_AS, alice, value=conversation_value(alice.id, account="main"))
        eventually(lambda: slack.calls_to("chat.update"))
        assert by_text(services)["all"].account == "main"
        assert "Replying as *@brand.test*" in card_text(slack.last("chat.update"))
        click(web, ActionId.APPROVE, by_text(services)["all"])
        eventually(lambda: by_text(services)["all"].state == State.REPLIED.value, timeout=20)
    [reply] = bluesky.created("brand.test")
    assert reply.value["reply"]["parent"]["uri"] == alice.external_id
    assert bluesky.created("brandhelp.test") == []
    eventually(lambda: "Replied as *@brand.test*" in card_text(slack.last("chat.update")))


def test_a_reply_from_any_of_the_brands_accounts_answers_the_conversation(brand, bluesky, slack, model):
    services, _mastodon, _reddit = brand
    uri = bluesky.post("alice.test", "@brand.test @brandhelp.test is the sync down?")
    bluesky.post("brandhelp.test", "Yes, we're on it!", reply_to=uri)  # answered natively by the help account
    model.reply_with(triage())

    poll_once(services)

    [conversation] = by_text(services).values()
    assert conversation.account == "main"  # @brand.test comes first
    assert conversation.state == State.ANSWERED_ELSEWHERE.value
    assert slack.calls_to("chat.postMessage") == []
    assert model.chat_requests() == []  # no draft for what the brand already answered


def test_nudges_escalations_and_digests_follow_the_routes(brand, bluesky, slack, model):
    services, mastodon, _reddit = brand
    bluesky.post("alice.test", "@brandhelp.test where is the export button")
    mastodon.post("carol", "@brand my order never arrived")
    triage_by_text(model, {"never arrived": triage("So sorry! What's your order number?", category="complaint")})
    poll_once(services)
    conversations = by_text(services)
    posted = max(c.posted_at for c in conversations.values())

    report = nudge_once(services, now=posted + timedelta(minutes=31))

    assert len(report.nudged) == 2
    nudges = {call["channel"]: call["text"] for call in slack.calls_to("chat.postMessage") if ":alarm_clock:" in call["text"]}
    assert nudges["C_SUPPORT"].startswith("<!subteam^S_SUPPORT> :alarm_clock:")  # the complaints route's on-call
    assert nudges["C_HELP"].startswith("<@U_LEAD> :alarm_clock:")  # the default route's on-call, not SLACK_ONCALL
    late = nudge_once(services, now=posted + timedelta(minutes=ESCALATE_AT * 30 + 1))
    assert len(late.escalated) == 2
    escalations = {call["channel"] for call in slack.calls_to("chat.postMessage") if "Escalation" in call["text"]}
    assert escalations == {"C_SUPPORT", "C_LEAD"}  # the complaints route's channel; the rest to the lead

    send_digest(services, end=posted + timedelta(hours=1))

    digests = {call["channel"]: card_text(call) for call in slack.calls_to("chat.postMessage")
               if call.get("text", "").startswith("Conversant digest")}
    assert set(digests) == {"C_LEAD", "C_SUPPORT", "C_PRESS", "C_DACH", "C_SOCIAL", "C_HELP"}
    charts = [chart["channel_id"] for chart in slack.files.values()]
    assert sorted(charts) == sorted(digests) and all(chart["size"] > 1000 for chart in slack.files.values())  # each its PNG
    assert "routed to <#C_SUPPORT>" in digests["C_SUPPORT"] and "routed to" not in digests["C_LEAD"]
    assert "Received*\\n2" in digests["C_LEAD"] and "Received*\\n1" in digests["C_SUPPORT"]
    assert "Received*\\n0" in digests["C_PRESS"]


def test_doctor_checks_each_account_and_names_it(brand_env, env, slack, model):
    overrides, _mastodon, _reddit = brand_env
    slack.channels.discard("C_DACH")
    model.reply_with(triage())
    lines: list[str] = []

    code = run_doctor(load_settings({**env, **overrides, "HELP_PASSWORD": "wrong-password"}, dotenv_path="/nonexistent/.env"),
                      out=lines.append)

    text = "\n".join(lines)
    assert code == 1
    for account in ("Bluesky account 'main'", "Mastodon account 'fedi'", "Reddit account 'reddit'"):
        assert f"  ok    {account}: " in text, text
    assert "  FAIL  Bluesky account 'help': " in text and "@brandhelp.test" in text
    assert "  ok    Slack review channel of account 'help': " in text
    assert "  FAIL  Slack channel of route 'german': " in text
    assert [line for line in lines if line.startswith("  FAIL")] == [
        line for line in lines if line.startswith(("  FAIL  Bluesky account 'help'", "  FAIL  Slack channel of route 'german'"))]
    assert "wrong-password" not in text and "help-app-password" not in text


def test_upgrading_keeps_the_cursors_of_the_single_account_configuration(database_url):
    """Migration 0012 keys the cursors by account; today's account is named after its platform."""
    from sqlalchemy import create_engine, text

    from bot.db import Database, migrate, normalise_url
    from bot.ingest import load_cursors

    migrate(database_url, "0011")
    try:
        engine = create_engine(normalise_url(database_url))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO platform_cursors (platform, feed, value, updated_at) "
                              "VALUES ('bluesky', 'notifications', '{\"seen_at\": \"2026-12-01T09:00:00Z\"}', CURRENT_TIMESTAMP)"))
        engine.dispose()
    finally:
        migrate(database_url)
    db = Database(database_url)
    with db.session() as session:
        assert load_cursors(session, "bluesky") == {"notifications": {"seen_at": "2026-12-01T09:00:00Z"}}
    db.dispose()
