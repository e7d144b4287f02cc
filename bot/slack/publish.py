"""The only code that sends cards and notices to Slack. Cards are rebuilt from the database.

Slack takes about one message per second per channel (``chat.postMessage``,
short bursts aside) and answers more with HTTP 429 and ``Retry-After``. So
messages are paced per channel (``SLACK_MESSAGES_PER_SECOND``), and a 429 on
any method is retried after the time Slack asks for, during which this
process sends nothing else to that channel.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot import deadline
from bot.metrics import SLACK_RATE_LIMITED

log = logging.getLogger(__name__)


class CardPublishError(Exception):
    """Slack did not take a card or notice; the message says what to fix.

    ``code`` is Slack's error (``invalid_blocks``), None when Slack did not answer; then
    ``unknown`` is True: Slack may have stored the message all the same."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def refused(self) -> bool:
        """Slack refused this message for what it holds: other messages still go out."""
        return self.code in REFUSED_CONTENT

    @property
    def unknown(self) -> bool:
        return self.code is None


# chat.postMessage and chat.update errors about the message itself, not about Slack, the token
# or the channel (docs.slack.dev/reference/methods/chat.postMessage#errors).
REFUSED_CONTENT = frozenset({
    "invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long", "no_text",
    "too_many_attachments", "invalid_attachments", "attachment_payload_limit_exceeded", "markdown_text_conflict",
    "invalid_metadata_format", "invalid_metadata_schema", "metadata_too_large", "invalid_arguments",
})


_HINTS = {
    "channel_not_found": "check SLACK_REVIEW_CHANNEL is a channel ID the bot can see",
    "not_in_channel": "invite the bot to the channel (/invite @Conversant)",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the Slack app was uninstalled or the token revoked; reinstall it",
    "ratelimited": "Slack asked us to slow down; the card goes out next cycle",
}


class ChannelPacer:
    """Spaces this process's messages to each channel ``1 / per_second`` apart, and holds a
    channel while a ``Retry-After`` from Slack runs. Thread-safe; one per process."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}  # channel -> the earliest time of its next message
        self._lock = threading.Lock()

    def wait(self, channel: str) -> float:
        """Block until a message may go to ``channel`` and take that slot; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            at = max(now, self._next.get(channel, now))
            self._next[channel] = at + self.interval
        if at > now:
            self.sleep(at - now)
        return at - now

    def hold(self, channel: str, seconds: float) -> None:
        """Slack said to wait ``seconds``: no message to ``channel`` before then."""
        with self._lock:
            self._next[channel] = max(self._next.get(channel, 0.0), self.clock() + seconds)


SLACK_CALL_SECONDS = 60.0  # one API call: 15 s reads, Retry-After waits and retries included
PACED_METHODS = ("chat.postMessage",)  # Slack's "1 per second per channel" methods


class RetryAfterHandler(RateLimitErrorRetryHandler):
    """Retry a 429 after the ``Retry-After`` Slack sent (plus a little jitter, as the SDK does),
    and tell the pacer, so the process's other messages to that channel wait too."""

    def __init__(self, pacer: ChannelPacer | None = None, max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.pacer = pacer

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        if response is None:
            raise error  # type: ignore[misc]
        SLACK_RATE_LIMITED.labels(request.url.rsplit("/", 1)[-1]).inc()
        seconds = retry_after(response) + random.random() * 0.5
        channel = _channel_of(request) if request.url.endswith(PACED_METHODS) else None
        state.next_attempt_requested = True
        if self.pacer is not None and channel:
            self.pacer.hold(channel, seconds)
            self.pacer.wait(channel)
        else:
            (self.pacer.sleep if self.pacer else time.sleep)(seconds)
        state.increment_current_attempt()


def retry_after(response: HttpResponse) -> float:
    """Slack's ``Retry-After`` in seconds (1 when absent or unreadable)."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) else values
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return 1.0


def _channel_of(request: HttpRequest) -> str | None:
    if request.body_params and request.body_params.get("channel"):
        return str(request.body_params["channel"])
    data = request.data.decode() if isinstance(request.data, bytes) else (request.data or "")
    try:
        return json.loads(data).get("channel") if data.lstrip().startswith("{") else (parse_qs(data).get("channel") or [None])[0]
    except ValueError:
        return None


class BoundedWebClient(WebClient):
    """A WebClient whose every API call has a total deadline (bot/deadline.py), Retry-After
    waits included: a Slack that trickles its answer fails the call as a network error would."""

    call_deadline = SLACK_CALL_SECONDS

    def api_call(self, api_method: str, **kwargs):
        return deadline.call(lambda: super(BoundedWebClient, self).api_call(api_method, **kwargs),
                             self.call_deadline, f"Slack {api_method}")


def make_client(token: str | None, base_url: str, pacer: ChannelPacer | None = None) -> WebClient:
    client = BoundedWebClient(token=token, base_url=base_url, timeout=15)
    # Slack answers 429 with Retry-After when a channel gets more than ~1 message/s.
    client.retry_handlers.append(RetryAfterHandler(pacer, max_retry_count=2))
    return client


class SlackPublisher:
    def __init__(self, client: WebClient, channel: str, pacer: ChannelPacer | None = None) -> None:
        self.client = client
        self.channel = channel
        self.pacer = pacer

    def post(self, card: dict, *, channel: str | None = None, thread_ts: str | None = None) -> tuple[str, str]:
        channel = channel or self.channel
        if self.pacer:
            self.pacer.wait(channel)
        response = self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, unfurl_links=False, **card)
        return response["channel"], response["ts"]

    def update(self, channel: str, ts: str, card: dict) -> None:
        self._call("chat_update", channel=channel, ts=ts, **card)

    def notice(self, text: str) -> None:
        if self.pacer:
            self.pacer.wait(self.channel)
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
            raise CardPublishError(f"Slack {method.replace('_', '.', 1)} failed: {code}" + (f" ({hint})" if hint else ""), code) from None
        except OSError as error:
            raise CardPublishError(f"Slack could not be reached for {method}: {type(error).__name__}") from None
