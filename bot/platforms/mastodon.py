"""Mastodon through the `Mastodon.py` SDK: mention notifications and status search in, threaded replies out.

Cursors, one per feed:

- ``notifications`` keeps ``{"min_id": id}``, the newest mention notification
  read. Each poll pages forward from it with ``min_id`` (Mastodon answers the
  page just above the cursor), so the cursor only ever moves over what was
  read: a restart, or a backlog longer than one poll reads, neither misses nor
  repeats anything. The first run pages back from the newest to ``since``.
- ``search:<keyword>`` keeps ``{"newest": iso, "seen": [ids]}``. Mastodon turns
  a search's ``min_id`` into an ``after:`` date at whole seconds, indexes
  asynchronously, and gives a remote post an id from its publication time, so a
  post can turn up in search after a newer one was read. Each poll searches
  from ``newest`` minus ``SEARCH_OVERLAP`` and drops the ids already seen.

On Mastodon a reply to the brand arrives as a ``mention`` notification too
(clients put the ``@acct`` in), which is also why ``compose_reply`` adds the
author's ``@acct``: without it the author is not notified.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import partial
from html.parser import HTMLParser

from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from bot import deadline
from bot.deadline import CALL_SECONDS, DeadlineExceeded
from bot.platforms.formats import (
    MASTODON,
    MASTODON_MAX_CHARACTERS,
    MASTODON_MENTION,
    MASTODON_URL,
    MASTODON_URL_CHARACTERS,
    PlatformFormat,
    mastodon_length,
)
from bot.platforms.formats import mastodon as mastodon_format
from bot.platforms.base import (
    AuthFailed,
    FetchResult,
    Mention,
    MentionGone,
    PlatformError,
    PostedReply,
    RateLimited,
    Rejected,
    Unavailable,
)

log = logging.getLogger(__name__)

# Mastodon.py picks endpoints by server version and would ask the server for it
# (GET /api/v1/instance) in the middle of a poll; declaring the oldest version we
# support keeps it quiet. 4.0 has /api/v2/search with offset and min_id, types[]
# on notifications and /api/v2/instance.
ASSUMED_SERVER_VERSION = "4.0.0"
PAGE_SIZE = 80  # notifications: the maximum since Mastodon 4.1 (older servers answer 30)
MAX_PAGES = 10  # 800 notifications a poll; the rest come next poll (300 requests per 5 minutes per account)
SEARCH_PAGE_SIZE = 40  # the maximum per category
MAX_SEARCH_PAGES = 5
SEARCH_OVERLAP = timedelta(minutes=15)
DEFAULT_MAX_CHARACTERS = MASTODON_MAX_CHARACTERS
DEFAULT_URL_CHARACTERS = MASTODON_URL_CHARACTERS
VISIBILITIES = ("public", "unlisted", "private", "direct")
MENTION_RE, URL_RE = MASTODON_MENTION, MASTODON_URL  # the counting lives in platforms/formats.py
CREDENTIALS_HINT = (
    "check MASTODON_ACCESS_TOKEN (and MASTODON_API_BASE_URL): create it under Preferences → Development "
    "with the scopes read:accounts read:notifications read:search read:statuses write:statuses"
)


class MastodonPlatform:
    name = "mastodon"
    label = "Mastodon"
    call_deadline = CALL_SECONDS  # one call, however the server trickles (bot/deadline.py)

    def __init__(self, api_base_url: str, access_token: str, *, keywords: tuple[str, ...] = (), timeout: float = 20.0):
        self.api_base_url = api_base_url
        self.keywords = keywords
        self._token = access_token
        self._api = Mastodon(
            access_token=access_token,
            api_base_url=api_base_url,
            ratelimit_method="throw",  # a rate limit becomes RateLimited, never a sleep inside a poll
            request_timeout=timeout,
            mastodon_version=ASSUMED_SERVER_VERSION,
            version_check_mode="created",
            user_agent="Conversant",
        )
        self._me = None  # the brand's account, from verify_credentials
        self._limits: tuple[int, int] | None = None  # max_characters, characters_reserved_per_url

    # -- session ---------------------------------------------------------------

    def _account(self):
        if self._me is None:
            self._me = self._call("read the brand's account", self._api.account_verify_credentials)
        return self._me

    def _call(self, what: str, action, *, missing_means_gone: bool = False):
        """Run one SDK call within ``call_deadline``, turning its errors into our error tree."""
        try:
            return deadline.call(action, self.call_deadline, f"Mastodon: {what}")
        except DeadlineExceeded:
            raise Unavailable(self.name, f"Mastodon did not finish answering within {self.call_deadline:g} s while trying to {what}",
                              hint="Conversant tries again on the next poll") from None
        except MastodonRatelimitError:
            raise RateLimited(self.name, f"Mastodon rate limit reached while trying to {what}", retry_at=self._reset_at()) from None
        except MastodonNotFoundError as error:
            if missing_means_gone:
                raise MentionGone(self.name, f"the Mastodon post is gone ({self._detail(error)})") from None
            raise Rejected(self.name, f"Mastodon could not {what}: {self._detail(error)}", hint="check MASTODON_API_BASE_URL") from None
        except MastodonUnauthorizedError as error:
            raise AuthFailed(self.name, f"Mastodon refused to {what}: {self._detail(error)}", hint=CREDENTIALS_HINT) from None
        except (MastodonServerError, MastodonNetworkError) as error:
            raise Unavailable(self.name, f"Mastodon did not answer while trying to {what}: {self._detail(error)}",
                              hint="Conversant tries again on the next poll") from None
        except MastodonAPIError as error:
            status = _status_code(error)
            if status == 403:  # a token without the scope, or an account disabled or unapproved
                raise AuthFailed(self.name, f"Mastodon refused to {what}: {self._detail(error)}", hint=CREDENTIALS_HINT) from None
            if status is not None and 400 <= status < 500:
                raise Rejected(self.name, f"Mastodon refused to {what}: {self._detail(error)}") from None
            raise Unavailable(self.name, f"Mastodon gave an unexpected answer while trying to {what}: {self._detail(error)}") from None

    def _reset_at(self) -> datetime | None:
        """X-RateLimit-Reset of the refused request, which the SDK keeps on the client (local clock)."""
        reset = self._api.ratelimit_reset
        return datetime.fromtimestamp(reset, timezone.utc) if reset else None

    def _detail(self, error: Exception) -> str:
        """Status and the server's ``error`` text; never the token."""
        args = error.args
        if len(args) == 4 and isinstance(args[1], int):  # ('Mastodon API returned error', status, reason, error)
            text = f"{args[1]} {args[3] or args[2]}"
        else:
            text = " ".join(str(a) for a in args) or type(error).__name__
        return text.replace(self._token, "[token]") if self._token else text

    def check_login(self) -> str:
        me = self._account()
        return f"@{me.acct} on {self.api_base_url} (posts up to {self.text_limit} characters)"

    # -- length ----------------------------------------------------------------

    @property
    def format(self) -> PlatformFormat:
        """This server's facts as last read (at login or a poll); the defaults until then. No network."""
        return mastodon_format(*self._limits) if self._limits else MASTODON

    @property
    def text_limit(self) -> int:
        """The server's limit, asked for once (the network call that ``format`` never makes)."""
        return self._instance_limits()[0]

    def text_length(self, text: str) -> int:
        """StatusLengthValidator: every URL counts as the reserved length, ``@user@domain`` as ``@user``."""
        return mastodon_length(text, self._instance_limits()[1])

    def _instance_limits(self) -> tuple[int, int]:
        if self._limits is None:
            try:
                statuses = self._statuses_configuration()
            except PlatformError as error:
                log.warning("mastodon: could not read the server's limits (%s); assuming %d characters", error, DEFAULT_MAX_CHARACTERS)
                return DEFAULT_MAX_CHARACTERS, DEFAULT_URL_CHARACTERS
            self._limits = (
                statuses.get("max_characters") or DEFAULT_MAX_CHARACTERS,
                statuses.get("characters_reserved_per_url") or DEFAULT_URL_CHARACTERS,
            )
        return self._limits

    def _statuses_configuration(self) -> dict:
        """``configuration.statuses`` of /api/v2/instance, or of /api/v1/instance before Mastodon 4.0."""
        try:
            instance = self._call("read the server's limits", self._api.instance_v2)
        except Rejected:
            instance = self._call("read the server's limits", self._api.instance_v1)
        statuses = (instance.get("configuration") or {}).get("statuses")
        return statuses or {"max_characters": instance.get("max_toot_chars")}  # Pleroma and old forks

    # -- reading ---------------------------------------------------------------

    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        me_id = str(self._account().id)
        self._instance_limits()  # read while polling, so cards never wait for the server
        result = FetchResult(mentions=[])
        kept_ids: set[str] = set()

        def keep(mention: Mention) -> None:
            if mention.external_id not in kept_ids:
                kept_ids.add(mention.external_id)
                result.mentions.append(mention)

        notifications, cursor = self._read_notifications(cursors.get("notifications"), since)
        for item in notifications:
            if item.type == "mention" and item.status is not None and str(item.status.account.id) != me_id:
                to_brand = str(item.status.in_reply_to_account_id or "") == me_id
                keep(self._mention(item.status, reason="reply" if to_brand else "mention"))
        if cursor:
            result.cursors["notifications"] = cursor

        for keyword in self.keywords:
            feed = f"search:{keyword.lower()}"
            try:
                statuses, cursor = self._search(keyword, cursors.get(feed), since)
            except PlatformError as error:
                result.errors.append(error)
                continue
            result.cursors[feed] = cursor
            for status in statuses:
                if str(status.account.id) != me_id:
                    keep(self._mention(status, reason="keyword"))

        result.mentions = self._with_threads(result.mentions)
        return result

    def mentions_from_notifications(self, notifications: list) -> list[Mention]:
        """Notifications a stream pushed or a backfill read, as mentions shaped as a poll shapes them."""
        me_id = str(self._account().id)
        mentions = []
        for item in notifications:
            if item.type == "mention" and item.status is not None and str(item.status.account.id) != me_id:
                to_brand = str(item.status.in_reply_to_account_id or "") == me_id
                mentions.append(self._mention(item.status, reason="reply" if to_brand else "mention"))
        return self._with_threads(mentions)

    def notifications_after(self, min_id: str) -> tuple[list, dict]:
        """Mention notifications newer than ``min_id``, oldest first, and the cursor after them."""
        return self._notifications_after(min_id)

    def _read_notifications(self, cursor: dict | None, since: datetime) -> tuple[list, dict | None]:
        if cursor and cursor.get("min_id"):
            return self._notifications_after(cursor["min_id"])
        return self._notifications_since(since)

    def _notifications_after(self, min_id: str) -> tuple[list, dict]:
        """Forward from the cursor, oldest page first; a short page is the last."""
        read, newest = [], min_id
        for _ in range(MAX_PAGES):
            page = self._call("read notifications", partial(self._api.notifications, types=["mention"], min_id=newest, limit=PAGE_SIZE))
            if not page:
                break
            read += page
            newest = max((str(n.id) for n in page), key=int)
            if len(page) < PAGE_SIZE:
                break
        else:
            log.warning("mastodon: more than %d notifications since the last poll; the rest come next poll", MAX_PAGES * PAGE_SIZE)
        return sorted(read, key=lambda n: int(n.id)), {"min_id": newest}

    def _notifications_since(self, since: datetime) -> tuple[list, dict | None]:
        """First run: back from the newest until ``since``."""
        read, newest, max_id = [], None, None
        for _ in range(MAX_PAGES):
            page = self._call("read notifications", partial(self._api.notifications, types=["mention"], max_id=max_id, limit=PAGE_SIZE))
            if not page:
                break
            newest = max([str(n.id) for n in page] + ([newest] if newest else []), key=int)
            recent = [n for n in page if n.created_at >= since]
            read += recent
            if len(recent) < len(page):
                break
            max_id = min((str(n.id) for n in page), key=int)
        return sorted(read, key=lambda n: int(n.id)), {"min_id": newest} if newest else None

    def _search(self, keyword: str, cursor: dict | None, since: datetime) -> tuple[list, dict]:
        newest = _parse_time(cursor["newest"]) if cursor else since
        already = set(cursor.get("seen", [])) if cursor else set()
        after = newest - SEARCH_OVERLAP if cursor else since
        found: dict[str, object] = {}
        for page_number in range(MAX_SEARCH_PAGES):
            page = self._call(
                f"search statuses for {keyword!r}",
                partial(
                    self._api.search_v2, _search_query(keyword), resolve=False, result_type="statuses",
                    exclude_unreviewed=False, min_id=after, limit=SEARCH_PAGE_SIZE, offset=page_number * SEARCH_PAGE_SIZE,
                ),
            ).statuses
            found.update((str(s.id), s) for s in page)
            if len(page) < SEARCH_PAGE_SIZE:
                break
        newest = max([newest, *(s.created_at for s in found.values())])
        seen = sorted((i for i, s in found.items() if s.created_at >= newest - SEARCH_OVERLAP), key=int)
        fresh = [s for i, s in sorted(found.items(), key=lambda item: int(item[0])) if i not in already]
        return fresh, {"newest": _iso(newest), "seen": seen}

    def _mention(self, status, *, reason: str) -> Mention:
        account = status.account
        status_id = str(status.id)
        parent_id = str(status.in_reply_to_id) if status.in_reply_to_id else None
        return Mention(
            platform=self.name,
            external_id=status_id,
            thread_key=parent_id or status_id,  # a reply's thread root comes from _with_threads
            thread_ref={"id": status_id, "acct": account.acct, "visibility": status.visibility, "in_reply_to_id": parent_id},
            reason=reason,
            author_id=str(account.id),
            author_handle=account.acct,
            author_name=account.display_name or None,
            text=html_to_text(status.content),
            url=status.url or status.uri,
            created_at=min(status.created_at.astimezone(timezone.utc), datetime.now(timezone.utc)),
            language=str(status.get("language") or "")[:16] or None,
        )

    def _with_threads(self, mentions: list[Mention]) -> list[Mention]:
        """Each reply's thread root (to group turns) and the post it answers (for the card and the prompt)."""
        completed = []
        for index, mention in enumerate(mentions):
            parent_id = mention.thread_ref["in_reply_to_id"]
            if parent_id is None:
                completed.append(mention)
                continue
            try:
                context = self._call("read the thread", partial(self._api.status_context, mention.external_id), missing_means_gone=True)
            except MentionGone:
                continue  # deleted since the notification came
            except PlatformError as error:
                log.info("mastodon: could not read threads (%s); cards show the mention alone", error)
                return completed + mentions[index:]
            parent = next((s for s in context.ancestors if str(s.id) == parent_id), None)
            root_id = str(context.ancestors[0].id) if context.ancestors else parent_id
            parent_text = html_to_text(parent.content) if parent is not None else None
            completed.append(replace(mention, thread_key=root_id, parent_text=parent_text))
        return completed

    def find_brand_reply(self, thread_ref: dict) -> PostedReply | None:
        me_id = str(self._account().id)
        context = self._call("read the thread", partial(self._api.status_context, thread_ref["id"]), missing_means_gone=True)
        public_mention = thread_ref.get("visibility") != "direct"
        for status in context.descendants:
            if public_mention and status.visibility == "direct":
                continue  # a private reply (ours, or sent from the app) is not the answer in the thread
            if str(status.in_reply_to_id) == thread_ref["id"] and str(status.account.id) == me_id:
                return PostedReply(external_id=str(status.id), url=status.url or status.uri)
        return None

    # -- writing ---------------------------------------------------------------

    def compose_reply(self, thread_ref: dict, text: str) -> str:
        return self.format.compose(text, thread_ref["acct"])

    def post_reply(self, thread_ref: dict, text: str, *, idempotency_key: str) -> PostedReply:
        visibility = thread_ref.get("visibility")
        status = self._call(
            "post the reply",
            lambda: self._api.status_post(
                text,
                in_reply_to_id=thread_ref["id"],
                visibility=visibility if visibility in VISIBILITIES else None,  # None: the account's default
                idempotency_key=idempotency_key,  # Mastodon keeps it for an hour: a retry returns the same status
            ),
            missing_means_gone=True,
        )
        return PostedReply(external_id=str(status.id), url=status.url or status.uri)


    def send_private(self, thread_ref: dict, author_id: str, author_handle: str, text: str, *, idempotency_key: str) -> PostedReply:
        """A ``direct`` status that only the accounts it @mentions see (``text`` starts with the author's
        ``@acct``), in reply to their mention: since 4.3 Mastodon files a private mention from an account
        the reader does not follow under filtered notifications unless it answers one of their posts."""
        status = self._call("send the private message", lambda: self._api.status_post(
            text, in_reply_to_id=thread_ref["id"], visibility="direct", idempotency_key=idempotency_key), missing_means_gone=True)
        return PostedReply(external_id=str(status.id), url=status.url or status.uri)


class _PlainText(HTMLParser):
    """A status's HTML as its author typed it: ``<br>`` is a new line, a new ``<p>`` a blank line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities come out unescaped
        self.parts: list[str] = []
        self._paragraphs = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            if self._paragraphs:
                self.parts.append("\n\n")
            self._paragraphs += 1

    def handle_data(self, data: str) -> None:
        self.parts.append(data)  # hidden spans too: they hold the start and end of long URLs


def html_to_text(content: str | None) -> str:
    parser = _PlainText()
    parser.feed(content or "")
    parser.close()
    return "".join(parser.parts).strip()


def _search_query(keyword: str) -> str:
    """Mastodon ORs the words of a query; a keyword of several words is meant as one phrase."""
    return f'"{keyword}"' if " " in keyword.strip() and '"' not in keyword else keyword


def _status_code(error: MastodonAPIError) -> int | None:
    args = error.args
    return args[1] if len(args) > 1 and isinstance(args[1], int) else None


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
