"""Each platform, switched on only by its environment variables, through the whole loop as an operator runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import pytest

from bot.slack.payloads import ActionId
from bot.models import State
from tests.conftest import eventually, serve_web, triage
from tests.fakes.mastodon_api import FakeMastodon
from tests.fakes.reddit_api import FakeReddit
from tests.fakes.x_api import FakeX
from tests.support import click, load

NO_BLUESKY = {"BLUESKY_HANDLE": "", "BLUESKY_APP_PASSWORD": ""}


@dataclass
class Platform:
    env: dict[str, str]
    mention: Callable[[], str]  # someone mentions the brand; returns the mention's id
    replies: Callable[[], list[tuple[str, str]]]  # the brand's replies: (text, id of what it answers)


def mastodon(fake: FakeMastodon) -> Platform:
    fake.add_account("brand", display_name="Brand", token="mastodon-token")
    fake.add_account("alice", display_name="Alice")
    return Platform(
        env={"MASTODON_API_BASE_URL": fake.base_url, "MASTODON_ACCESS_TOKEN": "mastodon-token"},
        mention=lambda: fake.post("alice", "@brand my export is stuck"),
        replies=lambda: [(s.text, s.in_reply_to_id) for s in fake.created("brand")],
    )


def x(fake: FakeX) -> Platform:
    brand = fake.add_user("brand", "Brand")
    fake.add_user("alice", "Alice")
    return Platform(
        env={"X_API_KEY": fake.consumer_key, "X_API_SECRET": fake.consumer_secret, "X_ACCESS_TOKEN": brand.access_token,
             "X_ACCESS_TOKEN_SECRET": brand.access_token_secret, "X_API_BASE_URL": fake.base_url},
        mention=lambda: fake.tweet("alice", "@brand my export is stuck"),
        replies=lambda: [(t.text, t.in_reply_to) for t in fake.created("brand")],
    )


def reddit(fake: FakeReddit) -> Platform:
    fake.add_user("BrandCo", password="reddit-password")
    fake.add_user("alice")
    post = fake.submit("alice", "gadgets", "Export help", "Anyone know why export is stuck?")

    return Platform(
        env={"REDDIT_CLIENT_ID": "app-id", "REDDIT_CLIENT_SECRET": "app-secret", "REDDIT_USERNAME": "BrandCo",
             "REDDIT_PASSWORD": "reddit-password", "REDDIT_USER_AGENT": "test:conversant:v1 (by /u/BrandCo)",
             "REDDIT_API_BASE_URL": fake.base_url, "REDDIT_AUTH_BASE_URL": fake.base_url},
        mention=lambda: fake.comment("alice", post, "u/BrandCo my export is stuck"),
        replies=lambda: [(c.body, c.parent) for c in fake.created("BrandCo")],
    )


FAKES = {"mastodon": (FakeMastodon, {}, mastodon), "x": (FakeX, {}, x),
         "reddit": (FakeReddit, {"client_id": "app-id", "client_secret": "app-secret"}, reddit)}


@pytest.fixture(params=sorted(FAKES))
def platform(request):
    server, kwargs, build = FAKES[request.param]
    with server(**kwargs) as fake:
        yield build(fake)


def test_a_mention_on_each_platform_is_carded_and_answered_once(platform, env, tmp_path, make_services, slack, model):
    mention = platform.mention()
    model.reply_with(triage("Sorry about that! Which file were you exporting?"))
    operator_env = {**env, **NO_BLUESKY, **platform.env}

    result = subprocess.run([sys.executable, "-m", "bot", "poll", "--once"], env={**os.environ, **operator_env},
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "1 cards posted" in result.stdout, result.stdout + result.stderr
    services = make_services(**NO_BLUESKY, **platform.env)
    conv = load(services)
    with serve_web(services) as web:
        click(web, ActionId.APPROVE, conv)
        eventually(lambda: load(services).state == State.REPLIED.value, timeout=20)
        click(web, ActionId.APPROVE, conv)  # a second click changes nothing
        eventually(lambda: slack.calls_to("chat.postEphemeral"))
    [(text, answered)] = platform.replies()
    assert "Which file were you exporting?" in text
    assert answered == mention
