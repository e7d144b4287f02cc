"""X through tweepy's API v2 Client: the mentions timeline and recent search in, threaded replies out.

Auth: every call is signed with OAuth 1.0a user context (the app's key and secret plus
the brand account's access token). Posting requires it, and the mentions timeline read
as its owner is billed as an "Owned Read" ($0.001 instead of $0.005 a post). When
``X_BEARER_TOKEN`` is set, recent search (keywords and the thread check) uses it
instead, which draws on the app's rate limit (450 / 15 min) rather than the user's (300).

Cursors: the mentions timeline and each keyword search keep the newest post id read
(``{"since_id": id}``); X ids grow with time, and ``since_id`` is exclusive, so a
restart neither misses nor repeats anything. The first run reads from ``since``
(``start_time``), and so does a search whose cursor is older than the 7 days recent
search covers (X answers 400 to such a ``since_id``). Each poll pages
(``pagination_token`` / ``next_token``) through everything newer than the cursor, up to
``MAX_PAGES`` pages.

X has no base-URL option in tweepy; see ``_RebasedSession``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from functools import partial

import requests
import tweepy

from bot import deadline
from bot.deadline import CALL_SECONDS, DeadlineExceeded
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
from bot.platforms.formats import X as X_FORMAT
from bot.platforms.formats import X_NO_PRIVATE
from bot.platforms.x_text import LIMIT, weighted_length

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.x.com"
TWEEPY_HOST = "https://api.twitter.com"  # hard-coded in tweepy.client.BaseClient.request
PAGE_SIZE = 100  # the most both endpoints serve per page
MAX_PAGES = 8  # 800 posts a poll: the mentions timeline serves no more than the newest 800
SEARCH_WINDOW = timedelta(days=7) - timedelta(minutes=1)  # recent search rejects an older start_time or since_id
SNOWFLAKE_EPOCH = datetime(2010, 11, 4, 1, 42, 54, 657000, tzinfo=timezone.utc)
# note_tweet holds the whole text of a long post (over 280), whose "text" is cut short.
TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets", "note_tweet"]
EXPANSIONS = ["author_id", "referenced_tweets.id"]  # authors, and the posts replied to or quoted
USER_FIELDS = ["username", "name"]

CREDENTIALS_HINT = (
    "check X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET (and X_BEARER_TOKEN if set): "
    "the app's keys and the brand account's access token, from the X Developer Console"
)
PLAN_HINT = "your X API plan does not include this endpoint: check the app's project and access in the X Developer Console"
CREDITS_HINT = "your X API plan does not include this endpoint, or its credits are used up: add credits in the X Developer Console"
WRITE_PERMISSION_HINT = "set the X app's permissions to 'Read and write', then regenerate X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET"
REPLY_RESTRICTED_HINT = (
    "X lets self-serve apps reply only to posts that @mention or quote the brand; answer this one in the X app"
)
RETRY_HINT = "Conversant tries again on the next poll"


class _RebasedSession(requests.Session):
    """tweepy's HTTP session, sending to ``base_url`` with a timeout.

    tweepy.Client has no base-URL option: ``BaseClient.request`` joins a fixed host to
    each route and calls ``self.session.request`` without a timeout. ``session`` is a
    documented attribute of the Client, so replacing it is the one seam for both. OAuth
    1.0a signing runs inside ``Session.request``, after the rewrite, so a signature
    covers the URL actually called.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWEEPY_HOST):
            url = self.base_url + url[len(TWEEPY_HOST):]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def post_url(username: str, post_id: str) -> str:
    return f"https://x.com/{username}/status/{post_id}"


class XPlatform:
    name = "x"
    label = "X"
    call_deadline = CALL_SECONDS  # one call, however the server trickles (bot/deadline.py)
    format = X_FORMAT
    text_limit = LIMIT

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        access_token: str,
        access_token_secret: str,
        bearer_token: str | None = None,
        keywords: tuple[str, ...] = (),
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout: float = 20.0,
    ) -> None:
        self.keywords = keywords
        self.api_base_url = api_base_url.rstrip("/")
        self._client = tweepy.Client(
            bearer_token=bearer_token,
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            return_type=dict,  # the wire format as X documents it, ids as strings
            wait_on_rate_limit=False,  # a poll must never sleep; RateLimited carries the reset time
        )
        self._client.session = _RebasedSession(self.api_base_url, timeout)
        self._search_as_app = bearer_token is not None
        self._brand: dict | None = None

    # -- errors ------------------------------------------------------------------

    def _call(self, what: str, action, *, replying: bool = False):
        """Run one tweepy call within ``call_deadline``, turning its errors into our error tree."""
        try:
            return deadline.call(action, self.call_deadline, f"X: {what}")
        except DeadlineExceeded:
            raise Unavailable(self.name, f"X did not finish answering within {self.call_deadline:g} s while trying to {what}",
                              hint=RETRY_HINT) from None
        except tweepy.TooManyRequests as error:
            raise RateLimited(self.name, f"X rate limit reached while trying to {what}", retry_at=_reset_time(error)) from None
        except tweepy.Unauthorized as error:
            raise AuthFailed(self.name, f"X refused to {what}: {_detail(error)}", hint=CREDENTIALS_HINT) from None
        except tweepy.Forbidden as error:
            raise self._forbidden(what, error, replying=replying) from None
        except tweepy.NotFound as error:
            if replying:
                raise MentionGone(self.name, f"the X post is gone ({_detail(error)})") from None
            raise Rejected(self.name, f"X refused to {what}: {_detail(error)}") from None
        except tweepy.TwitterServerError as error:
            raise Unavailable(self.name, f"X failed while trying to {what}: {_detail(error)}", hint=RETRY_HINT) from None
        except tweepy.HTTPException as error:
            hint = CREDITS_HINT if error.response.status_code == 402 else None
            raise Rejected(self.name, f"X refused to {what}: {_detail(error)}", hint=hint) from None
        except requests.RequestException as error:
            # The exception's text can name the URL; the type says enough and leaks nothing.
            raise Unavailable(self.name, f"X did not answer while trying to {what}: {type(error).__name__}", hint=RETRY_HINT) from None

    def _forbidden(self, what: str, error: tweepy.Forbidden, *, replying: bool) -> PlatformError:
        problem_type = str(_problem(error).get("type", "")).rsplit("/", 1)[-1]
        detail = _detail(error)
        message = f"X refused to {what}: {detail}"
        if problem_type == "client-forbidden":
            return Rejected(self.name, message, hint=PLAN_HINT)
        if problem_type == "oauth1-permissions":
            return AuthFailed(self.name, message, hint=WRITE_PERMISSION_HINT)
        if problem_type == "unsupported-authentication":
            return AuthFailed(self.name, message, hint=CREDENTIALS_HINT)
        if replying and "deleted or not visible" in detail:
            return MentionGone(self.name, f"the X post is gone ({detail})")
        if replying and "mentioned or otherwise engaged" in detail:
            return Rejected(self.name, message, hint=REPLY_RESTRICTED_HINT)
        return Rejected(self.name, message)

    # -- the brand account ---------------------------------------------------------

    def _me(self) -> dict:
        """The brand account (id, username, name), looked up once."""
        if self._brand is None:
            self._brand = self._call("look up the brand account", self._client.get_me)["data"]
        return self._brand

    def check_login(self) -> str:
        brand = self._me()
        return f"@{brand['username']} ({brand['id']}) on {self.api_base_url}"

    def text_length(self, text: str) -> int:
        return weighted_length(text)

    # -- reading -----------------------------------------------------------------

    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        brand = self._me()
        result = FetchResult(mentions=[])
        seen_ids: set[str] = set()

        def keep(feed: str, newest: str | None, page: _Page, reason: str | None) -> None:
            for tweet in page.tweets:
                if tweet["id"] not in seen_ids and tweet.get("author_id") != brand["id"]:
                    seen_ids.add(tweet["id"])
                    result.mentions.append(self._mention(tweet, page, reason or self._mention_reason(tweet, page)))
            if newest:
                result.cursors[feed] = {"since_id": newest}

        start = _feed_start(cursors.get("mentions"), since)
        newest, page = self._read_feed("read mentions", self._mentions_page, start)
        keep("mentions", newest, page, None)

        for keyword in self.keywords:
            feed = f"search:{keyword.lower()}"
            query = _keyword_query(keyword, brand["username"])
            start = _feed_start(cursors.get(feed), since, oldest=datetime.now(timezone.utc) - SEARCH_WINDOW)
            try:
                newest, page = self._read_feed(f"search posts for {keyword!r}", partial(self._search_page, query), start)
            except PlatformError as error:
                result.errors.append(error)
                continue
            keep(feed, newest, page, "keyword")
        return result

    def _mentions_page(self, start: dict, token: str | None) -> dict:
        return self._client.get_users_mentions(
            self._me()["id"], max_results=PAGE_SIZE, pagination_token=token, tweet_fields=TWEET_FIELDS,
            expansions=EXPANSIONS, user_fields=USER_FIELDS, user_auth=True, **start,
        )

    def _search_page(self, query: str, start: dict, token: str | None) -> dict:
        return self._client.search_recent_tweets(
            query, max_results=PAGE_SIZE, next_token=token, tweet_fields=TWEET_FIELDS,
            expansions=EXPANSIONS, user_fields=USER_FIELDS, user_auth=not self._search_as_app, **start,
        )

    def _read_feed(self, what: str, fetch_page, start: dict) -> tuple[str | None, _Page]:
        """Every post after ``start`` (a ``since_id`` or a ``start_time``), newest first, and the newest id."""
        page, newest, token = _Page(), None, None
        for _ in range(MAX_PAGES):
            response = self._call(what, partial(fetch_page, start, token))
            page.add(response)
            newest = newest or response.get("meta", {}).get("newest_id")  # the first page holds the newest
            token = response.get("meta", {}).get("next_token")
            if not token:
                break
        else:
            log.warning("x: more than %d posts to %s since the last poll; older ones are skipped", MAX_PAGES * PAGE_SIZE, what)
        return newest, page

    def _mention_reason(self, tweet: dict, page: _Page) -> str:
        brand_id = self._me()["id"]
        if tweet.get("in_reply_to_user_id") == brand_id:
            return "reply"
        quoted = [page.referenced.get(ref["id"], {}) for ref in tweet.get("referenced_tweets", []) if ref["type"] == "quoted"]
        if any(post.get("author_id") == brand_id for post in quoted):
            return "quote"
        return "mention"

    def _mention(self, tweet: dict, page: _Page, reason: str) -> Mention:
        author = page.users.get(tweet["author_id"], {})
        username = author.get("username") or "i"  # x.com/i/status/<id> opens any post
        parent_id = _referenced_id(tweet, "replied_to")
        created = datetime.fromisoformat(tweet["created_at"])
        return Mention(
            platform=self.name,
            external_id=tweet["id"],
            thread_key=tweet.get("conversation_id") or tweet["id"],
            thread_ref={"tweet_id": tweet["id"]},
            reason=reason,
            author_id=tweet["author_id"],
            author_handle=author.get("username") or tweet["author_id"],
            author_name=author.get("name") or None,
            text=_full_text(tweet),
            url=post_url(username, tweet["id"]),
            created_at=min(created, datetime.now(timezone.utc)),
            parent_text=_full_text(page.referenced[parent_id]) if parent_id in page.referenced else None,
        )

    def find_brand_reply(self, thread_ref: dict) -> PostedReply | None:
        """The brand's reply to this post, through recent search (posts of the last 7 days).

        ``in_reply_to_tweet_id:`` matches direct replies only, which is what the outbox
        posts. Search can take a moment to show a new post; reconciliation asks only after
        minutes.
        """
        brand = self._me()
        query = f"in_reply_to_tweet_id:{thread_ref['tweet_id']} from:{brand['username']}"
        response = self._call(
            "look for the brand's reply",
            lambda: self._client.search_recent_tweets(
                query, max_results=10, tweet_fields=["referenced_tweets"], user_auth=not self._search_as_app
            ),
        )
        for tweet in response.get("data", []):
            if _referenced_id(tweet, "replied_to") == thread_ref["tweet_id"]:
                return PostedReply(external_id=tweet["id"], url=post_url(brand["username"], tweet["id"]))
        return None

    # -- writing -----------------------------------------------------------------

    def compose_reply(self, thread_ref: dict, text: str) -> str:
        # in_reply_to_tweet_id threads the reply and X adds the author's @handle itself;
        # those auto-populated @mentions do not count against the 280.
        return text

    def post_reply(self, thread_ref: dict, text: str, *, idempotency_key: str) -> PostedReply:
        # X has no idempotency key: the outbox's thread check guards against a double post,
        # and X itself refuses the same text twice from one account ("duplicate content").
        brand = self._me()
        created = self._call(
            "post the reply",
            lambda: self._client.create_tweet(text=text, in_reply_to_tweet_id=thread_ref["tweet_id"], user_auth=True),
            replying=True,
        )
        return PostedReply(external_id=created["data"]["id"], url=post_url(brand["username"], created["data"]["id"]))


    def send_private(self, thread_ref: dict, author_id: str, author_handle: str, text: str, *, idempotency_key: str) -> PostedReply:
        raise Rejected(self.name, X_NO_PRIVATE)  # the card offers no Reply privately on X; this says why if asked


class _Page:
    """Posts of one feed, with the users and referenced posts X sent alongside."""

    def __init__(self) -> None:
        self.tweets: list[dict] = []
        self.users: dict[str, dict] = {}
        self.referenced: dict[str, dict] = {}

    def add(self, response: dict) -> None:
        self.tweets += response.get("data", [])
        includes = response.get("includes", {})
        self.users.update({user["id"]: user for user in includes.get("users", [])})
        self.referenced.update({post["id"]: post for post in includes.get("tweets", [])})


def _feed_start(cursor: dict | None, since: datetime, *, oldest: datetime | None = None) -> dict:
    """Where a feed resumes: after the cursor's id, else from ``since``; never before ``oldest``."""
    since_id = (cursor or {}).get("since_id")
    if since_id and (oldest is None or _posted_at(since_id) > oldest):
        return {"since_id": since_id}
    return {"start_time": max(since, oldest) if oldest else since}


def _posted_at(post_id: str) -> datetime:
    # An X id is a Snowflake: the bits above the 22nd count milliseconds since Twitter's epoch.
    return SNOWFLAKE_EPOCH + timedelta(milliseconds=int(post_id) >> 22)


def _keyword_query(keyword: str, brand_username: str) -> str:
    # An exact phrase, without the brand's own posts; X's query syntax cannot escape a quote.
    phrase = keyword.replace('"', " ").strip()
    return f'"{phrase}" -from:{brand_username} -is:retweet'


def _full_text(tweet: dict) -> str:
    return (tweet.get("note_tweet") or {}).get("text") or tweet["text"]


def _referenced_id(tweet: dict, kind: str) -> str | None:
    return next((ref["id"] for ref in tweet.get("referenced_tweets", []) if ref["type"] == kind), None)


def _reset_time(error: tweepy.TooManyRequests) -> datetime | None:
    return datetime.fromtimestamp(error.reset_time, timezone.utc) if error.reset_time else None


def _problem(error: tweepy.HTTPException) -> dict:
    """X's error body: {"title", "detail", "type", ...} (RFC 7807), or {} when it is not JSON."""
    try:
        body = error.response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(error: tweepy.HTTPException) -> str:
    problem = _problem(error)
    title = problem.get("title") or error.response.reason
    detail = problem.get("detail") or "; ".join(str(m) for m in error.api_messages)
    status = error.response.status_code
    return f"{status} {title}: {detail}" if detail and detail != title else f"{status} {title}"
