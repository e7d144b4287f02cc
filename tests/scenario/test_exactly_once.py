"""A reply is posted at most once per card: double clicks, retries, two processes, a kill mid-post."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot import decision
from bot.slack.payloads import ActionId
from bot.models import Conversation, State, utcnow
from bot.pipeline import poll_once
from tests.cli import CliPopen
from tests.conftest import eventually, triage
from tests.fakes.bluesky_pds import FakeBluesky
from tests.fakes.http import Response
from tests.support import carded_mention, click, load

CREATE = "/xrpc/com.atproto.repo.createRecord"


def run_cli(env: dict, cwd, *args: str) -> subprocess.Popen:
    return CliPopen(
        args,
        env={**os.environ, **env}, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_concurrent_clicks_and_slack_retries_post_one_reply(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda i: click(web, ActionId.APPROVE, conv, retry_num=i % 3 or None)[0], range(12)))

    assert statuses == [200] * 12
    eventually(lambda: load(services).state == State.REPLIED.value)
    eventually(lambda: len(slack.calls_to("chat.postEphemeral")) == 11)
    assert len(bluesky.created("brand.test")) == 1
    assert len(bluesky.requests_to(CREATE)) == 1


def test_two_processes_polling_at_once_card_and_draft_each_mention_once(env, tmp_path, slack, model, bluesky):
    topics = ["billing invoice", "dark mode", "export to PDF", "calendar sync", "team seats", "offline maps"]
    for i, topic in enumerate(topics):  # different subjects: six cards, not one burst
        bluesky.post("alice.test" if i % 2 else "bob.test", f"@brand.test how does {topic} work?")
    model.reply_with(triage())

    processes = [run_cli(env, tmp_path, "poll", "--once") for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    cards = slack.calls_to("chat.postMessage")
    assert len(cards) == 6
    assert len(model.chat_requests()) == 6


def test_two_processes_sending_the_same_approval_post_once(env, tmp_path, services, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    assert decision.approve(services.db, services.rules, conv.id, "U_ALICE").done
    bluesky.set_delay("com.atproto.repo.createRecord", 0.5)  # widen the race window

    processes = [run_cli(env, tmp_path, "poll", "--once") for _ in range(2)]
    for p in processes:
        p.communicate(timeout=60)

    assert load(services).state == State.REPLIED.value
    assert len(bluesky.created("brand.test")) == 1


class HangingPds(FakeBluesky):
    """createRecord stores the post (or not) and then never answers, like a lost response."""

    def __init__(self, *, store_before_hanging: bool) -> None:
        super().__init__()
        self.store_before_hanging = store_before_hanging
        self.arrived = threading.Event()
        self.release = threading.Event()

    def handle(self, request):
        if request.path != CREATE or self.release.is_set():
            return super().handle(request)
        response = super().handle(request) if self.store_before_hanging else Response(500, {"error": "InternalServerError"})
        self.arrived.set()
        self.release.wait(30)
        return response


@pytest.mark.parametrize("store_before_hanging", [True, False], ids=["post-landed", "post-lost"])
def test_a_kill_during_a_post_is_reconciled_without_a_second_reply(store_before_hanging, make_services, env, tmp_path, slack, model):
    with HangingPds(store_before_hanging=store_before_hanging) as pds:
        pds.add_account("brand.test", password="brand-app-password")
        pds.add_account("alice.test")
        overrides = {"BLUESKY_PDS_URL": pds.base_url}
        services = make_services(**overrides)
        conv = carded_mention(services, pds, model)
        assert decision.approve(services.db, services.rules, conv.id, "U_ALICE").done

        worker = run_cli({**env, **overrides}, tmp_path, "poll", "--once")
        assert pds.arrived.wait(30), worker.stdout.read() if worker.poll() is not None else "no post arrived"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        pds.release.set()

        assert load(services).state == State.POSTING.value  # outcome unknown: nothing may post it blindly
        poll_once(services)
        assert load(services).state == State.POSTING.value  # too soon to tell a slow post from a dead one

        with services.db.session() as session:
            session.execute(update(Conversation).values(posting_since=utcnow() - timedelta(minutes=5)))
        report = poll_once(services)

        assert report.reconciled == 1
        done = load(services)
        assert done.state == State.REPLIED.value and done.reply_url
        assert len(pds.created("brand.test")) == 1
