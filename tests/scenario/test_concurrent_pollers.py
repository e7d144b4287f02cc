"""Several pollers and workers sharing one database never crash each other (real processes).

Three `conversant poll --once` and two `conversant worker` meet the same burst of
near-identical mentions at once. Before, on PostgreSQL two of the pollers exited on
"deadlock detected": their multi-row writes (new mentions, cursors, burst members) took
row locks in different orders.
"""
from __future__ import annotations

import os
import subprocess

from sqlalchemy import func, select

from bot.models import Burst, Conversation
from tests.cli import CliPopen
from tests.conftest import eventually
from tests.scenario.test_bursts import PEOPLE, outage

POLLERS, WORKERS = 3, 2


def test_three_pollers_and_two_workers_meet_a_burst_without_crashing(env, services, slack, model, bluesky, tmp_path):
    outage(bluesky, model, count=len(PEOPLE))
    run_env = {**{k: v for k, v in os.environ.items() if k != "PORT"}, **env, "POLL_INTERVAL_SECONDS": "5",
               "LOG_LEVEL": "INFO"}
    logs = [open(tmp_path / f"process{i}.log", "w+") for i in range(POLLERS + WORKERS)]
    workers = [CliPopen(["worker"], env=run_env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
               for log in logs[POLLERS:]]
    pollers = [CliPopen(["poll", "--once"], env=run_env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
               for log in logs[:POLLERS]]
    try:
        codes = [p.wait(timeout=120) for p in pollers]
        assert codes == [0] * POLLERS
        eventually(lambda: _carded(services) == len(PEOPLE), timeout=60)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    output = []
    for log in logs:
        log.seek(0)
        output.append(log.read())
    assert codes == [0] * POLLERS, output
    assert not any("deadlock" in text.lower() or "Traceback" in text for text in output), output
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == len(PEOPLE)  # each stored once
        bursts = session.scalars(select(Burst)).all()
        members = session.scalars(select(Conversation).where(Conversation.burst_id.is_not(None))).all()
    assert len(members) == len(PEOPLE) and len({m.burst_id for m in members}) == 1
    assert len([b for b in bursts if b.slack_ts]) == 1  # one burst card, not one per process
    burst_cards = [c for c in slack.calls_to("chat.postMessage") if "similar mentions" in c["text"]]
    assert len(burst_cards) == 1


def _carded(services) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(Conversation).where(Conversation.slack_ts.is_not(None)))


def test_a_transaction_postgresql_aborts_for_a_deadlock_runs_again(services):
    """Two transactions lock two rows in opposite orders: PostgreSQL aborts one; retry runs it again."""
    import threading

    from sqlalchemy import text

    if not services.db.is_postgres:
        return  # SQLite lets one writer in at a time (BEGIN IMMEDIATE): no deadlock to meet
    with services.db.session() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS deadlock_probe (id int primary key, n int)"))
        session.execute(text("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING"))
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts = []

    def cross(first: int, second: int) -> None:
        def work():
            attempts.append(first)
            with services.db.session() as session:
                session.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": first})
                if attempts.count(first) == 1:
                    both_hold_one.wait()
                session.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": second})
        services.db.retry(work)

    threads = [threading.Thread(target=cross, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with services.db.session() as session:
        assert session.execute(text("SELECT n FROM deadlock_probe ORDER BY id")).scalars().all() == [2, 2]
    assert len(attempts) == 3  # one of the two ran twice
