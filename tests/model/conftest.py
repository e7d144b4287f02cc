"""The real-model suite: llama.cpp's `llama-server` serving SmolLM2-135M-Instruct (see REAL-MODEL.md).

The server is built from source and the model fetched on first use, into
~/.cache/conversant/llama (scripts/llama_server.py), then reused. One server
runs for the session: embeddings on, 2 slots, a free port. If it cannot be built
or started the suite fails with one line; it never skips.

The model's words change between runs, even at temperature 0: tests assert
validity and behaviour, never wording. SQLite only: the database is not what
this suite tests, and every draft costs real seconds.
"""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.config import load_settings
from bot.db import migrate
from bot.services import build_services
from scripts.llama_server import LlamaError, RunningServer, ensure_model, ensure_server

HERE = Path(__file__).parent
MODEL = "smollm2"
SLOTS = 2


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.model)


def start_server(**options) -> RunningServer:
    """A fresh llama-server serving SmolLM2; fails the test run (never skips) when that is impossible."""
    try:
        ensure_server()
        return RunningServer(ensure_model(MODEL), **{"parallel": SLOTS, "embeddings": True, **options}).start()
    except LlamaError as error:
        first = str(error).splitlines()[0]
        raise pytest.fail.Exception(f"the real model server could not be built or started: {first}", pytrace=False) from None


@pytest.fixture(scope="session")
def llama(pytestconfig):
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # the first build takes minutes: show its progress lines
        server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served_model(llama) -> str:
    """The model's name as the server gives it (the GGUF file's name)."""
    return httpx.get(f"{llama.api_url}/models").json()["data"][0]["id"]


def model_env(api_url: str, slack, bluesky, database_url: str, **overrides) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": "test-signing-secret-0123456789",
        "SLACK_API_URL": slack.api_url,
        "SLACK_REVIEW_CHANNEL": "C_REVIEW",
        "SLACK_MESSAGES_PER_SECOND": "1000",
        "OPENAI_BASE_URL": api_url,
        "OPENAI_MODEL": "smollm2",  # llama.cpp serves its one model whatever the request names
        "OPENAI_EMBEDDING_MODEL": "smollm2",
        "BRAND_NAME": "Brand",
        "BRAND_ALLOWED_DOMAINS": "brand.example",
        "BLUESKY_HANDLE": "brand.test",
        "BLUESKY_APP_PASSWORD": "brand-app-password",
        "BLUESKY_PDS_URL": bluesky.base_url,
        "BLUESKY_STREAM": "off",  # polling only: no network beyond 127.0.0.1
        **overrides,
    }


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'conversant.db'}"
    migrate(url)
    return url


@pytest.fixture
def real_env(llama, slack, bluesky, sqlite_url) -> dict[str, str]:
    return model_env(llama.api_url, slack, bluesky, sqlite_url)


@pytest.fixture
def make_real_services(real_env):
    built = []

    def make(**overrides):
        settings = load_settings({**real_env, **overrides}, dotenv_path="/nonexistent/.env")
        services = build_services(settings)
        built.append(services)
        return services

    yield make
    for services in built:
        services.db.dispose()
