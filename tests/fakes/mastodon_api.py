"""A fake Mastodon server on 127.0.0.1 for tests that use the real Mastodon.py SDK.

Behaviour mirrors mastodon/mastodon and docs.joinmastodon.org where the bot can
observe it: entity shapes (Account, Status, Notification, Context, Instance),
ids (statuses are snowflakes made from their creation time, so a back-dated
remote post gets an old id; notifications count up), paging (newest first,
``max_id``/``since_id``/``min_id``, Link headers), status search as
StatusesSearchService does it (``min_id``/``max_id`` become ``after:``/``before:``
dates, newest first, offset paging), ``Idempotency-Key`` on POST /api/v1/statuses,
the length rule of StatusLengthValidator, OAuth scopes, Rack::Attack rate-limit
headers and error bodies ``{"error": "..."}``.
"""
from __future__ import annotations

import html
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode

import regex

from .http import FakeServer, Request, Response

LOCAL_DOMAIN = "mastodon.test"
VISIBILITIES = ("public", "unlisted", "private", "direct")
RATE_LIMIT_PERIOD = 300  # Rack::Attack: 300 requests per 5 minutes per account
# Account::USERNAME_RE and Account::MENTION_RE
_MENTION = re.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@([\w.-]+\w))?", re.IGNORECASE)
_URL = re.compile(r"(?<![\w/])https?://[^\s<>\"']*[^\s<>\"'.,;:!?)]")
_STATUS_MESSAGES = {
    400: "Bad request",
    401: "The access token is invalid",
    403: "This action is outside the authorized scopes",
    404: "Record not found",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or _STATUS_MESSAGES.get(status, "Error")


# --- small value helpers ---------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _snowflake_time(status_id: str) -> datetime:
    return datetime.fromtimestamp((int(status_id) >> 16) / 1000, timezone.utc)


def countable_length(text: str, spoiler_text: str, url_chars: int) -> int:
    """StatusLengthValidator: graphemes, every URL as ``url_chars``, ``@user@domain`` as ``@user``."""
    countable = _URL.sub("x" * url_chars, text)
    countable = _MENTION.sub(lambda m: "@" + m.group(1), countable)
    return len(regex.findall(r"\X", spoiler_text + countable))


class _Snowflakes:
    """Mastodon's timestamp ids: milliseconds << 16 plus a sequence for ids in the same millisecond."""

    def __init__(self) -> None:
        self._used: set[int] = set()

    def at(self, moment: datetime) -> str:
        candidate = int(moment.timestamp() * 1000) << 16
        while candidate in self._used:
            candidate += 1
        self._used.add(candidate)
        return str(candidate)


# --- state -----------------------------------------------------------------------------


@dataclass
class Account:
    id: str
    username: str
    domain: str | None
    display_name: str
    created_at: datetime

    @property
    def acct(self) -> str:
        return self.username if self.domain is None else f"{self.username}@{self.domain}"

    @property
    def url(self) -> str:
        return f"https://{self.domain or LOCAL_DOMAIN}/@{self.username}"


@dataclass
class Status:
    id: str
    account_id: str
    text: str
    visibility: str
    created_at: datetime
    in_reply_to_id: str | None
    mention_ids: list[str]
    spoiler_text: str = ""
    via_api: bool = False
    deleted: bool = False


@dataclass
class Notification:
    id: str
    recipient_id: str
    type: str
    from_id: str
    status_id: str | None
    created_at: datetime


@dataclass
class Token:
    account_id: str
    scopes: tuple[str, ...]

    def allows(self, wanted: tuple[str, ...]) -> bool:
        """Scopes are hierarchical: ``read`` grants ``read:statuses``."""
        return any(have == want or want.startswith(have + ":") for have in self.scopes for want in wanted)


@dataclass
class _Fault:
    status: int
    body: object
    headers: dict[str, str]
    times: int


@dataclass
class _Window:
    ends_at: float
    used: int = 0


@dataclass
class InstanceConfig:
    max_characters: int = 500
    characters_reserved_per_url: int = 23
    v2: bool = True  # /api/v2/instance exists (Mastodon 4.0+)
    version: str = "4.3.0"


# method, route template, handler, token ("none" | "optional" | "required"), scopes any of which will do
_ROUTES: list[tuple[str, str, str, str, tuple[str, ...]]] = [
    ("GET", "/api/v1/instance", "_instance_v1", "none", ()),
    ("GET", "/api/v2/instance", "_instance_v2", "none", ()),
    ("GET", "/api/v1/accounts/verify_credentials", "_verify_credentials", "required", ("profile", "read:accounts")),
    ("GET", "/api/v1/notifications", "_list_notifications", "required", ("read:notifications",)),
    ("GET", "/api/v2/search", "_search", "required", ("read:search",)),
    ("POST", "/api/v1/statuses", "_create_status", "required", ("write:statuses",)),
    ("GET", "/api/v1/statuses/:id", "_get_status", "optional", ("read:statuses",)),
    ("DELETE", "/api/v1/statuses/:id", "_delete_status", "required", ("write:statuses",)),
    ("GET", "/api/v1/statuses/:id/context", "_context", "optional", ("read:statuses",)),
]


def _match(template: str, path: str) -> str | None:
    """The ``:id`` of ``path`` when it fits ``template`` ('' when there is none)."""
    pattern = "^" + re.escape(template).replace(":id", r"(?P<id>[^/]+)") + "$"
    found = re.match(pattern, path)
    return None if found is None else (found.groupdict().get("id") or "")


class FakeMastodon(FakeServer):
    """One Mastodon instance (``mastodon.test``) with local and known remote accounts."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}  # by id
        self.statuses: dict[str, Status] = {}  # by id
        self.notifications: list[Notification] = []
        self.instance = InstanceConfig()
        self.full_text_search = True  # False: an instance without Elasticsearch
        self.rate_limit = 300
        self._tokens: dict[str, Token] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._windows: dict[str, _Window] = {}
        self._snowflakes = _Snowflakes()
        self._next_account_id = 100
        self._next_notification_id = 1000
        self._state = threading.RLock()
        super().__init__()  # starts serving, so state must exist first

    # --- test-side API ------------------------------------------------------------------

    def add_account(self, username: str, domain: str | None = None, *, display_name: str | None = None,
                    token: str | None = None, scopes: tuple[str, ...] = ("read", "write")) -> str:
        """Create an account (remote when ``domain`` is given); ``token`` lets it use the API."""
        with self._state:
            self._next_account_id += 1
            account = Account(str(self._next_account_id), username, domain,
                              display_name if display_name is not None else username.title(),
                              datetime.now(timezone.utc))
            self.accounts[account.id] = account
            if token:
                self._tokens[token] = Token(account.id, scopes)
            return account.id

    def post(self, acct: str, text: str, *, in_reply_to: str | None = None, visibility: str = "public",
             mentions: list[str] | None = None, created_at: datetime | None = None,
             spoiler_text: str = "") -> str:
        """Post as ``acct``; mentions come from the text unless given. Returns the status id."""
        with self._state:
            author = self.account(acct)
            mentioned = ([self.account(m).id for m in mentions] if mentions is not None
                         else self._mentioned_ids(text))
            return self._create(author, text, visibility, in_reply_to, mentioned, spoiler_text,
                                created_at=created_at).id

    def delete(self, status_id: str) -> None:
        with self._state:
            self.statuses[status_id].deleted = True

    def get(self, status_id: str) -> Status:
        with self._state:
            return self.statuses[status_id]

    def created(self, acct: str) -> list[Status]:
        """Statuses ``acct`` wrote through POST /api/v1/statuses, oldest first."""
        with self._state:
            author = self.account(acct)
            return [s for s in self.statuses.values() if s.via_api and s.account_id == author.id]

    def account(self, acct: str) -> Account:
        username, _, domain = acct.lstrip("@").partition("@")
        domain = None if domain in ("", LOCAL_DOMAIN) else domain.lower()
        for account in self.accounts.values():
            if account.username.lower() == username.lower() and account.domain == domain:
                return account
        raise KeyError(acct)

    def set_instance(self, *, max_characters: int | None = None, characters_reserved_per_url: int | None = None,
                     v2: bool | None = None) -> None:
        with self._state:
            if max_characters is not None:
                self.instance.max_characters = max_characters
            if characters_reserved_per_url is not None:
                self.instance.characters_reserved_per_url = characters_reserved_per_url
            if v2 is not None:
                self.instance.v2 = v2

    def fail_next(self, path: str, status: int = 500, body: object = None, headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` (a path or a template like
        ``/api/v1/statuses/:id/context``) with this status; the body defaults to ``{"error": ...}``."""
        with self._state:
            answer = body if body is not None else {"error": _STATUS_MESSAGES.get(status, "Error")}
            self._faults.setdefault(path, []).append(_Fault(status, answer, dict(headers or {}), times))

    def set_delay(self, path: str, seconds: float) -> None:
        with self._state:
            self._delays[path] = seconds

    # --- HTTP dispatch ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        route = self._route(request.method, path)
        if route is None:
            with self._state:
                return Response(404, {"error": "Not Found"}, self._count_request(request))
        template, handler_name, token_rule, scopes, status_id = route
        time.sleep(self._delays.get(path, self._delays.get(template, 0)))
        with self._state:
            limit_headers = self._count_request(request)
            fault = self._injected_fault(path, template)
            if fault is not None:
                return Response(fault.status, fault.body, {**limit_headers, **fault.headers})
            if self._over_limit(request):
                return Response(429, {"error": _STATUS_MESSAGES[429]}, limit_headers)
            try:
                viewer = None if token_rule == "none" else self._authenticate(request, token_rule, scopes)
                status, body, headers = getattr(self, handler_name)(request, viewer, status_id)
            except ApiError as error:
                return Response(error.status, {"error": error.message}, limit_headers)
        return Response(status, body, {**limit_headers, **headers})

    def _route(self, method: str, path: str):
        for route_method, template, handler_name, token_rule, scopes in _ROUTES:
            status_id = _match(template, path)
            if status_id is not None and route_method == method:
                return template, handler_name, token_rule, scopes, status_id or None
        return None

    def _injected_fault(self, path: str, template: str) -> _Fault | None:
        queue = self._faults.get(path) or self._faults.get(template)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    def _count_request(self, request: Request) -> dict[str, str]:
        """Rack::Attack's fixed window per token (per client without one), reported on every answer."""
        key = request.headers.get("authorization") or "anonymous"
        now = time.time()
        window = self._windows.get(key)
        if window is None or window.ends_at <= now:
            window = self._windows[key] = _Window(ends_at=(now // RATE_LIMIT_PERIOD + 1) * RATE_LIMIT_PERIOD)
        window.used += 1
        reset = datetime.fromtimestamp(window.ends_at, timezone.utc).isoformat(timespec="microseconds")
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_limit - window.used, 0)),
            "X-RateLimit-Reset": reset.replace("+00:00", "Z"),
        }

    def _over_limit(self, request: Request) -> bool:
        window = self._windows[request.headers.get("authorization") or "anonymous"]
        return window.used > self.rate_limit

    def _authenticate(self, request: Request, token_rule: str, scopes: tuple[str, ...]) -> Account | None:
        """Doorkeeper: a token that is sent must be valid and carry one of the route's scopes."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if not value and token_rule == "optional":
            return None
        token = self._tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None:
            raise ApiError(401)
        if not token.allows(scopes):
            raise ApiError(403)
        return self.accounts[token.account_id]

    # --- instance and accounts ----------------------------------------------------------

    def _statuses_configuration(self) -> dict:
        return {
            "max_characters": self.instance.max_characters,
            "max_media_attachments": 4,
            "characters_reserved_per_url": self.instance.characters_reserved_per_url,
        }

    def _instance_v2(self, request: Request, viewer, _id) -> tuple[int, dict, dict]:
        if not self.instance.v2:
            raise ApiError(404, "Not Found")
        return 200, {
            "domain": LOCAL_DOMAIN,
            "title": "Mastodon Test",
            "version": self.instance.version,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A fake instance for tests",
            "usage": {"users": {"active_month": len(self.accounts)}},
            "thumbnail": {"url": f"https://{LOCAL_DOMAIN}/thumbnail.png"},
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": f"wss://{LOCAL_DOMAIN}"},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": self._statuses_configuration(),
                "media_attachments": {"supported_mime_types": ["image/png"], "image_size_limit": 16777216},
                "polls": {"max_options": 4, "max_characters_per_option": 50,
                          "min_expiration": 300, "max_expiration": 2629746},
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "api_versions": {"mastodon": 2},
            "contact": {"email": f"admin@{LOCAL_DOMAIN}", "account": None},
            "rules": [],
        }, {}

    def _instance_v1(self, request: Request, viewer, _id) -> tuple[int, dict, dict]:
        return 200, {
            "uri": LOCAL_DOMAIN,
            "title": "Mastodon Test",
            "short_description": "A fake instance for tests",
            "description": "",
            "email": f"admin@{LOCAL_DOMAIN}",
            "version": self.instance.version,
            "urls": {"streaming_api": f"wss://{LOCAL_DOMAIN}"},
            "stats": {"user_count": len(self.accounts), "status_count": len(self.statuses), "domain_count": 1},
            "thumbnail": None,
            "languages": ["en"],
            "registrations": False,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": {"statuses": self._statuses_configuration()},
            "contact_account": None,
            "rules": [],
        }, {}

    def _verify_credentials(self, request: Request, viewer: Account, _id) -> tuple[int, dict, dict]:
        source = {"privacy": "public", "sensitive": False, "language": "", "note": "", "fields": []}
        return 200, {**self._account_view(viewer), "source": source}, {}

    # --- notifications ------------------------------------------------------------------

    def _list_notifications(self, request: Request, viewer: Account, _id) -> tuple[int, list, dict]:
        limit = _int_param(request, "limit", default=40, low=1, high=80)
        types = request.query.get("types[]")
        excluded = request.query.get("exclude_types[]") or []
        mine = [n for n in self.notifications if n.recipient_id == viewer.id and self._notification_visible(n)
                and (not types or n.type in types) and n.type not in excluded]
        page = _id_page(mine, request, limit, key=lambda n: int(n.id))
        headers = {}
        if page:
            keep = {k: v for k, v in request.query.items() if k in ("limit", "types[]", "exclude_types[]")}
            headers["Link"] = _link_header(f"{self.base_url}/api/v1/notifications", keep, page[-1].id, page[0].id)
        return 200, [self._notification_view(n, viewer) for n in page], headers

    def _notification_visible(self, notification: Notification) -> bool:
        """Deleting a status removes the notifications about it."""
        status = self.statuses.get(notification.status_id or "")
        return notification.status_id is None or (status is not None and not status.deleted)

    # --- search -------------------------------------------------------------------------

    def _search(self, request: Request, viewer: Account, _id) -> tuple[int, dict, dict]:
        query = _param(request, "q")
        if not query:
            raise ApiError(400, "param is missing or the value is empty: q")
        kind = _param(request, "type")
        limit = _int_param(request, "limit", default=20, low=1, high=40)
        offset = _int_param(request, "offset", default=0, low=0, high=10**9) if kind else 0
        statuses = []
        if kind in (None, "statuses") and self.full_text_search:
            hits = sorted(self._search_hits(query, request, viewer), key=lambda s: s.created_at, reverse=True)
            statuses = [self._status_view(s, viewer) for s in hits[offset:offset + limit]]
        return 200, {"accounts": [], "statuses": statuses, "hashtags": []}, {}

    def _search_hits(self, query: str, request: Request, viewer: Account):
        """Any term or quoted phrase may match (should clauses, minimum_should_match 1).

        ``min_id``/``max_id`` become ``after:``/``before:`` on created_at, at whole seconds
        (StatusesSearchService#convert_deprecated_options!).
        """
        clauses = [phrase or word for phrase, word in re.findall(r'"([^"]+)"|(\S+)', query)]
        after, before = _param(request, "min_id"), _param(request, "max_id")
        after_time = _snowflake_time(after).replace(microsecond=0) if after else None
        before_time = _snowflake_time(before).replace(microsecond=0) if before else None
        for status in self.statuses.values():
            if status.deleted or not self._searchable(status, viewer):
                continue
            if after_time and status.created_at <= after_time or before_time and status.created_at >= before_time:
                continue
            if any(re.search(rf"(?<!\w){re.escape(c)}(?!\w)", status.text, re.IGNORECASE) for c in clauses):
                yield status

    def _searchable(self, status: Status, viewer: Account) -> bool:
        """Public posts of opted-in accounts, and what the user wrote or was mentioned in."""
        return status.visibility == "public" or viewer.id == status.account_id or viewer.id in status.mention_ids

    # --- statuses -----------------------------------------------------------------------

    def _create_status(self, request: Request, viewer: Account, _id) -> tuple[int, dict, dict]:
        form = request.json() if request.headers.get("content-type", "").startswith("application/json") else request.form()
        key = request.headers.get("idempotency-key")
        earlier = self.statuses.get(self._idempotency.get((viewer.id, key), "")) if key else None
        if earlier is not None and not earlier.deleted:
            return 200, self._status_view(earlier, viewer), {}
        text, spoiler = form.get("status") or "", form.get("spoiler_text") or ""
        visibility = form.get("visibility") or "public"
        reply_to = form.get("in_reply_to_id") or None
        if reply_to and not self._visible_status(reply_to, viewer):
            raise ApiError(404, "The post you are trying to reply to does not appear to exist.")
        if not text.strip():
            raise ApiError(422, "Validation failed: Text can't be blank")
        if visibility not in VISIBILITIES:
            raise ApiError(422, "Validation failed: Visibility is not included in the list")
        max_characters = self.instance.max_characters
        if countable_length(text, spoiler, self.instance.characters_reserved_per_url) > max_characters:
            raise ApiError(422, f"Validation failed: Text character limit of {max_characters} exceeded")
        status = self._create(viewer, text, visibility, reply_to, self._mentioned_ids(text), spoiler, via_api=True)
        if key:
            self._idempotency[(viewer.id, key)] = status.id
        return 200, self._status_view(status, viewer), {}

    def _get_status(self, request: Request, viewer: Account | None, status_id: str) -> tuple[int, dict, dict]:
        if not self._visible_status(status_id, viewer):
            raise ApiError(404)
        return 200, self._status_view(self.statuses[status_id], viewer), {}

    def _delete_status(self, request: Request, viewer: Account, status_id: str) -> tuple[int, dict, dict]:
        status = self.statuses.get(status_id)
        if status is None or status.deleted or status.account_id != viewer.id:
            raise ApiError(404)
        status.deleted = True
        return 200, {**self._status_view(status, viewer), "text": status.text}, {}

    def _context(self, request: Request, viewer: Account | None, status_id: str) -> tuple[int, dict, dict]:
        if not self._visible_status(status_id, viewer):
            raise ApiError(404)
        ancestors, parent_id = [], self.statuses[status_id].in_reply_to_id
        while parent_id and self._visible_status(parent_id, viewer):
            ancestors.insert(0, self.statuses[parent_id])
            parent_id = self.statuses[parent_id].in_reply_to_id
        return 200, {
            "ancestors": [self._status_view(s, viewer) for s in ancestors],
            "descendants": [self._status_view(s, viewer) for s in self._descendants(status_id, viewer)],
        }, {}

    def _descendants(self, status_id: str, viewer: Account | None) -> list[Status]:
        """Depth first, oldest reply first, as the thread reads."""
        found = []
        for child in sorted(self.statuses.values(), key=lambda s: int(s.id)):
            if child.in_reply_to_id == status_id and self._visible_status(child.id, viewer):
                found += [child, *self._descendants(child.id, viewer)]
        return found

    # --- writing state ------------------------------------------------------------------

    def _create(self, author: Account, text: str, visibility: str, in_reply_to: str | None,
                mention_ids: list[str], spoiler_text: str, *, via_api: bool = False,
                created_at: datetime | None = None) -> Status:
        moment = created_at or datetime.now(timezone.utc)
        status = Status(self._snowflakes.at(moment), author.id, text, visibility, moment, in_reply_to,
                        mention_ids, spoiler_text, via_api=via_api)
        self.statuses[status.id] = status
        for account_id in mention_ids:
            if account_id != author.id and self.accounts[account_id].domain is None:
                self._notify(account_id, "mention", author.id, status.id)
        return status

    def _notify(self, recipient_id: str, kind: str, from_id: str, status_id: str | None) -> None:
        self._next_notification_id += 1
        self.notifications.append(Notification(str(self._next_notification_id), recipient_id, kind, from_id,
                                               status_id, datetime.now(timezone.utc)))

    def _mentioned_ids(self, text: str) -> list[str]:
        """ProcessMentionsService: every @user or @user@domain that names a known account."""
        found = []
        for match in _MENTION.finditer(text):
            acct = match.group(1) + (f"@{match.group(2)}" if match.group(2) else "")
            try:
                account_id = self.account(acct).id
            except KeyError:
                continue
            if account_id not in found:
                found.append(account_id)
        return found

    # --- visibility ---------------------------------------------------------------------

    def _visible(self, status: Status, viewer: Account | None) -> bool:
        if status.visibility in ("public", "unlisted"):
            return True
        return viewer is not None and (viewer.id == status.account_id or viewer.id in status.mention_ids)

    def _visible_status(self, status_id: str, viewer: Account | None) -> bool:
        status = self.statuses.get(status_id)
        return status is not None and not status.deleted and self._visible(status, viewer)

    # --- views --------------------------------------------------------------------------

    def _account_view(self, account: Account) -> dict:
        statuses = sum(1 for s in self.statuses.values() if s.account_id == account.id and not s.deleted)
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.acct,
            "display_name": account.display_name,
            "locked": False,
            "bot": False,
            "discoverable": True,
            "indexable": True,
            "group": False,
            "created_at": _iso(account.created_at),
            "note": "",
            "url": account.url,
            "uri": f"https://{account.domain or LOCAL_DOMAIN}/users/{account.username}",
            "avatar": f"https://{LOCAL_DOMAIN}/avatars/original/missing.png",
            "avatar_static": f"https://{LOCAL_DOMAIN}/avatars/original/missing.png",
            "header": f"https://{LOCAL_DOMAIN}/headers/original/missing.png",
            "header_static": f"https://{LOCAL_DOMAIN}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": statuses,
            "last_status_at": None,
            "emojis": [],
            "fields": [],
        }

    def _status_view(self, status: Status, viewer: Account | None) -> dict:
        author = self.accounts[status.account_id]
        parent = self.statuses.get(status.in_reply_to_id or "")
        host = author.domain or LOCAL_DOMAIN
        return {
            "id": status.id,
            "created_at": _iso(status.created_at),
            "in_reply_to_id": status.in_reply_to_id,
            "in_reply_to_account_id": parent.account_id if parent else None,
            "sensitive": bool(status.spoiler_text),
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": "en",
            "uri": f"https://{host}/users/{author.username}/statuses/{status.id}",
            "url": f"https://{host}/@{author.username}/{status.id}",
            "replies_count": sum(1 for s in self.statuses.values()
                                 if s.in_reply_to_id == status.id and not s.deleted),
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "content": self._content_html(status),
            "filtered": [],
            "reblog": None,
            "application": {"name": "Web", "website": None} if author.domain is None else None,
            "account": self._account_view(author),
            "media_attachments": [],
            "mentions": [self._mention_view(self.accounts[i]) for i in status.mention_ids],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    @staticmethod
    def _mention_view(account: Account) -> dict:
        return {"id": account.id, "username": account.username, "url": account.url, "acct": account.acct}

    def _notification_view(self, notification: Notification, viewer: Account) -> dict:
        status = self.statuses.get(notification.status_id or "")
        return {
            "id": notification.id,
            "type": notification.type,
            "group_key": f"ungrouped-{notification.id}",
            "created_at": _iso(notification.created_at),
            "account": self._account_view(self.accounts[notification.from_id]),
            "status": self._status_view(status, viewer) if status else None,
        }

    def _content_html(self, status: Status) -> str:
        """TextFormatter: paragraphs, <br />, linked URLs with hidden parts, h-card mentions."""
        mentioned = {self.accounts[i].acct.lower(): self.accounts[i] for i in status.mention_ids}
        paragraphs = re.split(r"\n\n+", status.text.strip())
        return "".join(f"<p>{self._linkify(p, mentioned).replace(chr(10), '<br />')}</p>" for p in paragraphs)

    def _linkify(self, text: str, mentioned: dict[str, Account]) -> str:
        pieces, last = [], 0
        for match in re.finditer(f"{_URL.pattern}|{_MENTION.pattern}", text, re.IGNORECASE):
            pieces.append(html.escape(text[last:match.start()], quote=False))
            pieces.append(self._entity_html(match.group(), mentioned))
            last = match.end()
        pieces.append(html.escape(text[last:], quote=False))
        return "".join(pieces)

    @staticmethod
    def _entity_html(entity: str, mentioned: dict[str, Account]) -> str:
        if not entity.startswith("@"):
            scheme, _, rest = entity.partition("://")
            shown, hidden = rest[:30], rest[30:]
            return (f'<a href="{html.escape(entity)}" target="_blank" rel="nofollow noopener" translate="no">'
                    f'<span class="invisible">{scheme}://</span>'
                    f'<span class="{"ellipsis" if hidden else ""}">{html.escape(shown)}</span>'
                    f'<span class="invisible">{html.escape(hidden)}</span></a>')
        acct = entity[1:].lower().removesuffix(f"@{LOCAL_DOMAIN}")
        account = mentioned.get(acct)
        if account is None:
            return html.escape(entity, quote=False)
        return (f'<span class="h-card" translate="no"><a href="{account.url}" class="u-url mention">'
                f'@<span>{html.escape(account.username)}</span></a></span>')


# --- request parsing and paging ---------------------------------------------------------


def _param(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """Out-of-range values are clamped, as Mastodon's controllers do."""
    raw = _param(request, name)
    if raw is None:
        return default
    try:
        return max(low, min(int(raw), high))
    except ValueError:
        raise ApiError(400, f"Invalid {name}") from None


def _id_page(items: list, request: Request, limit: int, *, key) -> list:
    """Paginable#to_a_paginated_by_id: newest first; ``min_id`` pages forward from a cursor."""
    max_id, since_id, min_id = (_param(request, n) for n in ("max_id", "since_id", "min_id"))
    chosen = [i for i in items
              if (max_id is None or key(i) < int(max_id)) and (since_id is None or key(i) > int(since_id))
              and (min_id is None or key(i) > int(min_id))]
    if min_id is not None:
        return sorted(chosen, key=key)[:limit][::-1]
    return sorted(chosen, key=key, reverse=True)[:limit]


def _link_header(url: str, params: dict[str, list[str]], oldest_id: str, newest_id: str) -> str:
    def link(extra: dict[str, str], rel: str) -> str:
        query = urlencode([(k, v) for k, values in params.items() for v in values] + list(extra.items()))
        return f'<{url}?{query}>; rel="{rel}"'

    return f'{link({"max_id": oldest_id}, "next")}, {link({"min_id": newest_id}, "prev")}'

