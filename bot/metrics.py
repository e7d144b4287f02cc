"""Prometheus figures for `/metrics` on `web` and on the worker's METRICS_PORT.

Counters and histograms count what this process did (polls that failed, model and post latency,
Slack's 429s). The figures about conversations are read from the database at each scrape, so every
process reports the same truth whichever one did the work.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

log = logging.getLogger(__name__)

POLL_FAILURES = Counter("conversant_poll_failures", "Poll cycles in which a platform failed", ["platform"])
MODEL_LATENCY = Histogram("conversant_model_latency_seconds", "Time the model took to triage and draft one mention",
                          buckets=(0.5, 1, 2, 4, 8, 15, 30, 60))
POST_LATENCY = Histogram("conversant_post_latency_seconds", "Time a platform took to accept one reply", ["platform"],
                         buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30))
SLACK_RATE_LIMITED = Counter("conversant_slack_rate_limited", "Slack answers of HTTP 429 (retried after Retry-After)", ["method"])


class ConversationFigures:
    """Reads the conversation figures at scrape time; one instance per process, pointed at its services."""

    def __init__(self) -> None:
        self.services = None

    def collect(self):
        services = self.services
        if services is None:
            return
        try:
            yield from self._figures(services)
        except Exception as error:  # noqa: BLE001 - a scrape must answer even with the database down
            log.warning("metrics: cannot read the database (%s)", type(error).__name__)

    def _figures(self, services):
        from bot.models import Conversation, State, utcnow

        now = utcnow()
        sla = timedelta(minutes=services.settings.review_sla_minutes)
        with services.db.session() as session:
            by_state = dict(session.execute(select(Conversation.state, func.count()).group_by(Conversation.state)).all())
            carded = select(func.count(), func.min(Conversation.posted_at)).where(Conversation.state == State.CARDED.value)
            waiting, oldest = session.execute(carded).one()
            breaches = session.scalar(select(func.count()).where(
                Conversation.state == State.CARDED.value, Conversation.posted_at <= now - sla))
            sent = _sent_by_editing(session)
        states = GaugeMetricFamily("conversant_conversations", "Conversations by state", labels=["state"])
        for state in State:
            states.add_metric([state.value], by_state.get(state.value, 0))
        yield states
        queued = sum(by_state.get(s.value, 0) for s in (State.NEW, State.DRAFTING, State.DRAFTED, State.DRAFT_FAILED))
        yield GaugeMetricFamily("conversant_cards_queued", "Conversations on their way to a Slack card", value=queued)
        yield GaugeMetricFamily("conversant_cards_waiting", "Cards in Slack waiting for a decision", value=waiting or 0)
        age = (now - oldest).total_seconds() if oldest else 0
        yield GaugeMetricFamily("conversant_oldest_waiting_card_age_seconds",
                                "Since the mention of the longest-waiting card was posted (0: none waiting)", value=age)
        yield GaugeMetricFamily("conversant_sla_breaches", "Cards waiting longer than REVIEW_SLA_MINUTES", value=breaches or 0)
        replies = GaugeMetricFamily("conversant_replies_sent", "Replies sent from a draft, as drafted or edited", labels=["draft"])
        for label, count in sent.items():
            replies.add_metric([label], count)
        yield replies


def _sent_by_editing(session) -> dict[str, int]:
    from bot.examples import Example

    rows = dict(session.execute(select(Example.edited, func.count()).group_by(Example.edited)).all())
    return {"as_drafted": rows.get(False, 0), "edited": rows.get(True, 0)}


_figures = ConversationFigures()
_registered = threading.Lock()


def watch(services) -> None:
    """Report this process's services' figures on /metrics (the latest call wins)."""
    with _registered:
        if _figures.services is None:
            REGISTRY.register(_figures)
        _figures.services = services
