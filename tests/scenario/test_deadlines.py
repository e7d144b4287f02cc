"""Every call out has a total deadline: a platform or Slack that trickles one byte at a time
cannot hold a poll cycle, a click or a worker slot (issue 13, point 4)."""
from __future__ import annotations

import threading

import pytest

from bot.deadline import DeadlineExceeded
from bot.pipeline import poll_once
from bot.platforms.base import Unavailable
from bot.platforms.bluesky import BlueskyPlatform
from bot.platforms.mastodon import MastodonPlatform
from bot.platforms.reddit import RedditPlatform
from bot.platforms.x import XPlatform
from bot.slack.publish import make_client
from tests.conftest import DATABASE_PLAYS_NO_PART
from tests.fakes.trickle import TrickleServer

DEADLINE = 1.0
ENDS_WITHIN = 30  # generous: without a deadline these calls never end


@pytest.fixture(params=["headers", "body"])
def trickle(request):
    server = TrickleServer(part=request.param)
    yield server
    server.close()


ADAPTERS = {
    "bluesky": lambda url: BlueskyPlatform("brand.test", "brand-app-password", url),
    "mastodon": lambda url: MastodonPlatform(url, "token"),
    "x": lambda url: XPlatform(api_key="k", api_secret="s", access_token="t", access_token_secret="ts", api_base_url=url),
    "reddit": lambda url: RedditPlatform("id", "secret", "brand", "pw", "ua", oauth_url=url, reddit_url=url),
}


def ended(work) -> dict:
    """Run ``work`` on a thread; what it returned or raised, or {} if it is still running."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # noqa: BLE001
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(ENDS_WITHIN)
    return outcome


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_platform_that_trickles_fails_the_call_as_unavailable(trickle, name):
    adapter = ADAPTERS[name](trickle.url)
    adapter.call_deadline = DEADLINE

    outcome = ended(adapter.check_login)

    assert isinstance(outcome.get("error"), Unavailable), outcome
    assert "did not finish answering" in str(outcome["error"]) and trickle.connections >= 1


def test_slack_that_trickles_fails_the_call_as_a_network_error(trickle):
    client = make_client("xoxb-test", trickle.url + "/api/")
    client.call_deadline = DEADLINE

    outcome = ended(lambda: client.chat_postMessage(channel="C_REVIEW", text="hi"))

    assert isinstance(outcome.get("error"), DeadlineExceeded) and isinstance(outcome["error"], OSError), outcome


@DATABASE_PLAYS_NO_PART
def test_poll_once_ends_and_reports_the_platform_that_trickles(make_services, trickle):
    services = make_services(BLUESKY_PDS_URL=trickle.url)
    services.platforms["bluesky"].call_deadline = DEADLINE

    outcome = ended(lambda: poll_once(services))

    assert "did not finish answering" in outcome["value"].failed_platforms["bluesky"], outcome
