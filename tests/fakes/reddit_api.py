"""A fake Reddit on 127.0.0.1 for tests that use the real praw and prawcore.

One server plays both hosts: www.reddit.com's token endpoint (what prawcore calls
``reddit_url``) and oauth.reddit.com's API (``oauth_url``). Behaviour mirrors what
the bot can observe, after reddit's own code (reddit-archive/reddit, r2) and the
responses recorded in praw's and prawcore's test cassettes:

- the password grant of a "script" app: HTTP basic auth with the app's id and
  secret (401 when wrong), then 200 ``{"error": "invalid_grant"}`` for a wrong
  username or password, as Reddit answers;
- bearer tokens on every API call, 401 with ``www-authenticate: ... invalid_token``
  when missing or expired; ``x-ratelimit-used/remaining/reset`` on every answer,
  429 once the 10-minute window's quota is spent;
- listings newest first, ``limit`` capped at 100, paged with ``after``/``before``
  fullnames; an anchor that is not in the listing gives an empty page;
- the inbox (``/message/inbox`` merges comment replies, post replies and username
  mentions, as ``get_inbox`` does in r2/lib/db/queries.py); a comment notifies the
  parent's author, and users it names as ``u/name`` (at most 3, never the author,
  never someone already notified by the reply), as r2/lib/butler.py does;
- ``/api/comment`` validated like ``VSubmitParent`` and ``POST_comment``: 403 for a
  missing parent, a suspended author or one banned from the subreddit;
  ``DELETED_COMMENT``, ``THREAD_LOCKED``, ``TOO_OLD``, ``NO_TEXT`` and ``TOO_LONG``
  (10,000 characters) as ``{"json": {"errors": [[name, message, field]]}}``;
- deleted and removed things keep their place with author ``[deleted]`` and text
  ``[deleted]``/``[removed]``; in a comment tree they only show when a reply
  under them is still visible.
"""
from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from .http import FakeServer, Request, Response

WINDOW_SECONDS = 600  # Reddit counts requests per OAuth client over 10-minute windows
TEXT_LIMIT = 10_000
MAX_NOTIFIED_MENTIONS = 3  # butler_max_mentions in r2's example.ini
SUBJECTS = {"comment_reply": "comment reply", "post_reply": "post reply", "username_mention": "username mention"}
INBOX_VIEWS = {
    "inbox": {"comment_reply", "post_reply", "username_mention", "message"},
    "unread": {"comment_reply", "post_reply", "username_mention", "message"},
    "comments": {"comment_reply"},
    "selfreply": {"post_reply"},
    "mentions": {"username_mention"},
    "messages": {"message"},
}
ERRORS = {  # name -> (message, field), worded as in r2/lib/errors.py
    "DELETED_COMMENT": ("that comment has been deleted", "parent"),
    "THREAD_LOCKED": ("Comments are locked.", "parent"),
    "TOO_OLD": ("that's a piece of history now; it's too late to reply to it", "parent"),
    "NO_TEXT": ("we need something here", "text"),
    "TOO_LONG": (f"this is too long (max: {TEXT_LIMIT})", "text"),
}
SUBJECT_LIMIT = 100  # POST_compose: VLength("subject", max_length=100)
COMPOSE_ERRORS = {  # POST /api/compose, as r2's VMessageRecipient and VLength word them
    "NO_USER": ("please enter a username", "to"),
    "USER_DOESNT_EXIST": ("that user doesn't exist", "to"),
    "NOT_WHITELISTED_BY_USER_MESSAGE": ("Can't send a message to that user.", "to"),
    "NO_SUBJECT": ("please enter a subject", "subject"),
    "SUBJECT_TOO_LONG": (f"this is too long (max: {SUBJECT_LIMIT})", "subject"),
    "NO_TEXT": ("we need something here", "text"),
    "TEXT_TOO_LONG": (f"this is too long (max: {TEXT_LIMIT})", "text"),
}
_USER_MENTION = re.compile(r"(?<![\w/])/?u/([A-Za-z0-9_-]{3,20})\b")
_TIME_FILTERS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400, "year": 366 * 86400}
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
    return digits or "0"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50] or "_"


_STATUS_MESSAGES = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
                    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def _error_body(status: int) -> dict:
    """Reddit's shape for an HTTP error: ``{"message": "Forbidden", "error": 403}``."""
    return {"message": _STATUS_MESSAGES.get(status, "Error"), "error": status}


class RedditError(Exception):
    """An HTTP error answer."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, _error_body(self.status), self.headers)


# --- state ----------------------------------------------------------------------------


@dataclass
class Account:
    name: str
    id: str
    password: str | None
    created_utc: float
    suspended: bool = False
    banned_from: set[str] = field(default_factory=set)  # lower-case subreddit names
    accepts_messages: bool = True  # Settings → Chat and messaging: "Who can send you private messages"

    @property
    def fullname(self) -> str:
        return f"t2_{self.id}"


@dataclass
class Post:
    """A submission (kind t3)."""

    id: str
    author: str
    subreddit: str
    title: str
    selftext: str
    created_utc: float
    locked: bool = False
    archived: bool = False
    deleted: bool = False
    removed: bool = False

    @property
    def fullname(self) -> str:
        return f"t3_{self.id}"

    @property
    def permalink(self) -> str:
        return f"/r/{self.subreddit}/comments/{self.id}/{_slug(self.title)}/"

    @property
    def gone(self) -> bool:
        return self.deleted or self.removed


@dataclass
class Comment:
    """A comment (kind t1)."""

    id: str
    author: str
    post: Post
    parent: str  # fullname of the post or comment it answers
    body: str
    created_utc: float
    via_api: bool = False  # written through /api/comment (what the bot posted)
    deleted: bool = False
    removed: bool = False

    @property
    def fullname(self) -> str:
        return f"t1_{self.id}"

    @property
    def permalink(self) -> str:
        return f"{self.post.permalink}{self.id}/"

    @property
    def gone(self) -> bool:
        return self.deleted or self.removed


@dataclass
class Message:
    """A private message (kind t4)."""

    id: str
    author: str
    dest: str
    subject: str
    body: str
    created_utc: float

    @property
    def fullname(self) -> str:
        return f"t4_{self.id}"


@dataclass
class InboxItem:
    owner: str  # lower-case username
    thing: Comment | Message
    type: str  # comment_reply | post_reply | username_mention | message
    new: bool = True


@dataclass
class _Fault:
    status: int
    body: object
    headers: dict[str, str] | None
    times: int


# method, path pattern, handler name, needs a bearer token
_ROUTES: list[tuple[str, re.Pattern, str, bool]] = [
    ("POST", re.compile(r"/api/v1/access_token"), "_access_token", False),
    ("GET", re.compile(r"/api/v1/me"), "_me", True),
    ("GET", re.compile(r"/message/(?P<view>inbox|unread|comments|selfreply|mentions|messages)"), "_inbox", True),
    ("POST", re.compile(r"/api/read_message"), "_read_message", True),
    ("GET", re.compile(r"/api/info"), "_info", True),
    ("GET", re.compile(r"/r/(?P<subreddits>[^/]+)/search"), "_search", True),
    ("GET", re.compile(r"(?:/r/[^/]+)?/comments/(?P<post>[0-9a-z]+)(?:/[^/]*(?:/(?P<comment>[0-9a-z]+))?)?"),
     "_comments", True),
    ("POST", re.compile(r"/api/comment"), "_comment", True),
    ("POST", re.compile(r"/api/del"), "_delete", True),
    ("POST", re.compile(r"/api/compose"), "_compose", True),
]


class FakeReddit(FakeServer):
    """Reddit's OAuth API for one "script" app: accounts, posts, comments, inbox, search."""

    def __init__(self, *, client_id: str = "test-client-id", client_secret: str = "test-client-secret",
                 quota: int = 1000) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.quota = quota  # requests per 10-minute window (100 a minute for the free tier)
        self.accounts: dict[str, Account] = {}  # by lower-case name
        self.things: dict[str, Post | Comment] = {}  # by fullname, in write order
        self.inbox: list[InboxItem] = []
        self.messages: list[dict] = []  # private messages sent through /api/compose: from, to, subject, text
        self._tokens: dict[str, str] = {}  # access token -> lower-case account name
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._ids: dict[str, int] = {}
        self._used = 0
        # The current window is well under way, as it usually is, so prawcore's
        # pacing (which spreads the quota over the time left) never sleeps in tests.
        self._window_ends = time.monotonic() + 60
        self._state = threading.RLock()
        super().__init__()  # starts serving, so state must exist first

    # --- test-side API ------------------------------------------------------------------

    def add_user(self, name: str, password: str | None = None) -> str:
        """Create an account; with a password it may log in to the app (a developer of it). Returns t2_..."""
        with self._state:
            account = Account(name, self._next_id("t2"), password, time.time())
            self.accounts[name.lower()] = account
            return account.fullname

    def submit(self, author: str, subreddit: str, title: str, body: str = "", *,
               created: datetime | None = None) -> str:
        """A self post; returns its fullname (t3_...)."""
        with self._state:
            post = Post(self._next_id("t3"), self._account(author).name, subreddit, title, body, self._stamp(created))
            self.things[post.fullname] = post
            return post.fullname

    def comment(self, author: str, parent_fullname: str, body: str, *, created: datetime | None = None) -> str:
        """A comment under a post or comment, with the inbox items Reddit writes; returns t1_..."""
        with self._state:
            return self._add_comment(self._account(author), self.things[parent_fullname], body,
                                     self._stamp(created)).fullname

    def message(self, author: str, to: str, subject: str, body: str) -> str:
        """A private message into ``to``'s inbox; returns t4_..."""
        with self._state:
            message = Message(self._next_id("t4"), self._account(author).name, self._account(to).name, subject,
                              body, self._stamp(None))
            self.inbox.append(InboxItem(to.lower(), message, "message"))
            return message.fullname

    def delete(self, fullname: str) -> None:
        """The author deletes the post or comment."""
        with self._state:
            self.things[fullname].deleted = True

    def remove(self, fullname: str) -> None:
        """A moderator removes the post or comment."""
        with self._state:
            self.things[fullname].removed = True

    def lock(self, post_fullname: str) -> None:
        with self._state:
            self.things[post_fullname].locked = True

    def archive(self, post_fullname: str) -> None:
        with self._state:
            self.things[post_fullname].archived = True

    def suspend(self, name: str) -> None:
        with self._state:
            self._account(name).suspended = True

    def ban(self, name: str, subreddit: str) -> None:
        with self._state:
            self._account(name).banned_from.add(subreddit.lower())

    def get(self, fullname: str) -> Post | Comment:
        with self._state:
            return self.things[fullname]

    def created(self, name: str) -> list[Comment]:
        """Comments ``name`` wrote through /api/comment (what the bot posted), oldest first."""
        with self._state:
            return [t for t in self.things.values()
                    if isinstance(t, Comment) and t.via_api and t.author.lower() == name.lower()]

    def unread(self, name: str) -> list[str]:
        """Fullnames still unread in ``name``'s inbox."""
        with self._state:
            return [i.thing.fullname for i in self.inbox if i.owner == name.lower() and i.new]

    def requests_to(self, path: str) -> list[Request]:
        """Requests to ``path``, with or without the trailing slash praw puts on some."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/") == path.rstrip("/")]

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working, as they do after 24 hours."""
        with self._state:
            self._tokens.clear()

    def spend_quota(self, *, reset_in: int = 120) -> None:
        """Leave one request in this window, which ends in ``reset_in`` seconds."""
        with self._state:
            self._window_ends = time.monotonic() + reset_in
            self._used = self.quota - 1

    def fail_next(self, path: str, status: int = 500, body: object = None, headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` with this status (and body, e.g. a RATELIMIT error)."""
        with self._state:
            self._faults.setdefault(path.rstrip("/"), []).append(_Fault(status, body, headers, times))

    def set_delay(self, path: str, seconds: float) -> None:
        """Answer requests to ``path`` this much later (the work itself is done at once)."""
        with self._state:
            self._delays[path.rstrip("/")] = seconds

    # --- HTTP dispatch ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/").removesuffix(".json")
        with self._state:
            try:
                response = self._dispatch(request, path)
            except RedditError as error:
                response = error.response()
        time.sleep(self._delays.get(path, 0))
        return response

    def _dispatch(self, request: Request, path: str) -> Response:
        for method, pattern, handler, needs_token in _ROUTES:
            match = pattern.fullmatch(path)
            if match and request.method == method:
                break
        else:
            raise RedditError(404)
        if not needs_token:
            return self._take_fault(path) or getattr(self, handler)(request)
        user = self._authenticate(request)
        headers = self._rate_headers()
        if float(headers["x-ratelimit-remaining"]) < 0:
            raise RedditError(429, {**headers, "x-ratelimit-remaining": "0.0"})
        response = self._take_fault(path) or Response(200, getattr(self, handler)(request, user, **match.groupdict()))
        response.headers = {**headers, **response.headers}
        return response

    def _take_fault(self, path: str) -> Response | None:
        queue = self._faults.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        body = _error_body(fault.status) if fault.body is None else fault.body
        return Response(fault.status, body, dict(fault.headers or {}))

    def _rate_headers(self) -> dict[str, str]:
        now = time.monotonic()
        if now >= self._window_ends:
            self._window_ends, self._used = now + WINDOW_SECONDS, 0
        self._used += 1
        return {"x-ratelimit-used": str(self._used),
                "x-ratelimit-remaining": f"{self.quota - self._used:.1f}",
                "x-ratelimit-reset": str(int(self._window_ends - now))}

    # --- OAuth --------------------------------------------------------------------------

    def _access_token(self, request: Request) -> Response:
        """www.reddit.com/api/v1/access_token: the app by basic auth, then the user's password."""
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization", "") != f"Basic {expected}":
            raise RedditError(401)
        form = request.form()
        if form.get("grant_type") != "password":
            return Response(200, {"error": "unsupported_grant_type"})
        account = self.accounts.get(form.get("username", "").lower())
        if account is None or account.password is None or account.password != form.get("password"):
            return Response(200, {"error": "invalid_grant"})
        token = f"{secrets.randbelow(10**8)}-{secrets.token_urlsafe(20)}"
        self._tokens[token] = account.name.lower()
        return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _authenticate(self, request: Request) -> Account:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        name = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if name is None:
            raise RedditError(401, {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        return self.accounts[name]

    # --- endpoints ----------------------------------------------------------------------

    def _me(self, request: Request, user: Account) -> dict:
        if user.suspended:
            return {"name": user.name, "is_suspended": True}
        return {"name": user.name, "id": user.id, "created_utc": user.created_utc, "is_suspended": False,
                "has_verified_email": True, "link_karma": 1, "comment_karma": 1}

    def _inbox(self, request: Request, user: Account, view: str) -> dict:
        wanted = INBOX_VIEWS[view]
        items = [i for i in self.inbox if i.owner == user.name.lower() and i.type in wanted
                 and (view != "unread" or i.new)]
        items.sort(key=lambda i: (i.thing.created_utc, i.thing.fullname), reverse=True)
        return self._listing(request, items, lambda i: i.thing.fullname, self._inbox_data)

    def _read_message(self, request: Request, user: Account) -> dict:
        names = set(request.form().get("id", "").split(","))
        for item in self.inbox:
            if item.owner == user.name.lower() and item.thing.fullname in names:
                item.new = False
        return {}

    def _info(self, request: Request, user: Account) -> dict:
        names = _param(request, "id", "").split(",")
        things = [self.things[n] for n in names if n in self.things]
        return self._listing(request, things, lambda t: t.fullname, self._thing_data)

    def _search(self, request: Request, user: Account, subreddits: str) -> dict:
        within = {s.lower() for s in subreddits.split("+")}
        restricted = _param(request, "restrict_sr", "false").lower() in ("true", "1", "on") and "all" not in within
        window = _TIME_FILTERS.get(_param(request, "t", "all"))
        terms = _terms(_param(request, "q", ""))
        posts = [p for p in self.things.values() if isinstance(p, Post) and not p.gone
                 and (not restricted or p.subreddit.lower() in within)
                 and (window is None or p.created_utc >= time.time() - window)
                 and all(term in f"{p.title}\n{p.selftext}".lower() for term in terms)]
        posts.sort(key=lambda p: (p.created_utc, p.fullname), reverse=True)
        return self._listing(request, posts, lambda p: p.fullname, self._thing_data)

    def _comments(self, request: Request, user: Account, post: str, comment: str | None) -> list:
        """The post and its comment tree; with a comment id, that comment in its context."""
        found = self.things.get(f"t3_{post}")
        if found is None:
            raise RedditError(404)
        newest_first = _param(request, "sort", "confidence") == "new"
        if comment is None:
            tops = [c for c in self._children(found.fullname, newest_first) if self._visible(c)]
            children = [self._tree(c, newest_first) for c in tops]
        else:
            target = self.things.get(f"t1_{comment}")
            levels = min(int(_param(request, "context", "0")), 8)
            children = [self._in_context(target, levels, newest_first)] if self._shown(target, found) else []
        return [_listing_of([self._thing_data(found)]), _listing_of(children)]

    def _comment(self, request: Request, user: Account) -> dict:
        """POST /api/comment: reply to a post or comment, as VSubmitParent and POST_comment check it."""
        form = request.form()
        parent = self.things.get(form.get("thing_id", ""))
        post = parent if isinstance(parent, Post) else getattr(parent, "post", None)
        if post is None or user.suspended or post.subreddit.lower() in user.banned_from:
            raise RedditError(403)
        error = self._reply_error(parent, post, form.get("text", ""))
        if error:
            message, field_name = ERRORS[error]
            return {"json": {"errors": [[error, message, field_name]]}}
        created = self._add_comment(user, parent, form["text"], time.time(), via_api=True)
        return {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": self._comment_data(created)}]}}}

    def _compose(self, request: Request, user: Account) -> dict:
        """POST /api/compose: a private message to a user."""
        form = request.form()
        if user.suspended:
            raise RedditError(403)
        to, subject, text = form.get("to", "").removeprefix("u/").removeprefix("/u/"), form.get("subject", ""), form.get("text", "")
        recipient = self.accounts.get(to.lower())
        error = ("NO_USER" if not to else "USER_DOESNT_EXIST" if recipient is None
                 else "NOT_WHITELISTED_BY_USER_MESSAGE" if not recipient.accepts_messages
                 else "NO_SUBJECT" if not subject.strip() else "SUBJECT_TOO_LONG" if len(subject) > SUBJECT_LIMIT
                 else "NO_TEXT" if not text.strip() else "TEXT_TOO_LONG" if len(text) > TEXT_LIMIT else None)
        if error:
            message, field_name = COMPOSE_ERRORS[error]
            return {"json": {"errors": [[error.removeprefix("SUBJECT_").removeprefix("TEXT_"), message, field_name]]}}
        self.messages.append({"from": user.name, "to": recipient.name, "subject": subject, "text": text})
        return {"json": {"errors": []}}

    def _delete(self, request: Request, user: Account) -> dict:
        thing = self.things.get(request.form().get("id", ""))
        if thing is not None and thing.author.lower() == user.name.lower():
            thing.deleted = True
        return {}

    # --- writing ------------------------------------------------------------------------

    @staticmethod
    def _reply_error(parent: Post | Comment, post: Post, text: str) -> str | None:
        if isinstance(parent, Comment) and parent.gone:
            return "DELETED_COMMENT"
        if post.archived:
            return "TOO_OLD"
        if post.locked:
            return "THREAD_LOCKED"
        if not text.strip():
            return "NO_TEXT"
        if len(text) > TEXT_LIMIT:
            return "TOO_LONG"
        return None

    def _add_comment(self, author: Account, parent: Post | Comment, body: str, created_utc: float,
                     *, via_api: bool = False) -> Comment:
        post = parent if isinstance(parent, Post) else parent.post
        comment = Comment(self._next_id("t1"), author.name, post, parent.fullname, body, created_utc, via_api)
        self.things[comment.fullname] = comment
        self._notify(comment, parent)
        return comment

    def _notify(self, comment: Comment, parent: Post | Comment) -> None:
        """The parent's author gets a reply; users named as u/name get a mention (butler.py's rules)."""
        notified = {comment.author.lower()}
        parent_author = parent.author.lower()
        if not parent.gone and parent_author not in notified and parent_author in self.accounts:
            kind = "post_reply" if isinstance(parent, Post) else "comment_reply"
            self.inbox.append(InboxItem(parent_author, comment, kind))
            notified.add(parent_author)
        named = {m.lower() for m in _USER_MENTION.findall(comment.body)}
        if len(named) > MAX_NOTIFIED_MENTIONS:
            return
        for name in sorted(named - notified):
            if name in self.accounts:
                self.inbox.append(InboxItem(name, comment, "username_mention"))

    # --- rendering ----------------------------------------------------------------------

    def _listing(self, request: Request, items: list, name_of, render) -> dict:
        """One page of a newest-first listing, paged by ``after``/``before`` fullnames."""
        limit = max(1, min(int(_param(request, "limit", "25")), 100))
        names = [name_of(i) for i in items]
        after, before = _param(request, "after"), _param(request, "before")
        if after:
            start = names.index(after) + 1 if after in names else len(names)
            end = start + limit
        elif before:
            end = names.index(before) if before in names else 0
            start = max(end - limit, 0)
        else:
            start, end = 0, limit
        page = items[start:end]
        data = _listing_of([render(i) for i in page])["data"]
        data["after"] = name_of(page[-1]) if page and end < len(items) else None
        data["before"] = name_of(page[0]) if page and start > 0 else None
        return {"kind": "Listing", "data": data}

    def _thing_data(self, thing: Post | Comment) -> dict:
        if isinstance(thing, Post):
            return {"kind": "t3", "data": self._post_data(thing)}
        return {"kind": "t1", "data": self._comment_data(thing)}

    def _post_data(self, post: Post) -> dict:
        selftext = "[deleted]" if post.deleted else "[removed]" if post.removed else post.selftext
        data = {
            "id": post.id, "name": post.fullname, "title": post.title, "selftext": selftext,
            "author": "[deleted]" if post.gone else post.author,
            "subreddit": post.subreddit, "subreddit_name_prefixed": f"r/{post.subreddit}",
            "permalink": post.permalink, "url": f"https://www.reddit.com{post.permalink}",
            "created": post.created_utc, "created_utc": post.created_utc, "is_self": True,
            "num_comments": len([c for c in self.things.values() if isinstance(c, Comment) and c.post is post]),
            "locked": post.locked, "archived": post.archived, "over_18": False, "stickied": False,
            "removed_by_category": "deleted" if post.deleted else "moderator" if post.removed else None,
            "score": 1, "distinguished": None, "edited": False,
        }
        if not post.gone:
            data["author_fullname"] = self._account(post.author).fullname
        return data

    def _comment_data(self, comment: Comment, replies: list | None = None) -> dict:
        body = "[deleted]" if comment.deleted else "[removed]" if comment.removed else comment.body
        data = {
            "id": comment.id, "name": comment.fullname, "body": body,
            "author": "[deleted]" if comment.gone else comment.author,
            "parent_id": comment.parent, "link_id": comment.post.fullname,
            "subreddit": comment.post.subreddit, "subreddit_name_prefixed": f"r/{comment.post.subreddit}",
            "permalink": comment.permalink, "created": comment.created_utc, "created_utc": comment.created_utc,
            "is_submitter": comment.author == comment.post.author, "replies": _listing_of(replies) if replies else "",
            "score": 1, "locked": False, "archived": comment.post.archived, "stickied": False,
            "distinguished": None, "edited": False,
        }
        if not comment.gone:
            data["author_fullname"] = self._account(comment.author).fullname
        return data

    def _inbox_data(self, item: InboxItem) -> dict:
        """An inbox entry: the thing plus message fields, and ``context`` instead of ``permalink``."""
        thing = item.thing
        base = {"first_message": None, "first_message_name": None, "likes": None, "replies": "", "score": 1,
                "new": item.new, "id": thing.id, "name": thing.fullname, "dest": self.accounts[item.owner].name,
                "created": thing.created_utc, "created_utc": thing.created_utc, "distinguished": None}
        if isinstance(thing, Message):
            return {"kind": "t4", "data": {**base, "author": thing.author, "subject": thing.subject,
                                           "body": thing.body, "type": "unknown", "was_comment": False,
                                           "subreddit": None, "parent_id": None, "context": "",
                                           "author_fullname": self._account(thing.author).fullname}}
        post = thing.post
        data = {**base, "author": "[deleted]" if thing.gone else thing.author,
                "body": self._comment_data(thing)["body"], "subject": SUBJECTS[item.type], "type": item.type,
                "was_comment": True, "subreddit": post.subreddit, "subreddit_name_prefixed": f"r/{post.subreddit}",
                "parent_id": thing.parent, "link_title": post.title, "num_comments": 1,
                "context": f"{thing.permalink}?context=3"}
        if not thing.gone:
            data["author_fullname"] = self._account(thing.author).fullname
        return {"kind": "t1", "data": data}

    def _children(self, parent_fullname: str, newest_first: bool) -> list[Comment]:
        children = [c for c in self.things.values() if isinstance(c, Comment) and c.parent == parent_fullname]
        return sorted(children, key=lambda c: (c.created_utc, c.fullname), reverse=newest_first)

    def _visible(self, comment: Comment) -> bool:
        """A deleted comment stays in the tree only while a reply under it is visible."""
        return not comment.gone or any(self._visible(c) for c in self._children(comment.fullname, False))

    def _shown(self, comment: object, post: Post) -> bool:
        return isinstance(comment, Comment) and comment.post is post and self._visible(comment)

    def _tree(self, comment: Comment, newest_first: bool) -> dict:
        replies = [self._tree(c, newest_first) for c in self._children(comment.fullname, newest_first)
                   if self._visible(c)]
        return {"kind": "t1", "data": self._comment_data(comment, replies)}

    def _in_context(self, target: Comment, levels: int, newest_first: bool) -> dict:
        """``target`` under up to ``levels`` ancestors, each showing only the path down to it."""
        node = self._tree(target, newest_first)
        current = target
        for _ in range(levels):
            parent = self.things.get(current.parent)
            if not isinstance(parent, Comment):
                break
            node = {"kind": "t1", "data": self._comment_data(parent, [node])}
            current = parent
        return node

    # --- lookups ------------------------------------------------------------------------

    def _account(self, name: str) -> Account:
        return self.accounts[name.lower()]

    def _next_id(self, kind: str) -> str:
        self._ids[kind] = self._ids.get(kind, 36**5) + 1  # six-character base36 ids, like Reddit's
        return _base36(self._ids[kind])

    @staticmethod
    def _stamp(created: datetime | None) -> float:
        """Reddit's created_utc: whole seconds as a float."""
        return float(int(created.timestamp() if created else time.time()))


def _listing_of(children: list[dict]) -> dict:
    return {"kind": "Listing", "data": {"after": None, "before": None, "dist": len(children), "modhash": None,
                                        "geo_filter": "", "children": children}}


def _param(request: Request, name: str, default: str | None = None) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else default


def _terms(query: str) -> list[str]:
    """A quoted phrase is one term; otherwise every word must appear (case-insensitive)."""
    phrases = re.findall(r'"([^"]+)"', query)
    words = re.sub(r'"[^"]*"', " ", query).split()
    return [t.lower() for t in phrases + words]

