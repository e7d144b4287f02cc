"""A dead process's claims come back within a poll interval or two; a live one keeps its own (issue 13, point 8)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from sqlalchemy import select

from bot.models import Conversation, State
from bot.pipeline import poll_once
from tests.conftest import eventually, triage
from tests.support import load

POLL = "5"  # seconds; the lease is two intervals, 10 s


def _state(services) -> str | None:
    with services.db.session() as session:
        return session.scalar(select(Conversation.state))


def _poller(env, tmp_path):
    run_env = {**{k: v for k, v in os.environ.items() if k != "PORT"}, **env, "POLL_INTERVAL_SECONDS": POLL,
               "OPENAI_TIMEOUT_SECONDS": "120"}
    return subprocess.Popen([sys.executable, "-m", "bot", "poll", "--once"], env=run_env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_draft_claimed_by_a_process_that_died_is_drafted_again_soon(env, make_services, model, bluesky, slack, tmp_path):
    services = make_services(POLL_INTERVAL_SECONDS=POLL)
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    model.set_delay(60)
    poller = _poller(env, tmp_path)
    eventually(lambda: _state(services) == State.DRAFTING.value, timeout=60)
    poller.kill()  # dies with the mention claimed
    poller.wait(10)
    model.set_delay(0)

    # Before, the claim waited ten minutes; now it is handed back once its 10 s lease runs out.
    eventually(lambda: poll_once(services) and load(services).state == State.CARDED.value, timeout=90, interval=1)
    assert load(services).draft_text and len(slack.calls_to("chat.postMessage")) == 1


def test_a_live_process_keeps_its_claim_past_the_lease_by_renewing_it(env, make_services, model, bluesky, slack, tmp_path):
    services = make_services(POLL_INTERVAL_SECONDS=POLL)
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    model.set_delay(20)  # a slow draft: twice the lease
    poller = _poller(env, tmp_path)
    eventually(lambda: _state(services) == State.DRAFTING.value, timeout=60)
    time.sleep(12)  # past the lease: only the renewals keep the claim

    poll_once(services)  # another process's cycle must not take it over

    assert poller.wait(120) == 0  # its draft came back after its cycle: the next cycle cards it
    assert load(services).state in (State.DRAFTED.value, State.CARDED.value) and load(services).draft_text
    poll_once(services)
    assert load(services).state == State.CARDED.value
    assert len(model.chat_requests()) == 1 and len(slack.calls_to("chat.postMessage")) == 1
