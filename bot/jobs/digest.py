"""The daily digest: what the last 24 hours brought, what was missed and why, with a chart.

The figures come from ``stats.py`` and the words from ``slack/views.py``; this job sends them.
The scheduled digest goes out at ``DIGEST_TIME`` in ``DIGEST_TIMEZONE``. The
local date of the last digest sent is kept in ``app_state``, and is moved
forward with a conditional update before sending: so a restart, a catch-up
after downtime and two processes all send it at most once per day, and a
worker that was down for three days sends one digest when it returns, not three.
"""
from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from slack_sdk.errors import SlackClientError
from sqlalchemy import update

from bot import business_hours, stats
from bot.jobs.chart import ChartData, draw
from bot.models import AppState, insert_state, utcnow
from bot.services import Services
from bot.slack import views
from bot.slack.format import permalink, slack_error_code
from bot.stats import DAY, TREND_DAYS, Digest, build_digest

log = logging.getLogger(__name__)

LAST_DIGEST_KEY = "last_digest_date"  # the local date (YYYY-MM-DD) of the last scheduled digest


def digest_message(services: Services, digest: Digest) -> dict:
    """The digest's Block Kit message, with links to the missed cards."""
    quality = stats.quality(services.db, digest.figures.start, digest.figures.end)
    return views.digest_message(services.settings, digest, quality, lambda channel, ts: permalink(services.slack_client, channel, ts))


# -- the chart ----------------------------------------------------------------------


def render_chart(digest: Digest) -> bytes:
    """A PNG: received and answered per hour over the day, and the 14-day response rate."""
    return draw(chart_data(digest))


@contextmanager
def charts_drawn_in_child() -> Iterator[Callable[[Digest], bytes]]:
    """Draws the PNGs of one digest run (one per channel) in one short-lived process, started
    at the first chart: matplotlib is ~50 MB that the worker would otherwise keep for the rest
    of its life, for a few charts a day, and starting it costs about a second each time."""
    pool = None

    def draw_in_child(digest: Digest) -> bytes:
        nonlocal pool
        if pool is None:
            pool = multiprocessing.get_context("spawn").Pool(1)
        return pool.apply(draw, (chart_data(digest),))

    try:
        yield draw_in_child
    finally:
        if pool is not None:
            pool.terminate()


def chart_data(digest: Digest) -> ChartData:
    return ChartData(
        received_per_hour=digest.received_per_hour, answered_per_hour=digest.answered_per_hour,
        hour_labels=digest.hour_labels, trend=digest.trend, local_date=digest.local_date,
        timezone=digest.timezone.key, trend_days=TREND_DAYS,
    )


# -- sending ------------------------------------------------------------------------


@dataclass
class DigestResult:
    channel: str
    ts: str
    file_id: str | None
    missed: int
    seconds: float  # time to compute the figures


def send_digest(services: Services, *, end: datetime | None = None) -> DigestResult:
    """Post the digest for the 24 hours before ``end`` (default now) and upload its chart.

    Raises CardPublishError when Slack refuses the message; a failed chart
    upload is logged and the digest stands without it.
    """
    end = end or utcnow()
    with charts_drawn_in_child() as draw_chart:
        result = _send_one(services, end, services.settings.digest_channel, draw_chart, routed=None)
        for channel in routed_channels(services):
            try:
                _send_one(services, end, channel, draw_chart, routed=channel)
            except Exception:  # noqa: BLE001 - one team's channel refusing its digest must not stop the others'
                log.exception("the digest of the conversations routed to %s was not posted", channel)
    return result


def routed_channels(services: Services) -> list[str]:
    """Each channel that routes or accounts send cards to gets a digest of its own conversations;
    the lead's SLACK_DIGEST_CHANNEL gets all of them."""
    settings = services.settings
    channels = [*settings.routes.channels, *(a.review_channel for a in services.brand.accounts if a.review_channel)]
    lead = {settings.digest_channel, None}
    return [c for c in dict.fromkeys(channels) if c not in lead] if settings.accounts_file else []


def _send_one(services: Services, end: datetime, channel: str | None, draw_chart: Callable[[Digest], bytes], *,
              routed: str | None) -> DigestResult:
    started = time.perf_counter()
    digest = build_digest(services.db, services.settings, end=end, channel=routed)
    message = digest_message(services, digest)
    if routed:
        message["blocks"].insert(1, {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"The conversations routed to <#{routed}> only; the full digest goes to the lead's channel."}]})
    seconds = time.perf_counter() - started
    channel, ts = services.publisher.post(message, channel=channel)
    file_id = _upload_chart(services, channel, digest, draw_chart)
    log.info("digest for %s posted to %s (%d missed, figures in %.2fs)", digest.local_date, channel, len(digest.figures.missed), seconds)
    return DigestResult(channel, ts, file_id, len(digest.figures.missed), seconds)


def _upload_chart(services: Services, channel: str, digest: Digest, draw_chart: Callable[[Digest], bytes]) -> str | None:
    client = services.slack_client
    if client is None:
        return None
    try:
        png = draw_chart(digest)
        response = client.files_upload_v2(
            channel=channel, file=png, filename=f"conversant-digest-{digest.local_date}.png",
            title=f"Conversant digest chart, {digest.local_date:%d %b %Y}",
            alt_txt="Bar chart of mentions received and answered per hour, and a line chart of the 14-day response rate",
        )
    except (SlackClientError, OSError) as error:
        log.error("digest chart not uploaded: %s (check the bot has files:write)", slack_error_code(error))
        return None
    files = response.get("files") or [response.get("file") or {}]
    return files[0].get("id")


def latest_slot(now: datetime, settings) -> datetime:
    """The most recent DIGEST_TIME (in DIGEST_TIMEZONE) at or before ``now``, in UTC."""
    tz = settings.digest_timezone
    today = now.astimezone(tz).date()
    slot = business_hours.local_moment(today, settings.digest_time, tz)
    return slot if slot <= now else business_hours.local_moment(today - DAY, settings.digest_time, tz)


def run_scheduled_digest(services: Services, *, now: datetime | None = None) -> DigestResult | None:
    """Send the digest of the latest DIGEST_TIME unless it was sent; at most once per local date.

    The first run ever only records the date, so a new install sends its
    first digest at the next DIGEST_TIME rather than the moment it starts.
    """
    now = now or utcnow()
    slot = latest_slot(now, services.settings)
    slot_date = slot.astimezone(services.settings.digest_timezone).date().isoformat()
    with services.db.session() as session:
        row = session.get(AppState, LAST_DIGEST_KEY)
        previous = row.value if row else None
        if row is None:
            insert_state(session, LAST_DIGEST_KEY, slot_date, now)
            log.info("digest: first run; the first digest goes out at the next %s %s", services.settings.digest_time.strftime("%H:%M"), services.settings.digest_timezone.key)
            return None
        won = previous < slot_date and session.execute(
            update(AppState)
            .where(AppState.key == LAST_DIGEST_KEY, AppState.value < slot_date)
            .values(value=slot_date, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
    if not won:
        return None
    try:
        return send_digest(services, end=slot)
    except Exception:
        with services.db.session() as session:  # not sent: let the next run try again
            session.execute(
                update(AppState).where(AppState.key == LAST_DIGEST_KEY, AppState.value == slot_date)
                .values(value=previous, updated_at=now).execution_options(synchronize_session=False)
            )
        raise
