"""Mastodon mentions pushed by the user notification stream become cards at once; reconnects backfill."""
from __future__ import annotations

import textwrap
from contextlib import contextmanager

import pytest

from bot.slack.payloads import ActionId
from bot.ingest import load_cursors
from bot.models import Conversation, State, utcnow
from bot.pipeline import poll_once
from bot.platforms.streams.registry import account_streams
from bot.slack.commands import status_text
from bot.streaming import Carder, StreamRunner, ingest_lines, read_states, start_streams
from tests.conftest import eventually, serve_web, triage
from tests.fakes.mastodon_streaming import FakeMastodonStreaming
from tests.support import card_text, click

TOKEN = "mastodon-token"


@pytest.fixture
def mastodon():
    with FakeMastodonStreaming() as fake:
        fake.add_account("brand", display_name="Brand", token=TOKEN)
        fake.add_account("alice", display_name="Alice")
        fake.add_account("bob", display_name="Bob")
        yield fake


@pytest.fixture
def streaming(make_services, mastodon):
    started = []

    @contextmanager
    def run(services=None):
        services = services or make_services(BLUESKY_HANDLE="", BLUESKY_APP_PASSWORD="",
                                             MASTODON_API_BASE_URL=mastodon.base_url, MASTODON_ACCESS_TOKEN=TOKEN)
        [(_, stream)] = account_streams(services.settings, services.brand)
        carder = Carder(services).start()
        runner = StreamRunner(services, stream, on_new=carder.wake, backoff=(0.05,)).start()
        started.append((runner, carder))
        try:
            yield services, runner
        finally:
            runner.stop()
            carder.stop()

    yield run
    for runner, carder in started:
        runner.stop()
        carder.stop()


def cards(slack, needle: str) -> list[dict]:
    return [c for c in slack.calls_to("chat.postMessage") if c.get("blocks") and needle in card_text(c)]


def conversations(services) -> list[Conversation]:
    with services.db.session() as session:
        return session.query(Conversation).order_by(Conversation.id).all()


def test_a_mention_is_carded_as_it_arrives_and_approve_replies_in_the_thread(streaming, mastodon, slack, model):
    model.reply_with(triage("Sorry about that! Which version are you on?"))
    with streaming() as (services, runner):
        eventually(lambda: mastodon.streaming)
        mention = mastodon.post("alice", "@brand my export is stuck")

        [card] = eventually(lambda: cards(slack, "my export is stuck"))  # no poll cycle ran

        assert "@alice" in card_text(card)
        # the card is posted a moment before its ts is stored: a click needs the stored card
        [conversation] = eventually(lambda: [c for c in conversations(services) if c.state == State.CARDED.value and c.slack_ts])
        assert conversation.external_id == mention
        with serve_web(services) as web:
            assert click(web, ActionId.APPROVE, conversation)[0] == 200
            [reply] = eventually(lambda: mastodon.created("brand"))
        assert reply.in_reply_to_id == mention and reply.text.startswith("@alice ")
        request = mastodon.stream_requests[0]
        assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_reconnect_backfills_what_came_while_the_stream_was_closed_without_repeats(streaming, mastodon, slack, model):
    model.reply_with(triage("Thanks!"))
    with streaming() as (services, runner):
        eventually(lambda: mastodon.streaming)
        mastodon.post("alice", "@brand before the drop")
        eventually(lambda: cards(slack, "before the drop"))
        mastodon.streaming_down = True
        mastodon.drop_streams()
        eventually(lambda: len(mastodon.stream_requests) >= 3)  # it keeps trying
        mastodon.post("bob", "@brand while the stream was closed")  # pushed to nobody
        mastodon.post("bob", "some other post")
        mastodon.streaming_down = False
        eventually(lambda: cards(slack, "while the stream was closed"))
        mastodon.post("alice", "@brand after the reconnect")
        eventually(lambda: cards(slack, "after the reconnect"))
        poll_once(services)  # the poll meets the stream's mentions without duplicates
    assert len(cards(slack, "before the drop")) == 1
    assert len(conversations(services)) == 3
    with services.db.session() as session:
        cursor = load_cursors(session, "mastodon")["stream:mastodon"]
    assert cursor["min_id"] == max((n.id for n in mastodon.notifications), key=int)


def test_a_restart_resumes_from_the_stored_cursor(streaming, mastodon, slack, model):
    model.reply_with(triage("Thanks!"))
    with streaming() as (services, runner):
        eventually(lambda: mastodon.streaming)
        mastodon.post("alice", "@brand first")
        eventually(lambda: cards(slack, "first"))
    eventually(lambda: not mastodon.streaming)
    mastodon.post("bob", "@brand while Conversant was stopped")
    with streaming(services) as (services, runner):
        eventually(lambda: cards(slack, "while Conversant was stopped"))
        assert runner.gap_polls == 0  # the backfill covered it
    assert len(cards(slack, "first")) == 1 and len(conversations(services)) == 2


def test_a_refused_stream_falls_back_to_polling_with_one_notice(streaming, mastodon, slack, model):
    model.reply_with(triage("Thanks!"))
    mastodon.streaming_down = True
    with streaming() as (services, runner):
        eventually(lambda: runner._failures >= 5)
        notices = [m["text"] for m in slack.calls_to("chat.postMessage") if not m.get("blocks")]
        assert len(notices) == 1 and "Mastodon" in notices[0] and "polls every" in notices[0]
        assert read_states(services)["mastodon"].state == "polling"
        assert "mastodon-token" not in notices[0]
        mastodon.streaming_down = False
        eventually(lambda: read_states(services)["mastodon"].state == "streaming")
        mastodon.post("alice", "@brand back again")
        eventually(lambda: cards(slack, "back again"))


def test_doctor_checks_the_streaming_api(make_services, mastodon):
    from bot.doctor import run_doctor

    services = make_services(BLUESKY_HANDLE="", BLUESKY_APP_PASSWORD="", MASTODON_API_BASE_URL=mastodon.base_url, MASTODON_ACCESS_TOKEN=TOKEN)
    lines: list[str] = []
    run_doctor(services.settings, out=lines.append)
    assert any(line.startswith("  ok    Mastodon stream (mastodon): Mastodon streaming answers") for line in lines)
    assert any(r.path == "/api/v1/streaming/health" for r in mastodon.requests)


TWO_ACCOUNTS = """
    [[accounts]]
    id = "main"
    platform = "mastodon"
    handle = "brand"
    credentials = { MASTODON_API_BASE_URL = "FEDI_URL", MASTODON_ACCESS_TOKEN = "MAIN_TOKEN" }

    [[accounts]]
    id = "help"
    platform = "mastodon"
    handle = "brandhelp"
    credentials = { MASTODON_API_BASE_URL = "FEDI_URL", MASTODON_ACCESS_TOKEN = "HELP_TOKEN" }
"""


def test_each_mastodon_account_is_streamed_on_its_own_token(make_services, mastodon, slack, model, tmp_path):
    mastodon.add_account("brandhelp", display_name="Brand Help", token="help-token")
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(textwrap.dedent(TWO_ACCOUNTS), encoding="utf-8")
    services = make_services(BLUESKY_HANDLE="", BLUESKY_APP_PASSWORD="", CONVERSANT_ACCOUNTS=str(accounts),
                             FEDI_URL=mastodon.base_url, MAIN_TOKEN=TOKEN, HELP_TOKEN="help-token")
    model.reply_with(triage("Thanks!"))
    streams = start_streams(services)
    try:
        eventually(lambda: mastodon.streaming == 2)  # one stream per account's token
        mastodon.post("alice", "@brand the main account, streamed")
        mastodon.post("bob", "@brandhelp the help account, streamed")
        eventually(lambda: cards(slack, "main account, streamed") and cards(slack, "help account, streamed"))
        assert {c.text.split(",")[0]: c.account for c in conversations(services)} == {
            "@brand the main account": "main", "@brandhelp the help account": "help"}
        eventually(lambda: all(line.startswith("streaming (mastodon)") for line in ingest_lines(services, utcnow()).values()))
        status = status_text(services)
        assert "Mastodon @brand: working · streaming (mastodon)" in status
        assert "Mastodon @brandhelp: working · streaming (mastodon)" in status
    finally:
        streams.stop()
