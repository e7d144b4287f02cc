"""One line per event, at the operator's level, with every configured secret masked.

Our lines, the libraries' and gunicorn's (error and access log) go through one handler, so they
share one format: text by default, one JSON object per line with LOG_FORMAT=json. Libraries are
held at WARNING unless LOG_LEVEL=DEBUG: their INFO lines (alembic's plugin setup, APScheduler's
job list, gunicorn's workers) say nothing an operator acts on.
"""
from __future__ import annotations

import logging
import sys

from bot.config import Settings

SECRET_FIELDS = (
    "slack_bot_token", "slack_signing_secret", "slack_app_token", "openai_api_key", "bluesky_app_password",
    "mastodon_access_token", "x_bearer_token", "x_api_secret", "x_access_token", "x_access_token_secret",
    "reddit_client_secret", "reddit_password",
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers whose INFO lines stay out unless LOG_LEVEL=DEBUG; WARNING and above always show.
QUIET = (
    "alembic", "apscheduler", "httpx", "httpcore", "httpx2", "httpcore2", "openai", "urllib3", "slack_sdk", "slack_bolt",
    "atproto", "atproto_client", "mastodon", "tweepy", "praw", "prawcore", "matplotlib", "websocket", "gunicorn.error",
)


class RedactSecrets(logging.Filter):
    """Defence in depth: no log line may carry a secret, even from a library."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(secret in message for secret in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the line. A handler holding the stream it
    was made with writes into a closed file once that stream is swapped and closed (pytest's capture),
    and a background thread's late line then fails with "I/O operation on closed file"."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings | None, level: str = "INFO", fmt: str = "text") -> None:
    handler = StderrHandler()
    if settings is not None:
        handler.addFilter(RedactSecrets([getattr(settings, f) for f in SECRET_FIELDS if getattr(settings, f)]))
        level, fmt = settings.log_level, settings.log_format
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level) if root.level > logging.DEBUG else logging.NOTSET)


# The access log: client, method, path without its query string, status, bytes, milliseconds.
# No query string, headers or body: nothing a secret could ride on.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
PROBES = ("/healthz", "/readyz", "/metrics")


class SkipProbes(logging.Filter):
    """Health checks and scrapes every few seconds would drown the lines about real requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, dict) else {}
        return atoms.get("U") not in PROBES


def gunicorn_logger_class():
    """Gunicorn's logger, with its error and access lines handed to ours (same handler, same format)."""
    from gunicorn.glogging import Logger

    class GunicornLogger(Logger):
        def setup(self, cfg) -> None:
            level = self.error_log.level  # what configure_logging chose; gunicorn's setup overrides it
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                log.handlers.clear()
                log.propagate = True
            self.error_log.setLevel(level)
            self.access_log.addFilter(SkipProbes())

    return GunicornLogger
