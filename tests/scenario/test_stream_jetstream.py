"""Bluesky mentions pushed by Jetstream become cards at once; cursors make restarts and gaps lossless."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.slack.payloads import ActionId
from bot.ingest import load_cursors, save_cursors
from bot.models import Conversation, State, utcnow
from bot.pipeline import STALE_CLAIM, poll_once
from bot.platforms.base import MentionGone
from bot.platforms.streams.jetstream import REWIND_US
from bot.platforms.streams.registry import account_streams
from bot.streaming import Carder, StreamRunner, read_states
from tests.cli import CliPopen
from tests.conftest import eventually, serve_web, triage
from tests.fakes.jetstream import FakeJetstream
from tests.support import card_text, click

FEED = "stream:jetstream"


@pytest.fixture
def jetstream(bluesky):
    with FakeJetstream() as fake:
        fake.follow(bluesky)
        yield fake


@pytest.fixture
def streaming(make_services, jetstream):
    """Start the Jetstream consumer and the carder as `conversant worker` does; stop them after."""
    started = []

    @contextmanager
    def run(services=None, **overrides):
        services = services or make_services(BLUESKY_STREAM="jetstream", BLUESKY_JETSTREAM_URL=jetstream.url, BRAND_KEYWORDS="Brandly", **overrides)
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


def cards(slack, needle: str = "") -> list[dict]:
    return [c for c in slack.calls_to("chat.postMessage") if c.get("blocks") and needle in card_text(c)]


def conversations(services) -> list[Conversation]:
    with services.db.session() as session:
        return session.query(Conversation).order_by(Conversation.id).all()


def test_a_mention_is_carded_as_it_arrives_and_approve_threads_the_reply(streaming, jetstream, slack, model, bluesky):
    model.reply_with(triage("Thanks Alice! Which device is it on?"))
    with streaming() as (services, runner):
        eventually(lambda: jetstream.connected)
        mention = bluesky.post("alice.test", "@brand.test my notes vanished after the update")

        [card] = eventually(lambda: cards(slack, "my notes vanished"))  # no poll cycle ran

        assert "@alice.test" in card_text(card) and "Thanks Alice!" in card_text(card)
        # the card is posted a moment before its ts is stored: a click needs the stored card
        [conversation] = eventually(lambda: [c for c in conversations(services) if c.state == State.CARDED.value and c.slack_ts])
        assert conversation.external_id == mention
        with serve_web(services) as web:
            assert click(web, ActionId.APPROVE, conversation)[0] == 200
            [reply] = eventually(lambda: bluesky.created("brand.test"))
        assert reply.value["reply"]["parent"]["uri"] == mention
        # the brand's own reply streams past too, and is not a mention
        eventually(lambda: runner.state.newest_at and runner.state.newest_at >= reply.indexed_at.isoformat()[:19])
    assert len(conversations(services)) == 1


def test_replies_quotes_links_and_keywords_are_kept_and_other_posts_are_not(streaming, jetstream, slack, model, bluesky):
    model.reply_with(triage("Thank you!"))
    brand_post = bluesky.post("brand.test", "We shipped offline mode today")
    with streaming() as (services, runner):
        eventually(lambda: jetstream.connected)
        kept = {
            bluesky.post("alice.test", "finally, offline mode!", reply_to=brand_post): "reply",
            bluesky.post("bob.test", "this is big", quote=brand_post): "quote",
            bluesky.post("alice.test", "read https://brand.example/offline"): "keyword",
            bluesky.post("bob.test", "switched to BRANDLY last week"): "keyword",
        }
        bluesky.post("alice.test", "good morning everyone")
        bluesky.post("bob.test", "brandlyville is a small town")
        jetstream.identity(bluesky.accounts["alice.test"].did, "alice.test")
        jetstream.raw("not json at all")
        jetstream.raw('{"kind": "commit", "commit": "odd"}')
        last = bluesky.post("alice.test", "@brand.test and one more")

        eventually(lambda: len(conversations(services)) == 5 and all(c.state == State.CARDED.value for c in conversations(services)))
    by_id = {c.external_id: c.reason for c in conversations(services)}
    assert by_id == {**kept, last: "mention"}


def test_a_restart_resumes_from_the_stored_cursor_neither_missing_nor_repeating(streaming, jetstream, slack, model, bluesky):
    model.reply_with(triage("Thanks!"))
    with streaming() as (services, runner):
        eventually(lambda: jetstream.connected)
        bluesky.post("alice.test", "@brand.test first")
        eventually(lambda: cards(slack, "first"))
        eventually(lambda: _cursor(services))
    # the consumer is down: these are only in Jetstream's log
    down = [bluesky.post("bob.test", f"@brand.test while down {n}") for n in range(3)]
    stored = _cursor(services)["time_us"]

    with streaming(services) as (services, runner):
        eventually(lambda: len(cards(slack, "while down")) == 3)
        assert jetstream.subscriptions[-1]["cursor"] == [str(stored - REWIND_US)]  # rewound a few seconds
        assert runner.gap_polls == 0  # the replay covered it: no polling pass needed
    assert len(cards(slack, "first")) == 1  # replayed inside the rewind, dropped as stored
    assert {c.external_id for c in conversations(services)} >= set(down)
    assert len(conversations(services)) == 4


def test_a_dropped_connection_reconnects_from_the_cursor(streaming, jetstream, slack, model, bluesky):
    model.reply_with(triage("Thanks!"))
    with streaming() as (services, runner):
        eventually(lambda: jetstream.connected)
        bluesky.post("alice.test", "@brand.test before the drop")
        eventually(lambda: cards(slack, "before the drop"))
        eventually(lambda: _cursor(services))
        jetstream.drop_connections()
        bluesky.post("alice.test", "@brand.test during the drop")  # sent to nobody: replayed on reconnect
        eventually(lambda: cards(slack, "during the drop"))
        assert "cursor" in jetstream.subscriptions[-1]
        eventually(lambda: runner.state.reconnects_last_hour(utcnow()) == 1)
    assert len(cards(slack, "before the drop")) == 1


def test_a_gap_the_stream_cannot_replay_is_filled_by_one_polling_pass(streaming, jetstream, slack, model, bluesky, make_services):
    model.reply_with(triage("Thanks!"))
    services = make_services(BLUESKY_STREAM="jetstream", BLUESKY_JETSTREAM_URL=jetstream.url)
    jetstream_silent = bluesky.on_record.pop()  # Jetstream misses this one (it is before its window)
    missed = bluesky.post("alice.test", "@brand.test posted during a long outage")
    bluesky.on_record.append(jetstream_silent)
    with services.db.session() as session:  # the stream last read two hours ago
        old = utcnow() - timedelta(hours=2)
        save_cursors(session, "bluesky", {FEED: {"time_us": int(old.timestamp() * 1e6), "at": old.isoformat()}})

    with streaming(services) as (services, runner):
        eventually(lambda: cards(slack, "long outage"))
        eventually(lambda: jetstream.connected)
        assert runner.gap_polls == 1
        assert "cursor" not in jetstream.subscriptions[-1]  # live from now: the poll covered the gap
        bluesky.post("bob.test", "@brand.test after the outage")
        eventually(lambda: cards(slack, "after the outage"))
    assert [c.external_id for c in conversations(services)][0] == missed


def test_stream_and_poll_meet_without_duplicates(streaming, jetstream, slack, model, bluesky):
    model.reply_with(triage("Thanks!"))
    with streaming() as (services, runner):
        eventually(lambda: jetstream.connected)
        bluesky.post("alice.test", "@brand.test streamed and polled")
        eventually(lambda: cards(slack, "streamed and polled"))
        poll_once(services)
    poll_once(services)
    assert len(cards(slack, "streamed and polled")) == 1
    assert len(conversations(services)) == 1


def test_a_stream_that_is_down_falls_back_to_polling_with_one_notice_and_comes_back(streaming, jetstream, slack, model, bluesky):
    model.reply_with(triage("Thanks!"))
    jetstream.down = True
    with streaming() as (services, runner):
        eventually(lambda: len(jetstream.subscriptions) == 0 and runner._failures >= 6)
        notices = [m["text"] for m in slack.calls_to("chat.postMessage") if not m.get("blocks")]
        assert len(notices) == 1 and "jetstream stream is down" in notices[0]
        assert read_states(services)["bluesky"].state == "polling"
        # meanwhile the poll cycle still finds mentions
        bluesky.post("alice.test", "@brand.test while the stream is down")
        poll_once(services)
        assert cards(slack, "while the stream is down")

        jetstream.down = False
        eventually(lambda: read_states(services)["bluesky"].state == "streaming")
        notices = [m["text"] for m in slack.calls_to("chat.postMessage") if not m.get("blocks")]
        assert len(notices) == 2 and "back" in notices[1]
        bluesky.post("bob.test", "@brand.test once it is back")
        eventually(lambda: cards(slack, "once it is back"))


def test_on_postgresql_one_process_consumes_the_stream(make_services, jetstream, slack, model, bluesky, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serves one host: no leadership to share")
    model.reply_with(triage("Thanks!"))
    first, second = (make_services(BLUESKY_STREAM="jetstream", BLUESKY_JETSTREAM_URL=jetstream.url) for _ in range(2))
    runners = [StreamRunner(s, account_streams(s.settings, s.brand)[0][1], backoff=(0.05,)).start() for s in (first, second)]
    try:
        eventually(lambda: {r.state.state for r in runners} == {"streaming", "standby"})
        eventually(lambda: jetstream.connected == 1)
        assert len(jetstream.subscriptions) == 1  # the standby never connected
        leader = next(r for r in runners if r.state.state == "streaming")
        leader.stop()  # the other takes over at its next look
        eventually(lambda: any(r.state.state == "streaming" for r in runners if r is not leader), timeout=15)
    finally:
        for runner in runners:
            runner.stop()


def _cursor(services) -> dict | None:
    with services.db.session() as session:
        return load_cursors(session, "bluesky").get(FEED)


def test_the_worker_streams_and_a_worker_killed_mid_flow_neither_misses_nor_repeats(env, make_services, jetstream, slack, model, bluesky, tmp_path):
    model.reply_with(triage("Thanks!"))
    worker_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "BLUESKY_"))}, **env,
                  "BLUESKY_STREAM": "jetstream", "BLUESKY_JETSTREAM_URL": jetstream.url, "POLL_INTERVAL_SECONDS": "3600"}

    def start():
        return CliPopen(["worker"], env=worker_env, cwd=tmp_path,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    worker = start()
    try:
        eventually(lambda: jetstream.connected, timeout=30)
        bluesky.post("alice.test", "@brand.test streamed to a worker")  # the next poll is an hour away
        eventually(lambda: cards(slack, "streamed to a worker"), timeout=30)
        model.set_delay(30)  # the next mention is still with the model when the worker dies
        bluesky.post("bob.test", "@brand.test killed mid flow")
        eventually(lambda: len(model.chat_requests()) >= 2, timeout=30)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        model.set_delay(0)
        bluesky.post("alice.test", "@brand.test while the worker is down")
        with make_services().db.session() as session:  # ten minutes pass: the dead worker's claim is stale
            session.execute(update(Conversation).where(Conversation.state == State.DRAFTING.value)
                            .values(updated_at=utcnow() - STALE_CLAIM - timedelta(minutes=1)))
        worker = start()
        eventually(lambda: cards(slack, "while the worker is down") and cards(slack, "killed mid flow"), timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=20)[0]
    for text in ("streamed to a worker", "killed mid flow", "while the worker is down"):
        assert len(cards(slack, text)) == 1, output
    assert env["SLACK_BOT_TOKEN"] not in output


def test_a_streamed_post_the_appview_has_not_indexed_yet_is_not_taken_for_deleted(services, bluesky):
    platform = services.platforms["bluesky"]
    uri = bluesky.post("alice.test", "@brand.test streamed before the AppView indexed it")
    bluesky.fail_next("app.bsky.feed.getPostThread", status=400, error="NotFound", message="Post not found: " + uri)
    assert platform.find_brand_reply({"uri": uri}) is None  # the repo has it: drafted, not skipped as deleted

    bluesky.delete(uri)
    bluesky.fail_next("app.bsky.feed.getPostThread", status=400, error="NotFound", message="Post not found: " + uri)
    with pytest.raises(MentionGone):
        platform.find_brand_reply({"uri": uri})


def test_status_home_and_doctor_show_how_each_platform_is_read(streaming, jetstream, slack, model, bluesky, make_services):
    from bot.slack.commands import status_text
    from bot.doctor import run_doctor
    from bot.slack.home import home_view

    model.reply_with(triage("Thanks!"))
    services = make_services(BLUESKY_STREAM="jetstream", BLUESKY_JETSTREAM_URL=jetstream.url)
    assert "polling every 60 s; no jetstream consumer is running" in status_text(services)
    with streaming(services) as (services, runner):
        eventually(lambda: jetstream.connected)
        bluesky.post("alice.test", "@brand.test how is the stream?")
        eventually(lambda: cards(slack, "how is the stream"))
        runner._write_state()
        status = status_text(services)
        assert "• Bluesky: working · streaming (jetstream), lag" in status and "0 reconnects in the last hour" in status
        home = json.dumps(home_view(services, now=utcnow()))
        assert "Bluesky: streaming (jetstream), lag" in home

        lines: list[str] = []
        assert run_doctor(services.settings, out=lines.append) == 0
        assert any(line.startswith("  ok    Bluesky stream (jetstream)") for line in lines)

        jetstream.down = True
        jetstream.drop_connections()
        down = eventually(lambda: (text := status_text(services)) and "the jetstream stream is down" in text
                          and " 0 reconnects" not in text and text)
        assert "• Bluesky: working · polling every 60 s: the jetstream stream is down" in down
        lines = []
        assert run_doctor(services.settings, out=lines.append) == 1
        assert any(line.startswith("  FAIL  Bluesky stream (jetstream)") for line in lines)

