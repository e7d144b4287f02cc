"""`conversant web`: Slack's HTTP endpoint and a health check, served by gunicorn.

Gunicorn's threaded workers serve requests; Bolt acks each click as soon as
the listener calls ``ack()`` and finishes the slow part on its own threads.
"""
from __future__ import annotations

import json
import logging

from gunicorn.app.base import BaseApplication
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.services import Services
from bot.slack.app import build_app

log = logging.getLogger(__name__)


def make_wsgi_app(services: Services):
    slack = SlackRequestHandler(build_app(services), path="/slack/events")

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            return _health(services, start_response)
        return slack(environ, start_response)

    return application


def _health(services: Services, start_response):
    try:
        services.db.ping()
        status, body = "200 OK", {"ok": True, "database": "ok"}
    except Exception as error:  # noqa: BLE001 - any database failure makes the process unhealthy
        log.error("health check: database unreachable: %s", type(error).__name__)
        status, body = "503 Service Unavailable", {"ok": False, "database": "unreachable"}
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class GunicornServer(BaseApplication):
    def __init__(self, application, services: Services, *, port: int, workers: int, threads: int, log_level: str) -> None:
        self.application = application
        self.options = {
            "bind": f"0.0.0.0:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 60,
            "graceful_timeout": 20,
            "loglevel": log_level.lower(),
            "accesslog": None,
            # Each worker opens its own database connections, never the master's.
            "post_fork": lambda server, worker: services.db.engine.dispose(close=False),
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
