"""Liveness, readiness, metrics and the worker's heartbeat.

- ``/healthz``: the process answers and the database does (liveness).
- ``/readyz``: the database answers and its schema is at the newest migration; for the worker
  (and `run`), also the scheduler's last poll cycle is recent: the heartbeat in ``app_state``.
- ``/metrics``: Prometheus text (``bot.metrics``).

`web` serves them beside /slack/events; the worker and `run` on METRICS_PORT when it is set.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
from datetime import datetime, timedelta
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import update

from bot.models import AppState, insert_state, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "worker_heartbeat"  # value: "host:pid" of the worker whose poll cycle ended last
PATHS = ("/healthz", "/readyz", "/metrics")


def beat(services) -> None:
    """Record that a poll cycle of the scheduler just ended."""
    now, who = utcnow(), f"{socket.gethostname()}:{os.getpid()}"
    with services.db.session() as session:
        changed = session.execute(update(AppState).where(AppState.key == HEARTBEAT_KEY).values(value=who, updated_at=now)).rowcount
        if not changed:
            insert_state(session, HEARTBEAT_KEY, who, now)


def last_beat(services) -> datetime | None:
    with services.db.session() as session:
        row = session.get(AppState, HEARTBEAT_KEY)
        return row.updated_at if row else None


def heartbeat_limit(settings) -> timedelta:
    """A poll cycle starts every POLL_INTERVAL_SECONDS and ends within it; three missed ones is a stall."""
    return timedelta(seconds=3 * settings.poll_interval_seconds + 60)


def readiness(services, *, scheduler: bool) -> tuple[bool, dict]:
    from bot.db import SchemaOutOfDate, check_schema

    body: dict = {}
    try:
        check_schema(services.db, services.settings.database_url)
        body["database"] = "ok"
    except SchemaOutOfDate:
        body["database"] = "schema out of date: run `conversant migrate`"
    except Exception as error:  # noqa: BLE001 - any failure means not ready; the reason's type is enough
        body["database"] = f"unreachable ({type(error).__name__})"
    if scheduler and body["database"] == "ok":
        beat_at = last_beat(services)
        age = (utcnow() - beat_at) if beat_at else None
        fresh = age is not None and age <= heartbeat_limit(services.settings)
        body["heartbeat"] = "none yet" if age is None else f"{int(age.total_seconds())}s ago" + ("" if fresh else " (stalled)")
    ready = body["database"] == "ok" and (not scheduler or body["heartbeat"].endswith("ago"))
    body["ok"] = ready
    return ready, body


def liveness(services) -> tuple[bool, dict]:
    try:
        services.db.ping()
        return True, {"ok": True, "database": "ok"}
    except Exception as error:  # noqa: BLE001 - any database failure makes the process unhealthy
        log.error("health check: database unreachable: %s", type(error).__name__)
        return False, {"ok": False, "database": "unreachable"}


def ops_app(services, *, scheduler: bool):
    """The WSGI app for PATHS."""
    from bot import metrics

    metrics.watch(services)

    def application(environ, start_response):
        path = environ.get("PATH_INFO")
        if path == "/metrics":
            return _reply(start_response, "200 OK", generate_latest(), CONTENT_TYPE_LATEST)
        if path in ("/healthz", "/readyz"):
            ok, body = liveness(services) if path == "/healthz" else readiness(services, scheduler=scheduler)
            status = "200 OK" if ok else "503 Service Unavailable"
            return _reply(start_response, status, json.dumps(body).encode(), "application/json")
        return _reply(start_response, "404 Not Found", b"not found", "text/plain; charset=utf-8")

    return application


def _reply(start_response, status: str, payload: bytes, content_type: str):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # scrapes every few seconds are not news
        pass


def serve_in_background(services, port: int) -> WSGIServer | None:
    """The worker's /healthz, /readyz and /metrics on ``port``, on a daemon thread."""
    try:
        server = make_server("0.0.0.0", port, ops_app(services, scheduler=True), handler_class=_Quiet)
    except OSError as error:
        log.error("cannot serve /metrics on METRICS_PORT=%d (%s); going on without it", port, error.strerror or error)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("serving /healthz, /readyz and /metrics on port %d", port)
    return server
