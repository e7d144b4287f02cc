"""Reddit through `praw`: the inbox and keyword search in, replies in Markdown out.

Feeds: the inbox (``/message/inbox``, which Reddit builds by merging comment
replies, post replies and username mentions) and one search per keyword in
``REDDIT_SUBREDDITS``. Search finds posts only; Reddit's API has no comment search.

Cursors: each feed keeps the newest ``created_utc`` read and the fullnames read
in the ``OVERLAP`` before it (``{"newest": epoch, "seen": {fullname: epoch}}``).
Each poll pages newest-first down to that overlap and skips what it has seen,
so a restart neither misses nor repeats anything, and a post that Reddit's
search indexes a few minutes late is still found. The first run reads back to
``since``. Replies handed over are marked read as a courtesy; our cursor is the
truth, so a person reading the inbox in the app cannot make Conversant miss one.

Waiting: praw sleeps and re-posts when Reddit answers RATELIMIT with a wait up
to ``ratelimit_seconds``; we set 0, so only sub-second waits are slept and any
longer one comes back as ``RateLimited`` for the outbox to retry on a later
cycle. prawcore also paces requests by the ``x-ratelimit-*`` headers (at most
10 s a request), but once the window's quota is spent it would sleep until the
window resets, up to 10 minutes; the adapter refuses to start a call then and
raises ``RateLimited`` instead.
"""
from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import praw
from praw.exceptions import ClientException, RedditAPIException
from praw.models import Comment, Submission
from prawcore import Requestor
from prawcore.exceptions import (
    Forbidden,
    InsufficientScope,
    InvalidInvocation,
    InvalidToken,
    NotFound,
    OAuthException,
    PrawcoreException,
    RequestException,
    ResponseException,
)

from bot import deadline
from bot.deadline import CALL_SECONDS, DeadlineExceeded
from bot.platforms.formats import REDDIT
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

OAUTH_URL = "https://oauth.reddit.com"
REDDIT_URL = "https://www.reddit.com"  # the token endpoint, and where people read threads
MAX_ITEMS = 1000  # Reddit lists at most 1,000 items; an older backlog is out of reach
OVERLAP = timedelta(minutes=15)  # Reddit's search index can lag new posts by minutes
INBOX_REASONS = {"username_mention": "mention", "comment_reply": "reply", "post_reply": "reply"}
DELETED_TEXTS = {"[deleted]", "[removed]"}
WAIT_RE = re.compile(r"(\d+)\s*(millisecond|second|minute|hour)s?", re.IGNORECASE)
LOGIN_HINT = (
    "check REDDIT_USERNAME and REDDIT_PASSWORD: the account must be a developer of the app, "
    "and password login does not work while two-factor authentication is on"
)
APP_HINT = "check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET: a 'script' app from https://www.reddit.com/prefs/apps"
SETTINGS_HINT = "check REDDIT_CLIENT_ID, REDDIT_CLIENT_SECRET, REDDIT_USERNAME, REDDIT_PASSWORD and REDDIT_USER_AGENT"
SUSPENDED_HINT = "Reddit explains the suspension in the account's inbox; appeal at https://www.reddit.com/appeals"


def _one_at_a_time(method):
    """praw is not thread safe, and a web process may post a reply while the worker polls."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class RedditPlatform:
    name = "reddit"
    label = "Reddit"
    call_deadline = CALL_SECONDS  # one call, however the server trickles (bot/deadline.py)
    format = REDDIT
    text_limit = REDDIT.limit

    def __init__(self, client_id: str, client_secret: str, username: str, password: str,
                 user_agent: str | None = None, *, subreddits: Iterable[str] = ("all",),
                 keywords: Iterable[str] = (), oauth_url: str = OAUTH_URL, reddit_url: str = REDDIT_URL,
                 timeout: float = 16.0) -> None:  # prawcore's own default timeout
        self.username = username.removeprefix("u/").removeprefix("/u/")
        self.keywords = tuple(keywords)
        self.subreddits = _subreddit_path(subreddits)
        self.oauth_url = oauth_url
        self._credentials = {"client_id": client_id, "client_secret": client_secret,
                             "username": self.username, "password": password}
        # Reddit asks for <platform>:<app ID>:<version> (by /u/<username>) and throttles generic agents.
        self._user_agent = user_agent or f"python:conversant:v1 (by /u/{self.username})"
        self._urls = {"oauth_url": oauth_url, "reddit_url": reddit_url}
        self._timeout = timeout
        self._quota = _Quota()
        self._lock = threading.Lock()
        self._reddit: praw.Reddit | None = None

    # -- session ---------------------------------------------------------------

    def _session(self) -> praw.Reddit:
        if self._reddit is None:
            reddit = self._new_client()
            me = self._call("log in", reddit.user.me)  # the password grant happens here
            if getattr(me, "is_suspended", False):
                raise AuthFailed(self.name, f"Reddit has suspended u/{self.username}", hint=SUSPENDED_HINT)
            self.username = me.name  # as Reddit spells it
            self._reddit = reddit
        return self._reddit

    def _new_client(self) -> praw.Reddit:
        try:
            return praw.Reddit(
                **self._credentials, **self._urls, user_agent=self._user_agent,
                ratelimit_seconds=0,  # sleep only through sub-second RATELIMIT waits (see the top of this file)
                check_for_updates=False, check_for_async=False,
                requestor_class=_Requestor, requestor_kwargs={"quota": self._quota, "timeout": self._timeout},
            )
        except (ClientException, InvalidInvocation) as error:  # a setting missing or unusable
            raise AuthFailed(self.name, f"the Reddit settings are not usable: {error}", hint=SETTINGS_HINT) from None

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one praw call, turning its errors into our error tree."""
        self._check_quota(what)
        try:
            return deadline.call(action, self.call_deadline, f"Reddit: {what}")
        except DeadlineExceeded:
            raise Unavailable(self.name, f"Reddit did not finish answering within {self.call_deadline:g} s while trying to {what}",
                              hint="Conversant tries again on the next poll") from None
        except RedditAPIException as error:
            raise self._api_error(error, what) from None
        except OAuthException as error:  # the token endpoint said no: invalid_grant for a wrong password
            self._reddit = None
            raise AuthFailed(self.name, f"Reddit refused to log in u/{self.username}: {error.error}",
                             hint=LOGIN_HINT) from None
        except Forbidden:
            raise self._forbidden(what) from None
        except (InvalidToken, InsufficientScope) as error:
            self._reddit = None
            raise AuthFailed(self.name, f"Reddit did not accept the access of u/{self.username} to {what} "
                             f"({type(error).__name__})", hint=LOGIN_HINT) from None
        except NotFound:
            raise MentionGone(self.name, f"Reddit has no such post or comment (404 while trying to {what})") from None
        except ClientException as error:  # praw's "not in the comment tree" and "no data returned"
            raise MentionGone(self.name, f"the Reddit comment is gone ({error})") from None
        except ResponseException as error:
            raise self._status_error(error, what) from None
        except PrawcoreException as error:  # network, timeout, an interrupted write
            raise Unavailable(self.name, f"Reddit did not answer while trying to {what}: {_detail(error)}",
                              hint="Conversant tries again on the next poll") from None

    def _api_error(self, error: RedditAPIException, what: str) -> PlatformError:
        """Errors Reddit returns inside ``{"json": {"errors": [[name, message, field]]}}``."""
        names = {item.error_type for item in error.items}
        detail = "; ".join(f"{item.error_type}: {item.message}" for item in error.items)
        if "RATELIMIT" in names:
            return RateLimited(self.name, f"Reddit asked Conversant to slow down while trying to {what} ({detail})",
                               retry_at=_retry_at(detail))
        if "DELETED_COMMENT" in names:
            return MentionGone(self.name, f"the Reddit comment was deleted or removed ({detail})")
        if names & {"THREAD_LOCKED", "TOO_OLD"}:
            return Rejected(self.name, f"the Reddit thread takes no new replies: it is locked or archived ({detail})")
        return Rejected(self.name, f"Reddit refused to {what}: {detail}")

    def _forbidden(self, what: str) -> AuthFailed:
        """403: tell a suspended account apart from one that is not allowed in that subreddit."""
        if self._account_suspended():
            return AuthFailed(self.name, f"Reddit has suspended u/{self.username}, so Conversant cannot {what}",
                              hint=SUSPENDED_HINT)
        return AuthFailed(self.name, f"Reddit does not let u/{self.username} {what} (403 Forbidden): the account may "
                          "be banned from that subreddit, or the subreddit is private or quarantined",
                          hint="a moderator of the subreddit can lift a ban")

    def _account_suspended(self) -> bool:
        if self._reddit is None:
            return False
        try:
            return bool(getattr(self._reddit.user.me(use_cache=False), "is_suspended", False))
        except PrawcoreException:
            return False

    def _status_error(self, error: ResponseException, what: str) -> PlatformError:
        status = error.response.status_code
        if status == 401:  # only the token endpoint answers 401 without a retry: the app's id or secret is wrong
            self._reddit = None
            return AuthFailed(self.name, f"Reddit refused the app's credentials while trying to {what} (401)",
                              hint=APP_HINT)
        if status == 429:
            return RateLimited(self.name, f"Reddit answered 429 Too Many Requests while trying to {what}",
                               retry_at=_reset_at(error.response.headers))
        if status >= 500:
            return Unavailable(self.name, f"Reddit failed while trying to {what} (HTTP {status})",
                               hint="Conversant tries again on the next poll")
        return Rejected(self.name, f"Reddit refused to {what} (HTTP {status})")

    def _check_quota(self, what: str) -> None:
        back_at = self._quota.exhausted_until()
        if back_at:
            raise RateLimited(self.name, f"Reddit's request quota for this app is spent until "
                              f"{back_at:%H:%M:%S} UTC; not trying to {what} before then", retry_at=back_at)

    @_one_at_a_time
    def check_login(self) -> str:
        self._session()
        return f"u/{self.username} via {self.oauth_url}"

    def text_length(self, text: str) -> int:
        return len(text)

    # -- reading ---------------------------------------------------------------

    @_one_at_a_time
    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        reddit = self._session()
        result = FetchResult(mentions=[])
        handed: set[str] = set()

        def keep(mention: Mention) -> None:
            if mention.external_id not in handed:
                handed.add(mention.external_id)
                result.mentions.append(mention)

        things, cursor = self._read_feed("read the inbox", reddit.inbox.all(limit=MAX_ITEMS),
                                         cursors.get("inbox"), since)
        if cursor:
            result.cursors["inbox"] = cursor
        replies = [t for t in things if self._is_inbox_reply(t)]
        for comment in replies:
            keep(self._mention_from_inbox(comment))
        self._mark_read(reddit, [c for c in replies if c.new])

        for keyword in self.keywords:
            feed = f"search:{keyword.lower()}"
            try:
                posts, cursor = self._search(reddit, keyword, cursors.get(feed), since)
            except PlatformError as error:
                result.errors.append(error)
                continue
            for post in posts:
                if not self._is_own(post) and not _is_gone(post):
                    keep(self._mention_from_post(post))
            if cursor:
                result.cursors[feed] = cursor

        self._attach_parent_texts(reddit, result.mentions)
        return result

    def _search(self, reddit: praw.Reddit, keyword: str, cursor: dict | None, since: datetime):
        listing = reddit.subreddit(self.subreddits).search(
            _phrase(keyword), sort="new", time_filter=_time_filter(_floor(cursor, since)), limit=MAX_ITEMS
        )
        return self._read_feed(f"search r/{self.subreddits} for {keyword!r}", listing, cursor, since)

    def _read_feed(self, what: str, listing: Iterable, cursor: dict | None, since: datetime):
        """The things newer than the feed's cursor (newest first), and the cursor to save after them."""
        floor = _floor(cursor, since)
        seen = dict(cursor["seen"]) if cursor else {}
        fresh: list = []

        def read() -> int:
            count = 0
            for thing in listing:
                count += 1
                if thing.created_utc < floor:
                    break
                if thing.fullname not in seen:
                    fresh.append(thing)
                    seen[thing.fullname] = thing.created_utc
                self._check_quota(what)  # the next page would wait for the window to reset
            return count

        if self._call(what, read) >= MAX_ITEMS:
            log.warning("reddit: %s: more than %d items since the last poll; older ones are out of reach",
                        what, MAX_ITEMS)
        return fresh, _next_cursor(seen)

    def _is_inbox_reply(self, thing) -> bool:
        """Comment replies, post replies and mentions by someone else; private messages stay for people."""
        return (isinstance(thing, Comment) and getattr(thing, "type", None) in INBOX_REASONS
                and not self._is_own(thing) and not _is_gone(thing))

    def _is_own(self, thing) -> bool:
        return thing.author is not None and thing.author.name.lower() == self.username.lower()

    def _mark_read(self, reddit: praw.Reddit, comments: list[Comment]) -> None:
        if not comments:
            return
        try:
            self._call("mark inbox items read", lambda: reddit.inbox.mark_read(comments))
        except PlatformError as error:
            log.info("reddit: marking inbox items read failed (%s); our own cursor is unaffected", error)

    def _mention_from_inbox(self, comment: Comment) -> Mention:
        permalink = comment.context.split("?", 1)[0]  # inbox items carry context, not permalink
        return self._mention(
            comment, reason=INBOX_REASONS[comment.type], text=comment.body, permalink=permalink,
            thread_permalink=permalink.rstrip("/").rsplit("/", 1)[0] + "/",
            submission_id=comment.submission.id, parent=comment.parent_id,
        )

    def _mention_from_post(self, post: Submission) -> Mention:
        permalink = post.permalink.split("?", 1)[0]
        return self._mention(post, reason="keyword", text=_text_of(post), permalink=permalink,
                             thread_permalink=permalink, submission_id=post.id, parent=None)

    def _mention(self, thing, *, reason: str, text: str, permalink: str, thread_permalink: str,
                 submission_id: str, parent: str | None) -> Mention:
        created = datetime.fromtimestamp(thing.created_utc, timezone.utc)
        return Mention(
            platform=self.name,
            external_id=thing.fullname,
            thread_key=f"t3_{submission_id}",
            thread_ref={"fullname": thing.fullname, "submission_id": submission_id, "parent": parent,
                        "thread_permalink": thread_permalink},
            reason=reason,
            author_id=getattr(thing, "author_fullname", None) or thing.author.name,
            author_handle=thing.author.name,
            author_name=None,  # Reddit shows usernames only
            text=text,
            url=f"{REDDIT_URL}{permalink}",
            created_at=min(created, datetime.now(timezone.utc)),
        )

    def _attach_parent_texts(self, reddit: praw.Reddit, mentions: list[Mention]) -> None:
        """Fill in the post or comment each reply answers, so the card and the prompt can show it."""
        wanted = sorted({m.thread_ref["parent"] for m in mentions if m.thread_ref.get("parent")})
        if not wanted:
            return
        try:
            things = self._call("read the posts being replied to", lambda: list(reddit.info(fullnames=wanted)))
        except PlatformError as error:
            log.info("reddit: could not read parent posts (%s); cards show the mention alone", error)
            return
        texts = {thing.fullname: _text_of(thing) for thing in things}
        for index, mention in enumerate(mentions):
            parent = texts.get(mention.thread_ref.get("parent") or "")
            if parent is not None:
                mentions[index] = replace(mention, parent_text=parent)

    @_one_at_a_time
    def find_brand_reply(self, thread_ref: dict) -> PostedReply | None:
        reddit = self._session()
        kind, thing_id = thread_ref["fullname"].split("_", 1)
        if kind == "t3":
            replies = self._call("read the post's comments", lambda: self._top_level_comments(reddit, thing_id))
        else:
            replies = self._call("read the comment's replies",
                                 lambda: self._comment_replies(reddit, thing_id, thread_ref["submission_id"]))
        for reply in replies:
            if isinstance(reply, Comment) and self._is_own(reply):
                return PostedReply(external_id=reply.fullname, url=_reply_url(thread_ref, reply.id))
        return None

    def _top_level_comments(self, reddit: praw.Reddit, submission_id: str) -> list:
        submission = reddit.submission(id=submission_id)
        submission.comment_sort = "new"  # a reply of ours is recent: it comes before any "load more"
        if _is_gone(submission):
            raise MentionGone(self.name, "the Reddit post was deleted or removed")
        return list(submission.comments)

    def _comment_replies(self, reddit: praw.Reddit, comment_id: str, submission_id: str) -> list:
        comment = reddit.comment(id=comment_id)
        comment.submission = reddit.submission(id=submission_id)  # spares praw a lookup of it
        comment.reply_sort = "new"
        comment.refresh()  # raises ClientException when the comment left the tree
        if _is_gone(comment):
            raise MentionGone(self.name, "the Reddit comment was deleted or removed")
        return list(comment.replies)

    # -- writing ---------------------------------------------------------------

    def compose_reply(self, thread_ref: dict, text: str) -> str:
        return text  # Reddit notifies the parent's author of a reply without a mention

    @_one_at_a_time
    def post_reply(self, thread_ref: dict, text: str, *, idempotency_key: str) -> PostedReply:
        # Reddit has no idempotency key: the outbox's thread check guards against a double post.
        reddit = self._session()
        kind, thing_id = thread_ref["fullname"].split("_", 1)
        target = reddit.submission(id=thing_id) if kind == "t3" else reddit.comment(id=thing_id)
        created = self._call("post the reply", lambda: target.reply(text))
        if created is None:  # what Reddit does in a quarantined subreddit the account has not opted into
            raise Unavailable(self.name, "Reddit took the reply but did not return it",
                              hint="Conversant looks for it in the thread before posting again")
        return PostedReply(external_id=created.fullname, url=_reply_url(thread_ref, created.id))

    def send_private(self, thread_ref: dict, author_id: str, author_handle: str, text: str, *, idempotency_key: str) -> PostedReply:
        """A private message (POST /api/compose). Reddit answers with no id to look it up by."""
        reddit = self._session()
        try:
            self._call("send the private message", lambda: _send_message(reddit, author_handle, text))
        except Rejected as error:
            if "NOT_WHITELISTED_BY_USER_MESSAGE" in error.message:
                raise Rejected(self.name, f"u/{author_handle} does not accept private messages from the brand's account") from None
            raise
        return PostedReply(external_id=f"u/{author_handle}", url=f"{REDDIT_URL}/message/sent/")


PRIVATE_SUBJECT = "About your post"  # /api/compose needs a subject of at most 100 characters


def _send_message(reddit, to: str, text: str) -> None:
    reddit.redditor(to).message(subject=PRIVATE_SUBJECT, message=text)


class _Quota:
    """When Reddit's request quota for this app is spent, and when the window resets."""

    def __init__(self) -> None:
        self._back_at: datetime | None = None

    def note(self, headers) -> None:
        if "x-ratelimit-remaining" not in headers:
            return
        spent = float(headers["x-ratelimit-remaining"]) <= 0
        self._back_at = _reset_at(headers) if spent else None

    def exhausted_until(self) -> datetime | None:
        return self._back_at if self._back_at and self._back_at > datetime.now(timezone.utc) else None


class _InterruptedWrite(Exception):
    """A write whose outcome is unknown. Not one of prawcore's retryable errors, on purpose."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"{cause}; Reddit may or may not have saved it")


class _Requestor(Requestor):
    """prawcore's HTTP layer, plugged in through praw's ``requestor_class``, with two changes.

    A write that fails on the way (timeout, dropped connection, 5xx) is not retried:
    Reddit may have saved it, and prawcore's retry would post the reply twice. The
    outbox settles it through ``find_brand_reply`` instead. And every answer's quota
    headers are noted, so the adapter can refuse a call prawcore would sleep through.
    """

    def __init__(self, *args, quota: _Quota, **kwargs) -> None:  # praw 7 passes the first three by position
        super().__init__(*args, **kwargs)
        self._quota = quota

    def request(self, method: str, url: str, *args, timeout: float | None = None, **kwargs):
        writing = method.upper() != "GET"
        try:
            response = super().request(method, url, *args, **kwargs)  # with our timeout, not prawcore's default
        except RequestException as error:
            if not writing:
                raise
            raise RequestException(_InterruptedWrite(_describe(error.original_exception)), error.request_args,
                                   error.request_kwargs) from None
        self._quota.note(response.headers)
        if writing and response.status_code >= 500:
            raise RequestException(_InterruptedWrite(f"HTTP {response.status_code}"), (method, url), kwargs)
        return response


def _subreddit_path(subreddits: Iterable[str]) -> str:
    """``gadgets+apps`` for a multireddit search; "all" means everywhere."""
    names = [s.strip().removeprefix("/").removeprefix("r/") for s in subreddits if s.strip()]
    return "all" if not names or "all" in (n.lower() for n in names) else "+".join(names)


def _phrase(keyword: str) -> str:
    """Quoted, so a keyword of several words matches as a phrase."""
    return '"' + keyword.replace('"', "") + '"'


def _floor(cursor: dict | None, since: datetime) -> float:
    return cursor["newest"] - OVERLAP.total_seconds() if cursor else since.timestamp()


def _next_cursor(seen: dict[str, float]) -> dict | None:
    if not seen:
        return None
    newest = max(seen.values())
    cutoff = newest - OVERLAP.total_seconds()
    return {"newest": newest, "seen": {name: created for name, created in seen.items() if created >= cutoff}}


def _time_filter(floor: float) -> str:
    """The narrowest of search's ``t`` windows that still reaches back to ``floor``."""
    age = datetime.now(timezone.utc).timestamp() - floor
    for name, seconds in (("hour", 3600), ("day", 86400), ("week", 7 * 86400), ("month", 28 * 86400),
                          ("year", 365 * 86400)):
        if age < seconds - 60:
            return name
    return "all"


def _is_gone(thing) -> bool:
    """Deleted by its author or removed by moderators: Reddit blanks the author or the text."""
    text = thing.body if isinstance(thing, Comment) else thing.selftext
    return thing.author is None or text in DELETED_TEXTS or bool(getattr(thing, "removed_by_category", None))


def _text_of(thing) -> str:
    if isinstance(thing, Comment):
        return thing.body
    return f"{thing.title}\n\n{thing.selftext}".strip()


def _reply_url(thread_ref: dict, comment_id: str) -> str:
    """A comment's permalink is its thread's permalink plus its id."""
    return f"{REDDIT_URL}{thread_ref['thread_permalink']}{comment_id}/"


def _retry_at(message: str) -> datetime | None:
    """When "try again in 9 minutes" (or "take a break for 5 minutes") ends."""
    match = WAIT_RE.search(message)
    if not match:
        return None
    amount, unit = int(match.group(1)), match.group(2).lower()
    seconds = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600}[unit] * amount
    return datetime.now(timezone.utc) + timedelta(seconds=max(seconds, 1))


def _reset_at(headers) -> datetime | None:
    wait = headers.get("retry-after") or headers.get("x-ratelimit-reset")
    try:
        return datetime.now(timezone.utc) + timedelta(seconds=float(wait)) if wait else None
    except ValueError:
        return None


def _detail(error: PrawcoreException) -> str:
    original = getattr(error, "original_exception", None)
    if original is None:
        return str(error)
    return str(original) if isinstance(original, _InterruptedWrite) else _describe(original)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
