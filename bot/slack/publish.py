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
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
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

    @property
    def channel_failed(self) -> bool:
        """The channel is missing, archived or without the bot: other channels still take messages."""
        return self.code in CHANNEL_FAILED


# chat.postMessage and chat.update errors about the message itself, not about Slack, the token
# or the channel (docs.slack.dev/reference/methods/chat.postMessage#errors).
REFUSED_CONTENT = frozenset({
    "invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long", "no_text",
    "too_many_attachments", "invalid_attachments", "attachment_payload_limit_exceeded", "markdown_text_conflict",
    "invalid_metadata_format", "invalid_metadata_schema", "metadata_too_large", "invalid_arguments",
})
CHANNEL_FAILED = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


_HINTS = {
    "channel_not_found": "check SLACK_REVIEW_CHANNEL is a channel ID the bot can see",
    "not_in_channel": "invite the bot to the channel (/invite @Conversant)",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the Slack app was uninstalled or the token revoked; reinstall it",
    "ratelimited": "Slack asked us to slow down; the card goes out next cycle",
    "missing_scope": "reinstall the Slack app from slack-manifest.yml to grant the scopes it lists",
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


class ConnectionRetryHandler(ConnectionErrorRetryHandler):
    """slack_sdk's retry of a call whose connection failed, except for a post: Slack may have
    stored the message before the connection dropped, so posting again could show it twice.
    Its outcome is unknown instead, and ``sync`` looks in the channel's history before posting."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return not request.url.endswith(PACED_METHODS) and super()._can_retry(
            state=state, request=request, response=response, error=error)


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
    # Slack answers 429 with Retry-After when a channel gets more than ~1 message/s.
    handlers = [ConnectionRetryHandler(), RetryAfterHandler(pacer, max_retry_count=2)]
    return BoundedWebClient(token=token, base_url=base_url, timeout=15, retry_handlers=handlers)


HISTORY_PAGES = 3  # a card lost in a crash is among the channel's last few hundred messages
HISTORY_PAGE = 100  # Slack may send fewer (15 for some apps; see the README); the cursor goes on
LOOK_BEFORE = 600  # seconds before the post began, for a clock that differs from Slack's


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

    def find(self, metadata: dict, *, since: float, channel: str | None = None, thread_ts: str | None = None) -> str | None:
        """The ts of a message carrying ``metadata`` posted since ``since`` (epoch seconds), in the
        channel's history or, with ``thread_ts``, that thread; None when not in the last few pages."""
        channel = channel or self.channel
        method, where = ("conversations_replies", {"ts": thread_ts}) if thread_ts else ("conversations_history", {})
        cursor = None
        for _ in range(HISTORY_PAGES):
            response = self._call(method, channel=channel, oldest=f"{since - LOOK_BEFORE:.6f}", include_all_metadata=True,
                                  limit=HISTORY_PAGE, cursor=cursor, **where)
            for message in response.get("messages") or []:
                if _carries(message, metadata):
                    return message["ts"]
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

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
            if error.response is not None and error.response.status_code >= 500:  # Slack broke mid-call: it may have acted
                raise CardPublishError(f"Slack {method.replace('_', '.', 1)} failed: HTTP {error.response.status_code}") from None
            code = error.response.get("error", "unknown_error") if error.response is not None else "unknown_error"
            hint = _HINTS.get(code)
            raise CardPublishError(f"Slack {method.replace('_', '.', 1)} failed: {code}" + (f" ({hint})" if hint else ""), code) from None
        except OSError as error:
            raise CardPublishError(f"Slack could not be reached for {method}: {type(error).__name__}") from None


def _carries(message: dict, metadata: dict) -> bool:
    found = message.get("metadata") or {}
    return found.get("event_type") == metadata["event_type"] and all(
        (found.get("event_payload") or {}).get(key) == value for key, value in metadata["event_payload"].items())
