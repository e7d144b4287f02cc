"""One line per event, at the operator's level, with every configured secret masked."""
from __future__ import annotations

import logging

from bot.config import Settings

SECRET_FIELDS = (
    "slack_bot_token", "slack_signing_secret", "slack_app_token", "openai_api_key", "bluesky_app_password",
    "mastodon_access_token", "x_bearer_token", "x_api_secret", "x_access_token", "x_access_token_secret",
    "reddit_client_secret", "reddit_password",
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


def configure_logging(settings: Settings | None, level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if settings is not None:
        handler.addFilter(RedactSecrets([getattr(settings, f) for f in SECRET_FIELDS if getattr(settings, f)]))
        level = settings.log_level
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "httpx2", "apscheduler.executors.default", "slack_sdk.web.base_client"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
