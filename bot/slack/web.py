"""`conversant web`: Slack's HTTP endpoint and a health check, served by gunicorn.

Gunicorn's asyncio worker reads each request within a deadline and a size bound
(bot/slack/asgi.py), then a small thread pool runs it; Bolt acks each click as soon
as the listener calls ``ack()`` and finishes the slow part on its own threads.
"""
from __future__ import annotations

import io
import json
import logging
from urllib.parse import parse_qs

from gunicorn.app.base import BaseApplication
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot.health import PATHS as OPS_PATHS
from bot.health import ops_app
from bot.logs import ACCESS_LOG_FORMAT, gunicorn_logger_class
from bot.services import Services
from bot.slack.asgi import WsgiBridge
from bot.slack.app import build_app, close
from bot.slack.payloads import interaction_problem

log = logging.getLogger(__name__)


def make_wsgi_app(services: Services):
    """The WSGI app; its ``close()`` stops the Slack app's executor."""
    app = build_app(services)
    slack = SlackRequestHandler(app, path="/slack/events")
    verifier = SignatureVerifier(services.settings.slack_signing_secret or "")
    ops = ops_app(services, scheduler=False)  # /healthz, /readyz, /metrics

    def application(environ, start_response):
        if environ.get("PATH_INFO") in OPS_PATHS:
            return ops(environ, start_response)
        if environ.get("PATH_INFO") != "/slack/events" or environ.get("REQUEST_METHOD") != "POST":
            return slack(environ, start_response)
        # Bolt parses the body before it checks the signature, and a malformed body makes it
        # fail with a 500; so verify here first, then answer what Bolt cannot parse with 400.
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {"x-slack-request-timestamp": environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""),
                   "x-slack-signature": environ.get("HTTP_X_SLACK_SIGNATURE", "")}
        if not _signed(verifier, body, headers):
            return _plain(start_response, "401 Unauthorized", "invalid request signature")
        problem = _malformed(body)
        if problem:
            log.warning("refused a signed request: %s", problem)
            return _plain(start_response, "400 Bad Request", "malformed payload")
        try:
            return slack(environ, start_response)
        except ValueError:
            log.warning("ignored a signed request whose body is not a Slack payload")
            return _plain(start_response, "400 Bad Request", "malformed payload")

    application.close = lambda: close(app)
    return application


def _malformed(body: bytes) -> str | None:
    """Why an interaction (``payload=<json>``) cannot be handled; None for anything else."""
    try:
        form = parse_qs(body.decode(), strict_parsing=False)
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if "payload" not in form:
        return None  # a slash command or an event: Bolt parses those
    try:
        payload = json.loads(form["payload"][0])
    except ValueError:
        return "the payload is not JSON"
    return interaction_problem(payload)


def _signed(verifier: SignatureVerifier, body: bytes, headers: dict) -> bool:
    try:
        return verifier.is_valid_request(body, headers)
    except ValueError:  # a timestamp that is not a number
        return False


def _plain(start_response, status: str, text: str):
    payload = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))])
    return [payload]


class GunicornServer(BaseApplication):
    def __init__(self, application, services: Services, *, port: int, workers: int, threads: int, log_level: str) -> None:
        self.application = WsgiBridge(application, threads=threads)
        self.options = {
            "bind": f"0.0.0.0:{port}",
            "workers": workers,
            # Requests are read on an event loop: a stalled client holds a socket, not a thread.
            "worker_class": "bot.slack.asgi.Worker",
            "timeout": 60,
            "graceful_timeout": 20,
            # gunicorn's control socket (for gunicornc) is unused here; it wrote to ~/.gunicorn
            # and had to be stopped at every exit.
            "control_socket_disable": True,
            "loglevel": log_level.lower(),
            "logger_class": gunicorn_logger_class(),  # gunicorn's lines in our format (bot/logs.py)
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            # Each worker opens its own database connections, never the master's.
            "post_fork": lambda server, worker: services.db.engine.dispose(close=False),
            # The one line a stop leaves (gunicorn's own are below WARNING): SIGTERM lets requests
            # in flight finish within graceful_timeout, and bolt's listener threads end before exit.
            "on_exit": lambda server: log.info("web stopped; requests in flight finished"),
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def serve(services: Services, *, port: int, workers: int = 1, threads: int = 16) -> None:
    """Serve until stopped. One worker by default: threads serve clicks, and bolt's
    background listeners live in the worker process that acked them."""
    GunicornServer(make_wsgi_app(services), services, port=port, workers=workers, threads=threads, log_level=services.settings.log_level).run()
