"""What an operator's monitoring sees: /healthz, /readyz and /metrics on `web` and on the worker."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta

from sqlalchemy import update

from bot.slack.payloads import ActionId
from bot.health import HEARTBEAT_KEY, beat
from bot.models import AppState, Conversation, utcnow
from tests.conftest import eventually
from tests.support import carded_mention, click, load


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str) -> float:
    """The value of the sample line that starts with ``name`` (labels included)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_web_metrics_show_conversations_cards_and_edits(services, web, bluesky, model, slack):
    conv = carded_mention(services, bluesky, model)
    with services.db.session() as session:  # posted two hours ago: past the 30-minute SLA
        session.execute(update(Conversation).where(Conversation.id == conv.id).values(posted_at=utcnow() - timedelta(hours=2)))

    status, text = get(f"{web}/metrics")
    assert status == 200
    assert metric(text, 'conversant_conversations{state="carded"}') == 1
    assert metric(text, "conversant_cards_waiting") == 1
    assert metric(text, "conversant_sla_breaches") == 1
    assert 7100 < metric(text, "conversant_oldest_waiting_card_age_seconds") < 7300
    assert metric(text, "conversant_model_latency_seconds_count") >= 1

    click(web, ActionId.APPROVE, conv)
    eventually(lambda: load(services).state == "replied")
    # the example (draft beside reply) is recorded just after the reply is
    def sent_as_drafted():
        text = get(f"{web}/metrics")[1]
        return text if metric(text, 'conversant_replies_sent{draft="as_drafted"}') == 1 else None

    text = eventually(sent_as_drafted)
    assert metric(text, 'conversant_replies_sent{draft="edited"}') == 0
    assert metric(text, 'conversant_post_latency_seconds_count{platform="bluesky"}') >= 1
    assert metric(text, "conversant_cards_waiting") == 0


def test_web_readiness_needs_the_schema_at_its_newest(services, web, database_url):
    status, body = get(f"{web}/readyz")
    assert status == 200 and json.loads(body) == {"database": "ok", "ok": True}
    from bot.db import migrate

    migrate(database_url, to="0006")
    try:
        status, body = get(f"{web}/readyz")
        assert status == 503 and "run `conversant migrate`" in json.loads(body)["database"]
        assert get(f"{web}/healthz")[0] == 200  # alive all the same: restarting would not help
    finally:
        migrate(database_url)


def test_worker_readiness_follows_the_heartbeat(services):
    from bot.health import readiness

    ready, body = readiness(services, scheduler=True)
    assert not ready and body["heartbeat"] == "none yet"
    beat(services)
    ready, body = readiness(services, scheduler=True)
    assert ready and body["heartbeat"].endswith("s ago")
    with services.db.session() as session:
        session.execute(update(AppState).where(AppState.key == HEARTBEAT_KEY).values(updated_at=utcnow() - timedelta(hours=1)))
    ready, body = readiness(services, scheduler=True)
    assert not ready and "stalled" in body["heartbeat"]


def test_slack_429s_are_counted(services, slack, bluesky, model):
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("conversant_slack_rate_limited_total", {"method": "chat.postMessage"}) or 0
    slack.fail_next("chat.postMessage", retry_after=0)
    carded_mention(services, bluesky, model)
    assert REGISTRY.get_sample_value("conversant_slack_rate_limited_total", {"method": "chat.postMessage"}) == before + 1
