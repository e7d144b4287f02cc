"""The small shape every platform adapter speaks, and the errors it raises.

Nothing outside ``bot/platforms`` knows a service's wire format. An adapter
turns its service into ``Mention`` objects and back into replies.

Errors, by what the caller should do::

    PlatformError            something went wrong talking to the platform
    ├── Unavailable          network, timeout or 5xx: try again later
    │   └── RateLimited      the platform asked us to wait until ``retry_at``
    ├── AuthFailed           credentials wrong, expired or the account suspended
    ├── Rejected             the platform refused the request; retrying as is won't help
    └── MentionGone          the post being answered was deleted
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Mention:
    platform: str
    external_id: str
    thread_key: str  # the id of the thread's first post, to group turns
    thread_ref: dict  # what the adapter needs to reply under this mention
    reason: str  # mention | reply | quote | keyword
    author_id: str
    author_handle: str
    author_name: str | None
    text: str
    url: str
    created_at: datetime
    parent_text: str | None = None
    language: str | None = None  # the post's language as the platform gives it ("en"), for routing


@dataclass(frozen=True)
class PostedReply:
    external_id: str
    url: str


@dataclass
class FetchResult:
    """New mentions, the cursors to save once they are stored, and the feeds that failed.

    A feed that fails (say, keyword search) keeps its old cursor and is read
    again next poll; the others still move on.
    """

    mentions: list[Mention]
    cursors: dict[str, dict] = field(default_factory=dict)
    errors: list["PlatformError"] = field(default_factory=list)


class Platform(Protocol):
    name: str  # e.g. "bluesky"
    label: str  # e.g. "Bluesky"
    text_limit: int

    def check_login(self) -> str:
        """Log in and describe the account, e.g. '@brand.bsky.social'."""

    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        """Mentions newer than the saved ``cursors`` (or than ``since`` on the first run)."""

    def find_brand_reply(self, thread_ref: dict) -> PostedReply | None:
        """The brand's own reply under this mention, if one exists."""

    def compose_reply(self, thread_ref: dict, text: str) -> str:
        """The reply as it will be posted, e.g. with the ``@acct`` prefix Mastodon needs.

        Drafts are stored composed, so the card, the length count and the Edit
        box all show exactly what will be posted.
        """

    def post_reply(self, thread_ref: dict, text: str, *, idempotency_key: str) -> PostedReply:
        """Post ``text`` threaded under the mention. ``idempotency_key`` is stable per card,
        for platforms that deduplicate writes (Mastodon's Idempotency-Key)."""

    def text_length(self, text: str) -> int:
        """Length as the platform counts it against ``text_limit``."""

    def send_private(self, thread_ref: dict, author_id: str, author_handle: str, text: str, *, idempotency_key: str) -> PostedReply:
        """Send ``text`` to the author as a private message, where ``format.private`` says the platform
        has them. Raises ``Rejected`` when the author does not accept messages from the brand."""


class PlatformError(Exception):
    def __init__(self, platform: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.platform = platform
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Unavailable(PlatformError):
    """Network trouble or a server error: the outcome of a write is unknown."""


class RateLimited(Unavailable):
    def __init__(self, platform: str, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(platform, message, hint="Conversant waits and tries again by itself")
        self.retry_at = retry_at


class AuthFailed(PlatformError):
    pass


class Rejected(PlatformError):
    pass


class MentionGone(PlatformError):
    pass
