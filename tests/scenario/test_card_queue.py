"""Bursts of cards against Slack's rate: most urgent first, the rest counted in one status message;
messages paced per channel, Retry-After honoured; the model's concurrency kept; ingest's dedupe."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.backlog import card_queue
from bot.slack.views import queue_home_text
from bot.ingest import insert_mentions
from bot.models import Conversation, State
from bot.pipeline import poll_once
from bot.platforms.base import Mention
from bot.slack.publish import ChannelPacer, SlackPublisher, make_client
from tests.conftest import triage
from tests.fakes.openai_api import FakeOpenAI

TOPICS = (
    "my export to PDF fails every time", "billing charged me twice this month", "love the new dark mode",
    "sync stopped working on my phone", "how do I share a notebook read only", "the app crashes when it starts",
    "where can I read the changelog", "can I get a refund for the yearly plan",
)
URGENCIES = ("low", "high", "normal", "low", "high", "normal", "low", "normal")


class FakeClock:
    """Time that moves only when someone sleeps: pacing is observed, never waited for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def statuses(slack) -> list[dict]:
    return [c for c in slack.calls_to("chat.postMessage") if "queued for a card" in c.get("text", "")]


def test_a_burst_cards_the_most_urgent_first_and_counts_the_rest_in_one_message(make_services, slack, model, bluesky):
    services = make_services(SLACK_MESSAGES_PER_SECOND="0.05")  # Slack takes 3 cards a minute (and a 60 s cycle)
    clock = FakeClock()
    services.publisher.pacer = ChannelPacer(0.05, clock=clock.monotonic, sleep=clock.sleep)
    for topic in TOPICS:
        bluesky.post("alice.test", f"@brand.test {topic}")
    urgency = dict(zip(TOPICS, URGENCIES))
    model.responder = lambda request: triage(urgency=next(u for t, u in urgency.items() if t in request["messages"][-1]["content"]))
    slack.fail_next("chat.postMessage", error="channel_not_found")  # the first cycle drafts them all but cards none

    poll_once(services)
    queue = card_queue(services.db, services.settings)
    assert (queue.ready, queue.per_minute, queue.queued) == (8, 3, True)
    assert queue.by_urgency == {"high": 2, "normal": 3, "low": 3}
    assert "8 queued for a card" in queue_home_text(queue)
    [status] = statuses(slack)
    assert "*8 conversations are queued for a card*" in status["text"]

    for _ in range(3):
        poll_once(services)

    with services.db.session() as session:
        carded = session.scalars(select(Conversation).where(Conversation.slack_ts.is_not(None))).all()
    in_order = sorted(carded, key=lambda c: float(c.slack_ts))
    assert [c.urgency for c in in_order] == ["high", "high", "normal", "normal", "normal", "low", "low", "low"]
    by_urgency_then_age = sorted(carded, key=lambda c: (("high", "normal", "low").index(c.urgency), c.posted_at))
    assert [c.id for c in in_order] == [c.id for c in by_urgency_then_age]
    assert len(statuses(slack)) == 1  # one status message for the whole burst, edited in place
    edits = [c for c in slack.calls_to("chat.update") if c["ts"] == status_ts(slack)]
    assert "*5 conversations are queued for a card*" in edits[0]["text"]
    assert "drained" in edits[-1]["text"]
    assert card_queue(services.db, services.settings).waiting == 0 and not card_queue(services.db, services.settings).queued


def status_ts(slack) -> str:
    [status] = [m for m in slack.messages.values() if "queued for a card" in (m.get("text") or "")] or [None]
    if status is None:  # already closed: find it by its history
        status = next(h[0] for h in slack.history.values() if "queued for a card" in (h[0].get("text") or ""))
    return status["ts"]


def test_a_small_queue_gets_no_status_message(make_services, slack, model, bluesky):
    services = make_services(SLACK_MESSAGES_PER_SECOND="0.05")
    services.publisher.pacer = ChannelPacer(0.05, clock=FakeClock().monotonic, sleep=lambda s: None)
    for topic in TOPICS[:3]:
        bluesky.post("alice.test", f"@brand.test {topic}")
    model.reply_with(triage())

    poll_once(services)

    assert len(slack.calls_to("chat.postMessage")) == 3 and not statuses(slack)
    assert queue_home_text(card_queue(services.db, services.settings)).startswith(":white_check_mark:")


def test_messages_to_a_channel_are_paced_and_retry_after_holds_it(slack):
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock.monotonic, sleep=clock.sleep)
    publisher = SlackPublisher(make_client("xoxb-test", slack.api_url, pacer), "C_REVIEW", pacer)

    publisher.post({"text": "one"})
    publisher.post({"text": "two"})
    publisher.post({"text": "elsewhere"}, channel="C_DIGEST")
    assert clock.sleeps == [1.0]  # a second between two messages to one channel; none for another channel

    slack.fail_next("chat.postMessage", retry_after=3)
    publisher.post({"text": "three"})
    publisher.post({"text": "four"})

    texts = [c["text"] for c in slack.calls_to("chat.postMessage")]
    assert texts == ["one", "two", "elsewhere", "three", "three", "four"]  # refused once, then sent again
    assert clock.sleeps[1] == 1.0  # "three" waits its turn
    assert clock.sleeps[2] >= 3  # the retry waits as long as Slack said
    assert clock.sleeps[3] == 1.0  # and "four" comes a second after it, not sooner


def test_slack_rate_limit_in_the_fake_answers_429_with_retry_after(slack):
    slack.rate_limit("chat.postMessage", per_second=1, burst=1)
    client = make_client("xoxb-test", slack.api_url)
    client.retry_handlers.clear()  # see the 429 itself

    first = client.api_call("chat.postMessage", json={"channel": "C_REVIEW", "text": "a"})
    try:
        client.api_call("chat.postMessage", json={"channel": "C_REVIEW", "text": "b"})
        raise AssertionError("the second message within a second should have been refused")
    except Exception as error:  # noqa: BLE001 - SlackApiError
        assert error.response.status_code == 429 and error.response.headers.get("Retry-After") == "1"
    assert first["ok"] and slack.rate_limited == [("chat.postMessage", "C_REVIEW")]


class CountingOpenAI(FakeOpenAI):
    """Notes the most chat completions it was answering at once."""

    def __init__(self) -> None:
        self.in_flight = self.most = 0
        self._count = threading.Lock()
        super().__init__()

    def _chat_completion(self, body):
        with self._count:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return super()._chat_completion(body)
        finally:
            with self._count:
                self.in_flight -= 1


def test_no_more_than_openai_concurrency_drafts_are_with_the_model(make_services, bluesky):
    with CountingOpenAI() as model:
        model.set_delay(0.2)
        model.reply_with(triage())
        services = make_services(OPENAI_BASE_URL=model.api_url, OPENAI_CONCURRENCY="2")
        for topic in TOPICS:
            bluesky.post("alice.test", f"@brand.test {topic}")

        report = poll_once(services)

    assert report.drafted == len(TOPICS) and report.carded == len(TOPICS)
    assert model.most == 2


def mention(n: int, platform: str = "bluesky") -> Mention:
    uri = f"at://did:plc:alice/app.bsky.feed.post/{n}"
    return Mention(platform=platform, external_id=uri, thread_key=uri, thread_ref={"uri": uri}, reason="mention",
                   author_id="did:plc:alice", author_handle="alice.test", author_name=None, text=f"hello {n}",
                   url=f"https://bsky.app/profile/alice.test/post/{n}", created_at=datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(minutes=n))


def test_ingest_stores_each_mention_once_and_counts_only_new_ones(services):
    with services.db.session() as session:
        assert insert_mentions(session, [mention(1), mention(2)]) == 2
    page = [mention(2), mention(3), mention(3), mention(1), mention(2, platform="mastodon"), mention(4)]
    with services.db.session() as session:
        assert insert_mentions(session, page) == 3  # 3, 4, and 2 on another platform
        assert insert_mentions(session, []) == 0
    with services.db.session() as session:
        stored = session.execute(select(Conversation.platform, Conversation.external_id, Conversation.state)).all()
    assert len(stored) == 5 and {s for _, _, s in stored} == {State.NEW.value}


def test_a_draft_that_finishes_as_the_queue_looks_empty_is_still_carded_in_the_same_cycle(services, slack, model, bluesky, monkeypatch):
    """The last draft can finish between "nothing is ready to card" and "nothing is left with the
    model" (a busy machine is enough); it used to wait a whole poll interval for its card."""
    from bot import pipeline
    from bot.slack import sync
    from tests.conftest import eventually

    def answer(request):
        if "slow one" in json.dumps(request["messages"]):
            time.sleep(0.5)
        return triage()
    model.responder = answer
    bluesky.post("alice.test", "@brand.test a quick one")
    bluesky.post("bob.test", "@brand.test a slow one")

    nothing_left_to_claim = threading.Event()
    claim, post_next_card = pipeline.claim_new, sync.post_next_card

    def claim_new(*args, **kwargs):
        claimed = claim(*args, **kwargs)
        if not claimed:
            nothing_left_to_claim.set()
        return claimed

    def drafting():
        with services.db.session() as session:
            return session.query(Conversation).filter_by(state=State.DRAFTING.value).count()

    def post_then_stall(*args, **kwargs):
        carded = post_next_card(*args, **kwargs)
        if carded is False and nothing_left_to_claim.is_set():
            eventually(lambda: drafting() == 0)  # this thread is descheduled while the last draft finishes
        return carded

    monkeypatch.setattr(pipeline, "claim_new", claim_new)
    monkeypatch.setattr(sync, "post_next_card", post_then_stall)

    pipeline.poll_once(services)

    assert len(slack.calls_to("chat.postMessage")) == 2
