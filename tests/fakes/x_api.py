"""A fake X API v2 on 127.0.0.1 for tests that use the real tweepy.Client.

Behaviour follows docs.x.com (and its OpenAPI spec) where the bot can observe it:

- auth: ``Authorization: Bearer <app token>`` (app-only) or an OAuth 1.0a HMAC-SHA1
  signature, verified against the app's consumer secret and the user's token secret;
  GET /2/users/me and POST /2/tweets take user context only (403
  ``unsupported-authentication`` otherwise);
- posts: ids are Snowflakes (numeric strings that grow with the creation time, which the
  bits above the 22nd hold in ms since 2010-11-04T01:42:54.657Z); ``conversation_id`` is
  the thread root's id;
  only requested ``tweet.fields`` / ``expansions`` / ``user.fields`` are returned; a post
  longer than 280 characters has its ``text`` cut there and the whole in ``note_tweet``;
  an empty list answer has ``meta.result_count`` 0 and no ``data``;
- GET /2/users/:id/mentions: posts that @mention the user or reply to one of its posts,
  newest first, at most the newest 800, ``since_id`` / ``until_id`` exclusive,
  ``start_time`` inclusive, ``max_results`` 5–100, ``pagination_token``;
- GET /2/tweets/search/recent: posts of the last 7 days matching every query term
  (keyword, "exact phrase", ``from:``, ``to:``, ``@user``, ``conversation_id:``,
  ``in_reply_to_tweet_id:``, ``is:reply``, ``is:retweet``, each negatable with ``-``),
  ``max_results`` 10–100, ``next_token``, at most one of ``since_id`` and ``start_time``,
  neither older than 7 days (400, worded as X words it);
- POST /2/tweets: replies to a deleted post get 403 "deleted or not visible"; a reply is
  refused unless the post @mentions or quotes the replier (X's rule for self-serve plans
  since February 2026; Enterprise is exempt); the same text twice from one account gets
  403 duplicate content;
- every answer carries ``x-rate-limit-limit/remaining/reset`` per route and caller over a
  15-minute window; past the limit the answer is 429.

Errors are RFC 7807 problems, ``{"title", "detail", "type", "status"}``, as X sends them.
Retweets, media, polls and the text X prepends to a reply (the replied-to @handles) are
not modelled; a post's ``text`` is what was written.
"""
from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import urlencode

from oauthlib.oauth1.rfc5849 import signature

from .http import FakeServer, Request, Response

PROBLEMS = "https://api.twitter.com/2/problems/"
RATE_WINDOW = 15 * 60
SNOWFLAKE_EPOCH_MS = 1288834974657
RECENT_SEARCH_DAYS = 7
MENTIONS_CAP = 800
LONG_POST = 280  # longer posts keep their whole text in note_tweet

# Bodies X sends for plan and credential problems (as reported from production).
CLIENT_FORBIDDEN = {
    "client_id": "31415926",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a "
              "Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": PROBLEMS + "client-forbidden",
}
CREDITS_DEPLETED = {
    "account_id": 1243608864848629761,
    "title": "CreditsDepleted",
    "detail": "Your enrolled account [1243608864848629761] does not have any credits to fulfill this request.",
    "type": PROBLEMS + "credits",
}
OAUTH1_PERMISSIONS = {
    "title": "Forbidden",
    "status": 403,
    "detail": "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.",
    "type": PROBLEMS + "oauth1-permissions",
}
DELETED_OR_INVISIBLE = "You attempted to reply to a Tweet that is deleted or not visible to you."
REPLY_NOT_ALLOWED = ("Reply to this conversation is not allowed because you have not been mentioned or "
                     "otherwise engaged by the author of the post you are replying to.")
DUPLICATE_CONTENT = "You are not allowed to create a Tweet with duplicate content."

_DEFAULT_PROBLEMS = {
    400: ("Invalid Request", "One or more parameters to your request was invalid.", PROBLEMS + "invalid-request"),
    401: ("Unauthorized", "Unauthorized", "about:blank"),
    403: ("Forbidden", "Forbidden", "about:blank"),
    404: ("Not Found Error", "The requested resource could not be found.", PROBLEMS + "resource-not-found"),
    429: ("Too Many Requests", "Too Many Requests", "about:blank"),
    500: ("Internal Server Error", "Internal Server Error", "about:blank"),
    503: ("Service Unavailable", "Service Unavailable", "about:blank"),
}


class XApiError(Exception):
    """An error answer: a problem body with an HTTP status."""

    def __init__(self, status: int, detail: str | None = None, *, body: dict | None = None,
                 problem_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.body = body or _problem(status, detail, problem_type)
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, self.body, {"Content-Type": "application/problem+json", **self.headers})


def _invalid_parameter(name: str, value: str, message: str) -> XApiError:
    """A 400 naming the parameter in ``errors[]``, as X reports parameter problems."""
    return XApiError(400, body={**_problem(400), "errors": [{"parameters": {name: [value]}, "message": message}]})


def _problem(status: int, detail: str | None = None, problem_type: str | None = None) -> dict:
    if status == 402:
        return dict(CREDITS_DEPLETED)
    title, default_detail, default_type = _DEFAULT_PROBLEMS.get(status, ("Error", "Error", "about:blank"))
    return {"title": title, "detail": detail or default_detail, "type": problem_type or default_type, "status": status}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _snowflake(moment: datetime, sequence: int = 0) -> int:
    """Milliseconds since the epoch, a worker number (1), a sequence number."""
    return (int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22 | 1 << 12 | sequence


def _snowflake_time(snowflake: str) -> datetime:
    return datetime.fromtimestamp(((int(snowflake) >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, timezone.utc)


def _parse_time(value: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise XApiError(400, f"Invalid '{name}':'{value}'. '{name}' must be a valid RFC 3339 date.") from None


@dataclass
class User:
    id: str
    username: str
    name: str
    access_token: str
    access_token_secret: str


@dataclass
class Tweet:
    id: str
    author_id: str
    text: str
    created_at: datetime
    conversation_id: str
    in_reply_to: str | None = None
    in_reply_to_user_id: str | None = None
    quoted: str | None = None
    via_api: bool = False
    deleted: bool = False

    def mentions(self, username: str) -> bool:
        return re.search(rf"(?<![\w@])@{re.escape(username)}\b", self.text, re.IGNORECASE) is not None


@dataclass
class _Fault:
    status: int
    body: dict | None
    headers: dict[str, str] | None
    times: int


# route name -> (method, path pattern, handler, who may call: "any" | "user")
_ROUTES = {
    "/2/users/me": ("GET", r"/2/users/me", "_get_me", "user"),
    "/2/users/:id/mentions": ("GET", r"/2/users/(?P<id>\d+)/mentions", "_get_mentions", "any"),
    "/2/tweets/search/recent": ("GET", r"/2/tweets/search/recent", "_search_recent", "any"),
    "/2/tweets": ("POST", r"/2/tweets", "_create_tweet", "user"),
}
# Per 15 minutes, from docs.x.com x-api/fundamentals/rate-limits (user-context figures).
DEFAULT_RATE_LIMITS = {"/2/users/me": 75, "/2/users/:id/mentions": 300, "/2/tweets/search/recent": 300, "/2/tweets": 100}


class FakeX(FakeServer):
    """X API v2: users, posts, threads, mentions, recent search and posting."""

    def __init__(self, *, consumer_key: str = "x-api-key", consumer_secret: str = "x-api-secret",
                 bearer_token: str = "x-bearer-token") -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.bearer_token = bearer_token
        self.users: dict[str, User] = {}  # by id
        self.tweets: dict[str, Tweet] = {}  # by id, in write order
        self.rate_limits = dict(DEFAULT_RATE_LIMITS)
        self._sequence = 0
        self._state = threading.RLock()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}  # (route, caller) -> (reset, used)
        super().__init__()  # starts serving, so state must exist first

    # --- test-side API ------------------------------------------------------------------

    def add_user(self, username: str, name: str | None = None) -> User:
        """A user with its own OAuth 1.0a access token (``<user id>-<random>``, as X issues them)."""
        with self._state:
            user_id = self._new_id(datetime.now(timezone.utc))
            user = User(user_id, username, name or username, f"{user_id}-{secrets.token_hex(12)}", secrets.token_hex(16))
            self.users[user_id] = user
            return user

    def tweet(self, username: str, text: str, *, reply_to: str | None = None, quote: str | None = None,
              created_at: datetime | None = None) -> str:
        """Post as ``username``; returns the new post's id."""
        with self._state:
            return self._store(self.user(username), text, reply_to=reply_to, quote=quote, created_at=created_at).id

    def delete(self, tweet_id: str) -> None:
        with self._state:
            self.tweets[tweet_id].deleted = True

    def user(self, username: str) -> User:
        return next(u for u in self.users.values() if u.username.lower() == username.lower())

    def created(self, username: str) -> list[Tweet]:
        """Posts ``username`` wrote through POST /2/tweets (what the bot posted), oldest first."""
        with self._state:
            author = self.user(username)
            return [t for t in self.tweets.values() if t.via_api and t.author_id == author.id]

    def fail_next(self, path: str, status: int, body: dict | None = None, headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next ``times`` calls of ``path`` (a route name, e.g. "/2/users/:id/mentions", or a
        concrete path) with ``status`` and ``body`` (X's problem for that status by default)."""
        with self._state:
            self._faults.setdefault(path, []).append(_Fault(status, body, headers, times))

    def set_delay(self, path: str, seconds: float) -> None:
        with self._state:
            self._delays[path] = seconds

    # --- HTTP dispatch ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except XApiError as error:
            return error.response()

    def _dispatch(self, request: Request) -> Response:
        route, match = self._route(request)
        method, _, handler_name, who = _ROUTES[route]
        if request.method != method:
            raise XApiError(404)
        time.sleep(self._delays.get(route, 0) or self._delays.get(request.path, 0))
        with self._state:
            self._raise_injected_fault(route, request.path)
            caller = self._authenticate(request, who)
            headers = self._count_call(route, caller)
            status, body = getattr(self, handler_name)(request, caller, **match.groupdict())
        return Response(status, body, headers)

    def _route(self, request: Request) -> tuple[str, re.Match]:
        for name, (_, pattern, _, _) in _ROUTES.items():
            match = re.fullmatch(pattern, request.path)
            if match:
                return name, match
        raise XApiError(404)

    def _raise_injected_fault(self, route: str, path: str) -> None:
        queue = self._faults.get(route) or self._faults.get(path)
        if not queue:
            return
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        raise XApiError(fault.status, body=fault.body, headers=fault.headers)

    def _count_call(self, route: str, caller: User | None) -> dict[str, str]:
        """The rate-limit headers of this call; 429 once the window's calls are used up."""
        key = (route, caller.id if caller else "app")
        now = int(time.time())
        reset, used = self._windows.get(key, (now + RATE_WINDOW, 0))
        if now >= reset:
            reset, used = now + RATE_WINDOW, 0
        limit = self.rate_limits[route]
        headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-reset": str(reset)}
        if used >= limit:
            raise XApiError(429, headers={**headers, "x-rate-limit-remaining": "0"})
        self._windows[key] = (reset, used + 1)
        return {**headers, "x-rate-limit-remaining": str(limit - used - 1)}

    # --- auth ---------------------------------------------------------------------------

    def _authenticate(self, request: Request, who: str) -> User | None:
        """The calling user for OAuth 1.0a, None for the app's bearer token."""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            if not secrets.compare_digest(authorization.removeprefix("Bearer "), self.bearer_token):
                raise XApiError(401)
            if who == "user":
                raise XApiError(403, "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                                     "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                                problem_type=PROBLEMS + "unsupported-authentication")
            return None
        if authorization.startswith("OAuth "):
            return self._verify_oauth1(request, authorization)
        raise XApiError(401)

    def _verify_oauth1(self, request: Request, authorization: str) -> User:
        """Check the HMAC-SHA1 signature over the URL called, as X does (RFC 5849 section 3.4)."""
        oauth = dict(signature.collect_parameters(headers={"Authorization": authorization}, exclude_oauth_signature=False))
        user = next((u for u in self.users.values() if u.access_token == oauth.get("oauth_token")), None)
        if oauth.get("oauth_consumer_key") != self.consumer_key or user is None:
            raise XApiError(401)
        signed = SimpleNamespace(
            http_method=request.method,
            uri=self.base_url + request.path,
            params=signature.collect_parameters(uri_query=urlencode(request.query, doseq=True),
                                                headers={"Authorization": authorization}),
            signature=oauth.get("oauth_signature", ""),
        )
        if oauth.get("oauth_signature_method") != "HMAC-SHA1" or not signature.verify_hmac_sha1(
                signed, self.consumer_secret, user.access_token_secret):
            raise XApiError(401)
        return user

    # --- state --------------------------------------------------------------------------

    def _new_id(self, moment: datetime) -> str:
        while True:
            self._sequence = (self._sequence + 1) % 4096
            candidate = str(_snowflake(moment, self._sequence))
            if candidate not in self.tweets and candidate not in self.users:
                return candidate

    def _store(self, author: User, text: str, *, reply_to: str | None = None, quote: str | None = None,
               created_at: datetime | None = None, via_api: bool = False) -> Tweet:
        parent = self.tweets[reply_to] if reply_to else None
        created_at = created_at or datetime.now(timezone.utc)
        tweet_id = self._new_id(created_at)
        tweet = Tweet(
            id=tweet_id, author_id=author.id, text=text, created_at=created_at,
            conversation_id=parent.conversation_id if parent else tweet_id,
            in_reply_to=reply_to, in_reply_to_user_id=parent.author_id if parent else None,
            quoted=quote, via_api=via_api,
        )
        self.tweets[tweet_id] = tweet
        return tweet

    def _live(self) -> list[Tweet]:
        return [t for t in self.tweets.values() if not t.deleted]

    # --- endpoints ----------------------------------------------------------------------

    def _get_me(self, request: Request, caller: User) -> tuple[int, dict]:
        return 200, {"data": _user_view(caller)}

    def _get_mentions(self, request: Request, caller: User | None, id: str) -> tuple[int, dict]:
        user = self.users.get(id)
        if user is None:
            return 200, {"errors": [{"value": id, "detail": f"Could not find user with id: [{id}].",
                                     "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                                     "resource_id": id, "type": PROBLEMS + "resource-not-found"}]}
        mentioning = [t for t in self._live() if t.mentions(user.username)
                      or (t.in_reply_to_user_id == user.id and t.author_id != user.id)]
        newest_first = sorted(mentioning, key=lambda t: int(t.id), reverse=True)[:MENTIONS_CAP]
        page_size = _int_param(request, "max_results", default=10, low=5, high=100)
        return 200, self._list_answer(request, self._window(request, newest_first), page_size, "pagination_token")

    def _search_recent(self, request: Request, caller: User | None) -> tuple[int, dict]:
        query = _param(request, "query")
        if not query:
            raise XApiError(400, "The `query` query parameter can not be empty")
        if len(query) > 512:
            raise XApiError(400, f"The `query` param must be at most 512 characters (got {len(query)})")
        start_time, since_id = _param(request, "start_time"), _param(request, "since_id")
        if start_time and since_id:
            raise XApiError(400, "At most one of `start_time`, `since_id` may be provided.")
        oldest_allowed = datetime.now(timezone.utc) - timedelta(days=RECENT_SEARCH_DAYS)
        if start_time and _parse_time(start_time, "start_time") < oldest_allowed:
            raise XApiError(400, f"Invalid 'start_time':'{start_time}'. 'start_time' must be on or after "
                                 f"{_iso(oldest_allowed)}")
        if since_id and _snowflake_time(since_id) < oldest_allowed:
            raise _invalid_parameter("since_id", since_id, f"'since_id' must be a tweet id created after "
                                     f"{oldest_allowed:%Y-%m-%dT%H:%MZ}. Please use a 'since_id' that is larger "
                                     f"than {_snowflake(oldest_allowed)}")
        terms = _parse_query(query)
        hits = [t for t in self._live() if t.created_at >= oldest_allowed and all(self._matches(t, term) for term in terms)]
        newest_first = sorted(hits, key=lambda t: int(t.id), reverse=True)
        page_size = _int_param(request, "max_results", default=10, low=10, high=100)
        return 200, self._list_answer(request, self._window(request, newest_first), page_size, "next_token")

    def _create_tweet(self, request: Request, caller: User) -> tuple[int, dict]:
        body = request.json()
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise XApiError(400, "$.text: text is required unless media is provided")
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if reply_to is not None:
            self._check_reply_allowed(str(reply_to), caller)
        if any(t.author_id == caller.id and t.text == text for t in self._live()):
            raise XApiError(403, DUPLICATE_CONTENT)
        tweet = self._store(caller, text, reply_to=str(reply_to) if reply_to else None, via_api=True)
        return 201, {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}}

    def _check_reply_allowed(self, tweet_id: str, caller: User) -> None:
        target = self.tweets.get(tweet_id)
        if target is None or target.deleted:
            raise XApiError(403, DELETED_OR_INVISIBLE)
        quoted = self.tweets.get(target.quoted) if target.quoted else None
        summoned = (target.author_id == caller.id or target.mentions(caller.username)
                    or (quoted is not None and quoted.author_id == caller.id))
        if not summoned:
            raise XApiError(403, REPLY_NOT_ALLOWED)

    # --- search matching ------------------------------------------------------------------

    def _matches(self, tweet: Tweet, term: tuple[bool, str, str]) -> bool:
        negated, operator, value = term
        return self._matches_positive(tweet, operator, value) != negated

    def _matches_positive(self, tweet: Tweet, operator: str, value: str) -> bool:
        author = self.users[tweet.author_id]
        if operator == "from":
            return author.username.lower() == value.lower()
        if operator == "to":
            parent_author = self.users.get(tweet.in_reply_to_user_id or "")
            return parent_author is not None and parent_author.username.lower() == value.lower()
        if operator == "@":
            return tweet.mentions(value)
        if operator == "conversation_id":
            return tweet.conversation_id == value
        if operator == "in_reply_to_tweet_id":
            return tweet.in_reply_to == value
        if operator == "is":
            return {"reply": tweet.in_reply_to is not None, "retweet": False}[value]
        words = r"\W+".join(re.escape(word) for word in value.split())
        return re.search(rf"(?<!\w){words}(?!\w)", tweet.text, re.IGNORECASE) is not None

    # --- answers ------------------------------------------------------------------------

    def _window(self, request: Request, newest_first: list[Tweet]) -> list[Tweet]:
        """``since_id``/``until_id`` (exclusive) and ``start_time``/``end_time`` (inclusive)."""
        since_id, until_id = _param(request, "since_id"), _param(request, "until_id")
        start = _param(request, "start_time")
        end = _param(request, "end_time")
        start_time = _parse_time(start, "start_time") if start else None
        end_time = _parse_time(end, "end_time") if end else None
        return [t for t in newest_first
                if (since_id is None or int(t.id) > int(since_id)) and (until_id is None or int(t.id) < int(until_id))
                and (start_time is None or t.created_at >= start_time) and (end_time is None or t.created_at <= end_time)]

    def _list_answer(self, request: Request, tweets: list[Tweet], page_size: int, token_param: str) -> dict:
        offset = _decode_token(_param(request, token_param))
        page = tweets[offset:offset + page_size]
        meta: dict = {"result_count": len(page)}
        if not page:
            return {"meta": meta}
        meta.update(newest_id=page[0].id, oldest_id=page[-1].id)
        if offset + page_size < len(tweets):
            meta["next_token"] = _encode_token(offset + page_size)
        answer: dict = {"data": [self._tweet_view(t, request) for t in page], "meta": meta}
        includes = self._includes(page, request)
        if includes:
            answer["includes"] = includes
        return answer

    def _tweet_view(self, tweet: Tweet, request: Request) -> dict:
        fields = _list_param(request, "tweet.fields")
        view: dict = {"id": tweet.id, "text": tweet.text[:LONG_POST], "edit_history_tweet_ids": [tweet.id]}
        references = ([{"type": "replied_to", "id": tweet.in_reply_to}] if tweet.in_reply_to else []) + \
                     ([{"type": "quoted", "id": tweet.quoted}] if tweet.quoted else [])
        optional = {"author_id": tweet.author_id, "conversation_id": tweet.conversation_id,
                    "created_at": _iso(tweet.created_at), "in_reply_to_user_id": tweet.in_reply_to_user_id,
                    "referenced_tweets": references or None,
                    "note_tweet": {"text": tweet.text} if len(tweet.text) > LONG_POST else None}
        view.update({name: value for name, value in optional.items() if name in fields and value is not None})
        return view

    def _includes(self, page: list[Tweet], request: Request) -> dict:
        expansions = _list_param(request, "expansions")
        includes: dict = {}
        if "author_id" in expansions:
            authors = {t.author_id: self.users[t.author_id] for t in page}
            includes["users"] = [_user_view(u) for u in authors.values()]
        if "referenced_tweets.id" in expansions:
            referenced = [self.tweets[ref] for t in page for ref in (t.in_reply_to, t.quoted) if ref]
            live = [t for t in referenced if not t.deleted]
            if live:
                includes["tweets"] = [self._tweet_view(t, request) for t in live]
        return includes


def _user_view(user: User) -> dict:
    return {"id": user.id, "name": user.name, "username": user.username}  # X's default user fields


# --- request parsing ------------------------------------------------------------------------


def _param(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def _list_param(request: Request, name: str) -> set[str]:
    return set(filter(None, (_param(request, name) or "").split(",")))


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = _param(request, name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise XApiError(400, f"The `{name}` query parameter value [{raw}] is not between {low} and {high}")
    return int(raw)


def _encode_token(offset: int) -> str:
    return base64.b32hexencode(f"offset:{offset}".encode()).decode().lower().rstrip("=")


def _decode_token(token: str | None) -> int:
    if token is None:
        return 0
    try:
        text = base64.b32hexdecode(token.upper() + "=" * (-len(token) % 8)).decode()
        return int(text.removeprefix("offset:"))
    except ValueError:
        raise XApiError(400, f"The `pagination_token` query parameter value [{token}] is not valid") from None


_QUERY_TERM = re.compile(r'(-?)(?:"([^"]*)"|(\S+))')
_OPERATORS = ("from", "to", "conversation_id", "in_reply_to_tweet_id", "is")


def _parse_query(query: str) -> list[tuple[bool, str, str]]:
    """(negated, operator, value) per term; every term must hold. OR and groups are not supported."""
    terms = []
    for negated, phrase, word in _QUERY_TERM.findall(query):
        if phrase:
            terms.append((bool(negated), "phrase", phrase))
        elif word == "OR" or word.startswith("("):
            raise XApiError(400, "this fake supports only terms joined by AND (no OR, no groups)")
        elif word.startswith("@"):
            terms.append((bool(negated), "@", word[1:]))
        elif ":" in word and word.split(":", 1)[0] in _OPERATORS:
            operator, value = word.split(":", 1)
            if operator == "is" and value not in ("reply", "retweet"):
                raise XApiError(400, f"this fake does not support is:{value}")
            terms.append((bool(negated), operator, value))
        else:
            terms.append((bool(negated), "keyword", word))
    return terms
