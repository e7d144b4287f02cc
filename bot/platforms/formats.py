"""Pure per-platform facts: the name people see, the length limit, how length is counted, and
how a reply is composed. Cards, the policy, the evaluation and the adapters all read them here.

No network: Mastodon's limits differ per server, so its adapter reads them from the server
when it logs in or polls and builds its format with ``mastodon(...)``; until then (and for a
platform that is not enabled) the defaults below apply.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import regex

from bot.platforms.x_text import LIMIT as X_LIMIT
from bot.platforms.x_text import weighted_length
from bot.text import grapheme_count

MASTODON_MAX_CHARACTERS = 500
MASTODON_URL_CHARACTERS = 23
# Mastodon's StatusLengthValidator: Account::MENTION_RE, and URLs with a scheme as twitter-text finds them
MASTODON_MENTION = regex.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w)?", regex.I)
MASTODON_URL = regex.compile(r"(?<![\w/])https?://[^\s<>\"']*[^\s<>\"'.,;:!?)]")


@dataclass(frozen=True)
class PrivateChannel:
    """How a platform carries a private reply: what it is called, its limit, and the short public
    note posted in the thread once the message is sent."""

    label: str  # "a Bluesky chat message"
    limit: int
    length: Callable[[str], int]
    notice: str  # "We've sent you a message."


X_NO_PRIVATE = ("X direct messages need a paid X API tier (Basic or higher), which Conversant does not use, so it "
                "cannot reply privately on X: answer in public, or message them from X itself.")


@dataclass(frozen=True)
class PlatformFormat:
    name: str  # "bluesky"
    label: str  # "Bluesky"
    limit: int
    length: Callable[[str], int]
    starts_with_author: bool = False  # Mastodon: a reply only notifies the accounts it @mentions
    private: PrivateChannel | None = None  # None: no private replies here
    no_private: str | None = None  # why not, said on the card

    def compose(self, text: str, author: str) -> str:
        """The reply as it will be posted (drafts are stored composed, so the card shows what goes out)."""
        if not self.starts_with_author:
            return text
        handle = "@" + author.lstrip("@")
        if regex.match(rf"{regex.escape(handle)}(?![\w@-]|\.\w)", text, regex.I):
            return text
        return f"{handle} {text}"


def mastodon_length(text: str, url_characters: int = MASTODON_URL_CHARACTERS) -> int:
    """StatusLengthValidator: every URL counts as the reserved length, ``@user@domain`` as ``@user``."""
    countable = MASTODON_URL.sub("x" * url_characters, text)
    countable = MASTODON_MENTION.sub(lambda match: "@" + match.group(1), countable)
    return grapheme_count(countable)


def mastodon(limit: int = MASTODON_MAX_CHARACTERS, url_characters: int = MASTODON_URL_CHARACTERS) -> PlatformFormat:
    """A Mastodon server's format, from its ``configuration.statuses``."""
    length = mastodon_length if url_characters == MASTODON_URL_CHARACTERS else partial(mastodon_length, url_characters=url_characters)
    # A direct status is a status: the same limit and counting, and it must @mention its reader.
    private = PrivateChannel("a direct message (a private mention)", limit, length, "We've sent you a private message.")
    return PlatformFormat("mastodon", "Mastodon", limit, length, starts_with_author=True, private=private)


# chat.bsky.convo.defs#messageInput: 1,000 graphemes (and 10,000 bytes, which 1,000 graphemes rarely reach)
BLUESKY_CHAT = PrivateChannel("a Bluesky chat message", 1000, grapheme_count, "We've sent you a message in chat.")
# POST /api/compose: the body is limited like a comment's
REDDIT_MESSAGE = PrivateChannel("a Reddit private message", 10_000, len, "We've sent you a private message.")
BLUESKY = PlatformFormat("bluesky", "Bluesky", 300, grapheme_count, private=BLUESKY_CHAT)
MASTODON = mastodon()
X = PlatformFormat("x", "X", X_LIMIT, weighted_length, no_private=X_NO_PRIVATE)  # X adds the @handle itself; it does not count
REDDIT = PlatformFormat("reddit", "Reddit", 10_000, len, private=REDDIT_MESSAGE)  # POST /api/comment refuses longer text with TOO_LONG
FORMATS = {f.name: f for f in (BLUESKY, MASTODON, X, REDDIT)}


def format_for(name: str) -> PlatformFormat:
    """The default facts of a platform by name; an unknown one counts graphemes against 300."""
    return FORMATS.get(name) or PlatformFormat(name, name, 300, grapheme_count)


def label(name: str) -> str:
    return format_for(name).label
