"""The scheduled jobs of `conversant worker` and `conversant run`, on APScheduler.

Every job runs once at start-up and then on its trigger, only in the process
holding the scheduler lock (see ``leader.py``). A run missed while the process
was busy or suspended is coalesced into one. The digest goes out on a cron
trigger at DIGEST_TIME in DIGEST_TIMEZONE; ``digest.run_scheduled_digest`` keeps
the local date of the last one in the database, so a digest missed while the
worker was down (or refused by Slack) is sent once by the start-up run or the
15-minute catch-up, never once per missed day, and never twice.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.health import beat
from bot.jobs.clock import Clock, SystemClock
from bot.jobs.digest import run_scheduled_digest
from bot.jobs.leader import Leadership
from bot.jobs.nudges import nudge_once
from bot.metrics import POLL_FAILURES
from bot.pipeline import poll_once
from bot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    trigger: object
    run: Callable[[Services, Clock], object]
    misfire_grace: timedelta | None = None  # None: run however late


def nudge_interval_seconds(settings) -> float:
    """Often enough to nudge close to the SLA: every minute, sooner for a short SLA (at least every 5 s)."""
    return max(5.0, min(60.0, settings.review_sla_minutes * 60 / 4))


def digest_trigger(settings) -> CronTrigger:
    at = settings.digest_time
    return CronTrigger(hour=at.hour, minute=at.minute, timezone=settings.digest_timezone)


def jobs(services: Services) -> list[Job]:
    settings = services.settings
    return [
        Job("poll", IntervalTrigger(seconds=settings.poll_interval_seconds), poll_and_beat),
        Job("nudges", IntervalTrigger(seconds=nudge_interval_seconds(settings)), lambda s, clock: nudge_once(s, now=clock.now())),
        Job("digest", digest_trigger(settings), lambda s, clock: run_scheduled_digest(s, now=clock.now()), misfire_grace=timedelta(hours=23)),
        # Sends a digest the cron run could not (Slack down at DIGEST_TIME); a no-op once today's is out.
        Job("digest-catch-up", IntervalTrigger(minutes=15), lambda s, clock: run_scheduled_digest(s, now=clock.now())),
    ]


def poll_and_beat(services: Services, clock: Clock) -> None:
    """One poll cycle, counted for /metrics, then the heartbeat /readyz looks at."""
    report = poll_once(services)
    for platform in report.failed_platforms:
        POLL_FAILURES.labels(platform).inc()
    beat(services)


def build_scheduler(services: Services, *, blocking: bool, clock: Clock | None = None, leadership: Leadership | None = None):
    clock = clock or SystemClock()
    scheduler = BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    leadership = leadership or Leadership(services.db)
    lock = threading.Lock()  # jobs run on a thread pool; the lock's connection is not shareable across threads
    for job in jobs(services):
        grace = int(job.misfire_grace.total_seconds()) if job.misfire_grace else None
        scheduler.add_job(
            guarded(job, services, leadership, clock, lock), job.trigger, id=job.name, name=job.name,
            max_instances=1, coalesce=True, misfire_grace_time=grace, next_run_time=clock.now(),
        )
    return scheduler


def guarded(job: Job, services: Services, leadership: Leadership, clock: Clock, lock: threading.Lock | None = None):
    """The job as the scheduler runs it: only in the lock holder, and never raising."""
    lock = lock or threading.Lock()
    standing_by = False

    def run() -> bool:
        nonlocal standing_by
        with lock:
            leader = leadership.held()
        if not leader:
            if not standing_by:
                log.info("%s: another process runs the scheduled jobs; this one stands by", job.name)
                standing_by = True
            return False
        standing_by = False
        try:
            job.run(services, clock)
        except Exception:  # one failed run must not stop the scheduler
            log.exception("job %s failed; it runs again at its next time", job.name)
        return True

    return run
