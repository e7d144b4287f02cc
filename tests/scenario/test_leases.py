"""A dead process's claims come back within a poll interval or two; a live one keeps its own (issue 13, point 8)."""
from __future__ import annotations

import os
import subprocess
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot import leases
from bot.models import Conversation, State
from bot.pipeline import poll_once
from tests.cli import CliPopen
from tests.conftest import eventually, triage
from tests.support import load

POLL = "5"  # seconds; production's lease is then two intervals, 10 s
LEASE = timedelta(seconds=2)  # in this test process: the same rules, on a shorter clock


@pytest.fixture(autouse=True)
def short_lease(monkeypatch):
    monkeypatch.setattr(leases, "lease_length", lambda settings: LEASE)


def _claim(services) -> tuple[str, datetime] | None:
    with services.db.session() as session:
        row = session.execute(select(Conversation.state, Conversation.updated_at)).first()
    return (row.state, row.updated_at.replace(tzinfo=None)) if row else None


def _drafting(services) -> tuple[str, datetime] | None:
    """The claim, while the conversation is being drafted."""
    claim = _claim(services)
    return claim if claim and claim[0] == State.DRAFTING.value else None


def _poller(env, tmp_path):
    run_env = {**{k: v for k, v in os.environ.items() if k != "PORT"}, **env, "POLL_INTERVAL_SECONDS": POLL,
               "OPENAI_TIMEOUT_SECONDS": "120"}
    return CliPopen(["poll", "--once"], env=run_env, cwd=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_draft_claimed_by_a_process_that_died_is_drafted_again_soon(env, make_services, model, bluesky, slack, tmp_path):
    services = make_services(POLL_INTERVAL_SECONDS=POLL)
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    model.set_delay(60)
    poller = _poller(env, tmp_path)
    eventually(lambda: _drafting(services), timeout=60)
    poller.kill()  # dies with the mention claimed
    poller.wait(10)
    model.set_delay(0)

    # Before, the claim waited ten minutes; now it is handed back once its lease runs out.
    eventually(lambda: poll_once(services) and load(services).state == State.CARDED.value, timeout=30, interval=0.2)
    assert load(services).draft_text and len(slack.calls_to("chat.postMessage")) == 1


def test_a_live_process_keeps_its_claim_past_the_lease_by_renewing_it(make_services, model, bluesky, slack):
    services = make_services(POLL_INTERVAL_SECONDS=POLL)
    live = make_services(POLL_INTERVAL_SECONDS=POLL, OPENAI_TIMEOUT_SECONDS="60")  # another process's database handle, and so its own leases
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    model.reply_with(triage())
    model.set_delay(3 * LEASE.total_seconds())  # a slow draft: three leases long
    cycle = threading.Thread(target=poll_once, args=(live,))
    cycle.start()
    _, claimed_at = eventually(lambda: _drafting(services), timeout=30)

    # Only a renewal keeps the claim once the lease has run out: wait until one has.
    eventually(lambda: _claim(services)[1] > claimed_at + LEASE, timeout=30)
    poll_once(services)  # another process's cycle must not take it over

    cycle.join(60)  # its draft comes back on its own drafting thread, after the cycle if need be
    eventually(lambda: load(services).state in (State.DRAFTED.value, State.CARDED.value) and load(services).draft_text, timeout=30)
    poll_once(services)
    assert load(services).state == State.CARDED.value
    assert len(model.chat_requests()) == 1 and len(slack.calls_to("chat.postMessage")) == 1
