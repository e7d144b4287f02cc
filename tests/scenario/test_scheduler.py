"""Scheduling: the digest once a day at DIGEST_TIME across DST, catch-up after downtime, one job runner on PostgreSQL.

Time comes from a clock the test moves (``ManualClock``); nothing sleeps.
"""
from __future__ import annotations

import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot import business_hours
from bot.db import Database
from bot.jobs.clock import ManualClock
from bot.jobs.digest import LAST_DIGEST_KEY, run_scheduled_digest
from bot.jobs.leader import Leadership
from bot.jobs.scheduler import Job, build_scheduler, digest_trigger, guarded
from bot.models import AppState
from bot.slack.publish import CardPublishError
from tests.cli import CliPopen
from tests.conftest import eventually

BERLIN = ZoneInfo("Europe/Berlin")


def digests(slack) -> list[dict]:
    return [m for m in slack.messages.values() if m["text"].startswith("Conversant digest:")]


def header(message: dict) -> str:
    return message["blocks"][0]["text"]["text"]


def walk(services, clock: ManualClock, until: datetime, step: timedelta) -> list[datetime]:
    """Run the digest job every ``step`` (as the worker's catch-up job does); return when a digest went out."""
    sent = []
    while clock.now() < until:
        if run_scheduled_digest(services, now=clock.now()):
            sent.append(clock.now())
        clock.advance(seconds=step.total_seconds())
    return sent


def fire_times(trigger, start: datetime, until: datetime) -> list[datetime]:
    """When APScheduler fires ``trigger`` between two instants, computed as its scheduler does (from the previous fire)."""
    fires, previous, now = [], None, start
    while (fire := trigger.get_next_fire_time(previous, now)).astimezone(UTC) < until:
        fires.append(fire.astimezone(UTC))
        previous = now = fire
    return fires


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    "digest_time, start, until, fires, sends",
    [
        # spring forward (29 March): 09:00 in Berlin is 08:00 UTC before, 07:00 UTC after
        ("09:00", at(3, 27, 12), at(3, 30, 12), [at(3, 28, 8), at(3, 29, 7), at(3, 30, 7)], [at(3, 28, 8), at(3, 29, 7), at(3, 30, 7)]),
        # 02:30 does not exist on 29 March: it fires when the clock jumps past it
        ("02:30", at(3, 28, 12), at(3, 30, 12), [at(3, 29, 1, 30), at(3, 30, 0, 30)], [at(3, 29, 1, 30), at(3, 30, 0, 30)]),
        # 02:30 happens twice on 25 October: it fires twice, one digest goes out
        ("02:30", at(10, 24, 12), at(10, 26, 12),
         [at(10, 25, 0, 30), at(10, 25, 1, 30), at(10, 26, 1, 30)], [at(10, 25, 0, 30), at(10, 26, 1, 30)]),
    ],
    ids=["spring-09:00", "spring-missing-02:30", "autumn-twice-02:30"],
)
def test_the_digest_goes_out_once_a_day_at_digest_time_across_dst(make_services, slack, digest_time, start, until, fires, sends):
    services = make_services(DIGEST_TIME=digest_time, DIGEST_TIMEZONE="Europe/Berlin", SLACK_DIGEST_CHANNEL="C_DIGEST")
    assert fire_times(digest_trigger(services.settings), start, until) == fires

    run_scheduled_digest(services, now=start)  # the worker starts: its first run only records the date
    sent = [moment for moment in fires if run_scheduled_digest(services, now=moment)]

    assert sent == sends
    assert len(digests(slack)) == len(sends) and len(slack.uploads) == len(sends)
    local_days = [moment.astimezone(BERLIN).strftime("%a %d %b %Y") for moment in sends]
    assert [header(m) for m in digests(slack)] == [f"Conversant daily digest · {day}" for day in local_days]


def test_a_new_install_sends_its_first_digest_at_the_next_digest_time(make_services, slack):
    services = make_services()
    clock = ManualClock(datetime(2026, 11, 24, 15, tzinfo=UTC))
    assert run_scheduled_digest(services, now=clock.now()) is None  # started after today's 09:00
    assert digests(slack) == []
    assert walk(services, clock, at(11, 25, 12), timedelta(minutes=15)) == [at(11, 25, 9)]


def test_after_days_down_the_worker_sends_one_digest_not_one_per_missed_day(make_services, slack):
    services = make_services()
    with services.db.session() as session:
        session.add(AppState(key=LAST_DIGEST_KEY, value="2026-11-20", updated_at=datetime(2026, 11, 20, 9, tzinfo=UTC)))
    clock = ManualClock(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # back on Tuesday afternoon

    sent = walk(services, clock, datetime(2026, 11, 25, 10, tzinfo=UTC), timedelta(minutes=30))

    assert sent == [datetime(2026, 11, 24, 15, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC)]
    first, second = digests(slack)
    assert header(first) == "Conversant daily digest · Tue 24 Nov 2026"
    assert "Mentions posted 23 Nov 09:00 – 24 Nov 09:00 (UTC)" in first["blocks"][1]["elements"][0]["text"]
    assert header(second) == "Conversant daily digest · Wed 25 Nov 2026"


def test_the_scheduler_runs_each_job_at_start_and_coalesces_missed_runs(make_services):
    services = make_services(DIGEST_TIME="07:45", DIGEST_TIMEZONE="Europe/Berlin", REVIEW_SLA_MINUTES="2")
    clock = ManualClock(datetime(2026, 11, 24, 15, tzinfo=UTC))
    scheduler = build_scheduler(services, blocking=False, clock=clock)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
    assert set(jobs) == {"poll", "nudges", "digest", "digest-catch-up"}
    assert all(job.coalesce and job.max_instances == 1 and job.next_run_time == clock.now() for job in jobs.values())
    assert jobs["nudges"].trigger.interval == timedelta(seconds=30)  # a quarter of a 2-minute SLA
    assert str(jobs["digest"].trigger) == "cron[hour='7', minute='45']" and jobs["digest"].trigger.timezone == BERLIN
    assert jobs["digest"].misfire_grace_time == 23 * 3600
    assert jobs["digest-catch-up"].trigger.interval == timedelta(minutes=15)


def test_two_processes_at_digest_time_send_one_digest(make_services, slack):
    first, second = make_services(), make_services()  # two engines, as two processes have
    now = datetime(2026, 11, 24, 9, 0, 30, tzinfo=UTC)
    run_scheduled_digest(first, now=now - timedelta(days=1))  # the first run only records the date
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(run_scheduled_digest(s, now=now))) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1
    assert len(digests(slack)) == 1


def test_a_digest_slack_refuses_is_sent_at_the_next_run(make_services, slack):
    services = make_services()
    run_scheduled_digest(services, now=datetime(2026, 11, 23, 10, tzinfo=UTC))
    slack.fail_next("chat.postMessage", "not_in_channel")
    with pytest.raises(CardPublishError):
        run_scheduled_digest(services, now=datetime(2026, 11, 24, 9, tzinfo=UTC))
    assert run_scheduled_digest(services, now=datetime(2026, 11, 24, 9, 1, tzinfo=UTC)) is not None
    assert len(digests(slack)) == 1


def test_business_hours_follow_the_local_clock_across_dst():
    hours = business_hours.BusinessHours(days=frozenset(range(5)), start=datetime.min.time().replace(hour=9), end=datetime.min.time().replace(hour=18))
    friday_evening = datetime(2026, 3, 27, 17, 30, tzinfo=UTC)  # 18:30 in Berlin, closed
    assert not business_hours.is_open(friday_evening, hours, BERLIN)
    assert business_hours.next_opening(friday_evening, hours, BERLIN) == datetime(2026, 3, 30, 7, tzinfo=UTC)  # 09:00 CEST
    seconds = business_hours.open_seconds(datetime(2026, 3, 27, 8, tzinfo=UTC), datetime(2026, 3, 30, 8, tzinfo=UTC), hours, BERLIN)
    assert seconds == 10 * 3600  # Friday 09:00-18:00 CET, then Monday 09:00-10:00 CEST


# -- exactly one process runs the jobs on PostgreSQL -----------------------------------


def test_only_one_leadership_holds_the_scheduler_lock_on_postgresql(database_url):
    first, second = Database(database_url), Database(database_url)
    a, b = Leadership(first), Leadership(second)
    try:
        if not first.is_postgres:
            assert a.held() and b.held()  # SQLite is one host: every process may run jobs
            return
        runs = []
        job = Job("count", None, lambda services, clock: runs.append(services))
        clock = ManualClock(datetime(2026, 11, 24, tzinfo=UTC))
        run_a, run_b = guarded(job, "A", a, clock), guarded(job, "B", b, clock)
        assert [run_a(), run_b(), run_a(), run_b()] == [True, False, True, False]
        assert runs == ["A", "A"]
        a.release()  # the leader's process dies: its connections, and so the lock, go away
        first.dispose()
        assert run_b() and not run_a()
        assert runs == ["A", "A", "B"]
    finally:
        a.release()
        b.release()
        first.dispose()
        second.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_worker_processes_on_postgresql_run_the_jobs_once(env, tmp_path, database_url):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [
        CliPopen(["worker"], env={**clean, **env, "POLL_INTERVAL_SECONDS": "3600"},
                 cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT)
        for log in logs
    ]
    try:
        def settled():
            texts = [log.read_text() for log in logs]
            leaders = [i for i, t in enumerate(texts) if "this process now runs the scheduled jobs" in t]
            standing = [i for i, t in enumerate(texts) if "another process runs the scheduled jobs; this one stands by" in t]
            ran = leaders and all(line in texts[leaders[0]] for line in ("digest: first run", "nudge pass:", "poll cycle:"))
            return len(leaders) == 1 and standing == [1 - leaders[0]] and ran and texts

        texts = eventually(settled, timeout=30)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(20)
    assert all("Traceback" not in t and env["SLACK_BOT_TOKEN"] not in t for t in texts)
