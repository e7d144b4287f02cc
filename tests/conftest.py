"""Shared fixtures: real databases (SQLite and PostgreSQL), fakes over real HTTP, built services.

PostgreSQL comes from CONVERSANT_TEST_POSTGRES_URL (``make test`` starts a
server and sets it). Without it the PostgreSQL half is skipped locally with a
clear reason, and fails in CI, where it must never be skipped.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from sqlalchemy import create_engine, text

import bot.knowledge.models  # noqa: F401 - its tables are emptied between tests like the others
from bot.config import load_settings
from bot.db import migrate, normalise_url
from bot.models import Base
from bot.services import build_services
from tests.fakes.bluesky_pds import FakeBluesky
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

pytest_plugins = ["tests.leftovers"]  # stops, and names, any process a test left running

PG_ENV = "CONVERSANT_TEST_POSTGRES_URL"

# Every client in the tests speaks plain HTTP to 127.0.0.1, yet httpx (under openai and atproto)
# loads a whole CA bundle (SSL_CERT_FILE, else certifi's) into each new client's TLS context:
# ~0.05-0.1 s of CPU, twice per test. With only SSL_CERT_DIR, OpenSSL reads a certificate when a
# TLS handshake needs one, which no test makes. (Test process only; production is unchanged.)
if os.path.isdir("/etc/ssl/certs"):
    os.environ.pop("SSL_CERT_FILE", None)
    os.environ["SSL_CERT_DIR"] = "/etc/ssl/certs"
SIGNING_SECRET = "test-signing-secret-0123456789"


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One SQLite database migrated once per test process; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "conversant.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = create_engine(url)
    with engine.connect() as conn:  # fold the WAL into the file, so copying the file copies everything
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the copies stay in WAL mode, as a migrated database is
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url():
    """A migrated database of this test worker's own on the PostgreSQL server."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must run the suite on PostgreSQL (use `make test`)")
        pytest.skip(f"{PG_ENV} is not set; `make test` starts PostgreSQL and sets it")
    # One database per test process, so parallel workers and parallel runs never share one.
    name = f"conversant_test_{_worker_suffix()}_{os.getpid()}"
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    migrate(url)  # once per process; each test then starts from empty tables (TRUNCATE)
    engine = create_engine(normalise_url(url))
    yield url, engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


# For a behaviour the database takes no part in (an HTTP deadline, a socket, a server that is down):
# run it once, on SQLite, instead of once per database.
DATABASE_PLAYS_NO_PART = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each test that uses it runs twice: on a fresh SQLite file and on PostgreSQL, both migrated
    once per test process (Alembic is not run per test)."""
    if request.param == "sqlite":
        path = tmp_path / "conversant.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url, engine = request.getfixturevalue("postgres_url")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def model():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def bluesky():
    with FakeBluesky() as fake:
        fake.add_account("brand.test", password="brand-app-password", display_name="Brand")
        fake.add_account("alice.test", display_name="Alice")
        fake.add_account("bob.test", display_name="Bob")
        yield fake


@pytest.fixture
def env(database_url, slack, model, bluesky) -> dict[str, str]:
    """The environment an operator would write, pointing at the fakes."""
    return {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_REVIEW_CHANNEL": "C_REVIEW",
        "SLACK_MESSAGES_PER_SECOND": "1000",  # no pacing: the fake has no rate limit unless a test sets one
        "OPENAI_API_KEY": "sk-test-key-abcdef",
        "OPENAI_BASE_URL": model.api_url,
        "OPENAI_TIMEOUT_SECONDS": "2",
        "BRAND_NAME": "Brand",
        "BRAND_ALLOWED_DOMAINS": "brand.example",
        "BLUESKY_HANDLE": "brand.test",
        "BLUESKY_APP_PASSWORD": "brand-app-password",
        "BLUESKY_PDS_URL": bluesky.base_url,
        "BLUESKY_STREAM": "off",  # streaming tests turn it on with a fake Jetstream; never the real one
    }


@pytest.fixture
def make_services(env):
    """Build services from the environment, with overrides; disposed after the test."""
    built = []

    def make(platforms=None, **overrides):
        settings = load_settings({**env, **overrides}, dotenv_path="/nonexistent/.env")
        services = build_services(settings, platforms=platforms)
        built.append(services)
        return services

    yield make
    for services in built:
        services.db.dispose()


@pytest.fixture
def services(make_services):
    return make_services()


def triage(reply: str = "Thanks for telling us! Which version are you on?", **overrides) -> dict:
    """A model answer in the structured shape Conversant asks for."""
    return {
        "should_reply": True,
        "reason": "a customer asking for help",
        "category": "question",
        "sentiment": "neutral",
        "urgency": "normal",
        "reply": reply,
        **overrides,
    }


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_web(services):
    """The production WSGI app (bolt's WSGI adapter plus /healthz) on a local port."""
    from bot.slack.web import make_wsgi_app

    application = make_wsgi_app(services)
    server = make_server("127.0.0.1", 0, application, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    # A short poll interval: shutdown() waits for the next poll, 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        application.close()  # the Slack app's executor: clicks under way finish, nothing new starts


@pytest.fixture
def web(services):
    with serve_web(services) as url:
        yield url


def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Wait for background work (bolt runs listeners after the ack) to show its effect."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)
