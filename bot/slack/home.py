"""The App Home tab (``views.publish``), rebuilt from the database each time someone opens it:
the live queue, today's figures, the configuration in force, paused or running."""
from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk.errors import SlackClientError

from bot import stats
from bot.knowledge import store as knowledge
from bot.models import utcnow
from bot.services import Services
from bot.slack import views
from bot.slack.format import permalink, slack_error_code

log = logging.getLogger(__name__)


def home_view(services: Services, *, now: datetime) -> dict:
    today = stats.today(services.db, services.settings, now=now)
    from bot.streaming import ingest_lines  # how each account's mentions arrive: streamed or polled

    labels = [p.label for p in services.platforms.values()]
    brand, lines = services.brand, ingest_lines(services, now)
    arrive = {brand.label(account): lines[account.id] for account in brand.accounts if account.id in lines}
    return views.home_view(services.settings, labels, today, now=now, arrive=arrive,
                           link=lambda channel, ts: permalink(services.slack_client, channel, ts),
                           knowledge=knowledge.status(services.db))


def publish_home(services: Services, user: str, *, now: datetime | None = None) -> None:
    """Show ``user`` the Home tab as it is now."""
    view = home_view(services, now=now or utcnow())
    try:
        services.slack_client.views_publish(user_id=user, view=view)
    except (SlackClientError, OSError) as error:
        log.error("could not publish the Home tab for %s: %s", user, slack_error_code(error))
