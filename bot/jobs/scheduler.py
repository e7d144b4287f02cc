"""The scheduled jobs of `conversant worker` and `conversant run`, on APScheduler."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.jobs.leader import Leadership
from bot.pipeline import poll_once
from bot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    trigger: object
    run: Callable[[Services], object]


def jobs(services: Services) -> list[Job]:
    return [Job("poll", IntervalTrigger(seconds=services.settings.poll_interval_seconds), poll_once)]


def build_scheduler(services: Services, *, blocking: bool):
    scheduler = BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    leadership = Leadership(services.db)
    for job in jobs(services):
        scheduler.add_job(
            _guarded(job, services, leadership), job.trigger, id=job.name, name=job.name,
            max_instances=1, coalesce=True, misfire_grace_time=None, next_run_time=datetime.now(timezone.utc),
        )
    return scheduler


def _guarded(job: Job, services: Services, leadership: Leadership):
    def run() -> None:
        if not leadership.held():
            log.debug("%s: another process holds the scheduler lock", job.name)
            return
        try:
            job.run(services)
        except Exception:  # noqa: BLE001 - one failed run must not stop the scheduler
            log.exception("job %s failed; it runs again at its next time", job.name)

    return run
