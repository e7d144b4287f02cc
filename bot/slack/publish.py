"""The only code that sends cards and notices to Slack. Cards are rebuilt from the database."""
from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

log = logging.getLogger(__name__)


class CardPublishError(Exception):
    """Slack did not take a card or notice; the message says what to fix."""


_HINTS = {
    "channel_not_found": "check SLACK_REVIEW_CHANNEL is a channel ID the bot can see",
    "not_in_channel": "invite the bot to the channel (/invite @Conversant)",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the Slack app was uninstalled or the token revoked; reinstall it",
    "ratelimited": "Slack asked us to slow down; the card goes out next cycle",
}


def make_client(token: str | None, base_url: str) -> WebClient:
    client = WebClient(token=token, base_url=base_url, timeout=15)
    # Slack answers 429 with Retry-After when a channel gets more than ~1 message/s.
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


class SlackPublisher:
    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel

    def post(self, card: dict, *, channel: str | None = None, thread_ts: str | None = None) -> tuple[str, str]:
        response = self._call("chat_postMessage", channel=channel or self.channel, thread_ts=thread_ts, unfurl_links=False, **card)
        return response["channel"], response["ts"]

    def update(self, channel: str, ts: str, card: dict) -> None:
        self._call("chat_update", channel=channel, ts=ts, **card)

    def notice(self, text: str) -> None:
        self._call("chat_postMessage", channel=self.channel, text=text)

    def tell(self, channel: str, user: str, text: str) -> None:
        """A private message only ``user`` sees."""
        try:
            self._call("chat_postEphemeral", channel=channel, user=user, text=text)
        except CardPublishError as error:
            log.warning("could not tell %s privately: %s", user, error)

    def _call(self, method: str, **kwargs):
        try:
            return getattr(self.client, method)(**{k: v for k, v in kwargs.items() if v is not None})
        except SlackApiError as error:
            code = error.response.get("error", "unknown_error") if error.response is not None else "unknown_error"
            hint = _HINTS.get(code)
            raise CardPublishError(f"Slack {method.replace('_', '.', 1)} failed: {code}" + (f" ({hint})" if hint else "")) from None
        except OSError as error:
            raise CardPublishError(f"Slack could not be reached for {method}: {type(error).__name__}") from None
