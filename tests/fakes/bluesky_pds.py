"""A fake Bluesky PDS + AppView on 127.0.0.1 for tests that use the real atproto SDK.

Behaviour mirrors bluesky-social/atproto (packages/pds, packages/bsky) where the
bot can observe it: response shapes per the lexicons, error names and statuses,
which notifications a record produces, notification paging by ``sortAt``, and
thread assembly. Records are indexed the moment they are written (no firehose lag).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import regex

from .http import FakeServer, Request, Response

SERVICE_DID = "did:web:pds.test"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
FOLLOW = "app.bsky.graph.follow"
ACCESS_SCOPE = "com.atproto.access"
REFRESH_SCOPE = "com.atproto.refresh"
REPLY_NOTIF_DEPTH = 4  # the AppView notifies authors of the 4 nearest ancestors
THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
NOT_FOUND_POST = "app.bsky.feed.defs#notFoundPost"

# (error name, default message) per status, as @atproto/xrpc-server words them.
_STATUS = {
    400: ("InvalidRequest", "Invalid Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("XRPCNotSupported", "XRPC Not Supported"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Not Enough Resources"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}

_B32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"
_AT_URI = re.compile(r"^at://[A-Za-z0-9:._%-]+(/[a-zA-Z][a-zA-Z0-9.-]*(/[A-Za-z0-9._:~-]+)?)?$")
_CID = re.compile(r"^b[a-z2-7]{50,}$")
_MENTION = re.compile(r"(?:^|(?<=[\s(]))@([a-zA-Z0-9.-]+)\b")
_LINK = re.compile(r"(?:^|(?<=[\s(]))(https?://\S+)")


class XrpcError(Exception):
    """An XRPC error answer: ``{"error", "message"}`` with an HTTP status."""

    def __init__(self, status: int, error: str | None = None, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        name, default_message = _STATUS.get(status, ("InternalServerError", "Internal Server Error"))
        super().__init__(message or default_message)
        self.status = status
        self.error = error or name
        self.message = message or default_message
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, {"error": self.error, "message": self.message}, dict(self.headers))


def _invalid_record(issue: str, path: str) -> XrpcError:
    """Worded like the PDS's lexicon validation (InvalidRecordError -> InvalidRequest)."""
    return XrpcError(400, message=f"Invalid {POST} record: {issue} at {path}")


# --- small value helpers --------------------------------------------------------------


def _iso(moment: datetime) -> str:
    """Millisecond UTC ISO string with ``Z``, like JavaScript's ``toISOString``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _parse_datetime(value: object) -> datetime | None:
    """An atproto ``datetime`` must carry a timezone; anything else is invalid."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _cid(value: dict) -> str:
    """A CIDv1 (dag-cbor, sha2-256) over the JSON form: the right shape, ``bafyrei...``."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def _ref(record: "Record") -> dict:
    return {"uri": record.uri, "cid": record.cid}


class _Clock:
    """Hands out strictly increasing millisecond timestamps, one per indexed record.

    The AppView pages notifications with ``sortAt < cursor``, so two records sharing a
    millisecond can straddle a page edge and one is skipped; distinct stamps keep the
    fake's own records clear of that (back-dated ``created_at`` values can still collide,
    as they can in production).
    """

    def __init__(self) -> None:
        self._last = datetime.fromtimestamp(0, timezone.utc)

    def tick(self) -> datetime:
        self._last = max(_ms(datetime.now(timezone.utc)), self._last + timedelta(milliseconds=1))
        return self._last


class _Tids:
    """Record keys in TID form: 13 base32-sortable chars from microseconds + clock id."""

    def __init__(self) -> None:
        self._last = 0
        self._clock_id = secrets.randbelow(1024)

    def next(self) -> str:
        self._last = max(time.time_ns() // 1000, self._last + 1)
        number = (self._last << 10) | self._clock_id
        return "".join(_B32_SORTABLE[(number >> shift) & 31] for shift in range(60, -1, -5))


# --- state ----------------------------------------------------------------------------


@dataclass
class Account:
    handle: str
    did: str
    password: str
    display_name: str | None
    email: str | None
    created_at: datetime
    seen_at: datetime | None = None  # set by app.bsky.notification.updateSeen
    # chat.bsky: an app password made without "Allow access to your direct messages" may not use it,
    # and chat.bsky.actor.declaration's allowIncoming is "following" until the person changes it
    dm_access: bool = True
    allow_incoming: str = "following"  # all | following | none


@dataclass
class Convo:
    id: str
    members: tuple[str, ...]  # dids
    messages: list[dict] = field(default_factory=list)  # messageView, oldest first


@dataclass
class Record:
    """A repo record as the AppView indexed it; ``deleted`` once removed."""

    uri: str
    cid: str
    value: dict
    indexed_at: datetime
    sort_at: datetime  # earlier of indexedAt and createdAt, as the AppView sorts
    via_api: bool = False  # written through com.atproto.repo.createRecord
    deleted: bool = False

    @property
    def author(self) -> str:
        return self.uri.split("/")[2]

    @property
    def collection(self) -> str:
        return self.uri.split("/")[3]

    @property
    def rkey(self) -> str:
        return self.uri.split("/")[4]

    @property
    def text(self) -> str:
        return self.value.get("text", "")

    @property
    def parent_uri(self) -> str | None:
        return (self.value.get("reply") or {}).get("parent", {}).get("uri")

    @property
    def root_uri(self) -> str:
        """The thread root this post claims (itself when it is not a reply)."""
        return (self.value.get("reply") or {}).get("root", {}).get("uri") or self.uri

    @property
    def quoted_uri(self) -> str | None:
        embed = self.value.get("embed") or {}
        if embed.get("$type") == "app.bsky.embed.recordWithMedia":
            embed = embed.get("record") or {}
        if embed.get("$type") != "app.bsky.embed.record":
            return None
        return (embed.get("record") or {}).get("uri")


@dataclass
class Notification:
    recipient: str  # did
    uri: str  # the record that caused it
    author: str  # did
    reason: str
    sort_at: datetime
    reason_subject: str | None = None


@dataclass
class _Fault:
    status: int
    error: str | None
    message: str | None
    headers: dict[str, str] | None
    times: int


# method, handler name, auth kind ("none" | "access" | "refresh")
_ROUTES: dict[str, tuple[str, str, str]] = {
    "com.atproto.server.describeServer": ("GET", "_describe_server", "none"),
    "com.atproto.server.createSession": ("POST", "_create_session", "none"),
    "com.atproto.server.refreshSession": ("POST", "_refresh_session", "refresh"),
    "com.atproto.server.getSession": ("GET", "_get_session", "access"),
    "com.atproto.identity.resolveHandle": ("GET", "_resolve_handle", "none"),
    "com.atproto.repo.createRecord": ("POST", "_create_record", "access"),
    "com.atproto.repo.deleteRecord": ("POST", "_delete_record", "access"),
    "com.atproto.repo.getRecord": ("GET", "_get_record", "none"),
    "app.bsky.actor.getProfile": ("GET", "_get_profile", "access"),
    "app.bsky.actor.getProfiles": ("GET", "_get_profiles", "access"),
    "app.bsky.notification.listNotifications": ("GET", "_list_notifications", "access"),
    "app.bsky.notification.getUnreadCount": ("GET", "_get_unread_count", "access"),
    "app.bsky.notification.updateSeen": ("POST", "_update_seen", "access"),
    "app.bsky.feed.searchPosts": ("GET", "_search_posts", "access"),
    "app.bsky.feed.getPostThread": ("GET", "_get_post_thread", "access"),
    "app.bsky.feed.getPosts": ("GET", "_get_posts", "access"),
    # chat.bsky, which the PDS only proxies to the chat service named in the atproto-proxy header
    "chat.bsky.convo.getConvoForMembers": ("GET", "_get_convo_for_members", "chat"),
    "chat.bsky.convo.sendMessage": ("POST", "_send_message", "chat"),
    "chat.bsky.convo.getMessages": ("GET", "_get_messages", "chat"),
    "chat.bsky.convo.listConvos": ("GET", "_list_convos", "chat"),
}
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"


class FakeBluesky(FakeServer):
    """Bluesky over XRPC: accounts, posts, likes, follows, notifications and threads."""

    def __init__(self, *, access_token_ttl: timedelta = timedelta(hours=2)) -> None:
        self.access_token_ttl = access_token_ttl  # the real PDS issues 120-minute tokens
        self.search_supported = True
        self.accounts: dict[str, Account] = {}  # by handle
        self.records: dict[str, Record] = {}  # by uri, in write order
        self.notifications: list[Notification] = []
        self.convos: dict[str, Convo] = {}  # by id
        self._state = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self._issued_access: set[str] = set()
        self._expired_access: set[str] = set()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._lost: set[str] = set()  # calls done whose answer is replaced by a 502
        self._clock = _Clock()
        self._tids = _Tids()
        self.on_record: list = []  # callables given each new Record (a stream fake follows the repo writes)
        super().__init__()  # starts serving, so state must exist first

    # --- test-side API ------------------------------------------------------------------

    def add_account(self, handle: str, password: str = "pw", display_name: str | None = None,
                    *, email: str | None = None) -> str:
        """Create an account; returns its did:plc."""
        handle = handle.lower()
        did = "did:plc:" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(24))
        with self._state:
            self.accounts[handle] = Account(handle, did, password, display_name, email,
                                            self._clock.tick())
        return did

    def post(self, handle: str, text: str, *, reply_to: str | None = None, quote: str | None = None,
             created_at: datetime | None = None, facets: list | None = None, langs: tuple[str, ...] = ("en",)) -> str:
        """Post as ``handle``, with mention/link facets detected as clients do; returns the uri."""
        with self._state:
            author = self._account(handle)
            indexed_at = self._clock.tick()
            value: dict = {"$type": POST, "text": text, "langs": list(langs),
                           "createdAt": _iso(_utc(created_at) if created_at else indexed_at)}
            facets = self._detect_facets(text) if facets is None else facets
            if facets:
                value["facets"] = facets
            if reply_to:
                parent = self.records[reply_to]
                root = (parent.value.get("reply") or {}).get("root") or _ref(parent)
                value["reply"] = {"root": dict(root), "parent": _ref(parent)}
            if quote:
                value["embed"] = {"$type": "app.bsky.embed.record", "record": _ref(self.records[quote])}
            return self._index(author.did, POST, value, indexed_at=indexed_at).uri

    def like(self, handle: str, uri: str) -> str:
        with self._state:
            subject = self.records[uri]
            indexed_at = self._clock.tick()
            value = {"$type": LIKE, "subject": _ref(subject), "createdAt": _iso(indexed_at)}
            return self._index(self._account(handle).did, LIKE, value, indexed_at=indexed_at).uri

    def follow(self, handle: str, target_handle: str) -> str:
        with self._state:
            indexed_at = self._clock.tick()
            value = {"$type": FOLLOW, "subject": self._account(target_handle).did,
                     "createdAt": _iso(indexed_at)}
            return self._index(self._account(handle).did, FOLLOW, value, indexed_at=indexed_at).uri

    def delete(self, uri: str) -> None:
        with self._state:
            self.records[uri].deleted = True

    def get(self, uri: str) -> Record:
        with self._state:
            return self.records[uri]

    def posts_by(self, handle: str) -> list[Record]:
        """Live posts of ``handle``, oldest first."""
        with self._state:
            did = self._account(handle).did
            return [r for r in self._live_posts() if r.author == did]

    def created(self, handle: str) -> list[Record]:
        """Posts ``handle`` wrote through createRecord (what the bot posted), oldest first."""
        with self._state:
            did = self._account(handle).did
            return [r for r in self.records.values()
                    if r.via_api and r.collection == POST and r.author == did]

    def thread_of(self, uri: str) -> list[Record]:
        """Live posts of the thread ``uri`` belongs to (root first), oldest first."""
        with self._state:
            root = self.records[uri].root_uri
            return [r for r in self._live_posts() if r.root_uri == root]

    def expire_tokens(self) -> None:
        """Make every access token issued so far answer 400 ExpiredToken."""
        with self._state:
            self._expired_access |= self._issued_access

    def fail_next(self, nsid: str, status: int = 500, error: str | None = None,
                  message: str | None = None, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` calls of ``nsid`` with this error (name/message default per status)."""
        with self._state:
            self._faults.setdefault(nsid, []).append(_Fault(status, error, message, headers, times))

    def lose_answer_next(self, nsid: str) -> None:
        """Do the next call of ``nsid``, then answer 502 as a proxy that lost the upstream's answer would."""
        with self._state:
            self._lost.add(nsid)

    def set_delay(self, nsid: str, seconds: float) -> None:
        with self._state:
            self._delays[nsid] = seconds

    # --- HTTP dispatch ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except XrpcError as error:
            return error.response()

    def _dispatch(self, request: Request) -> Response:
        nsid = request.path.removeprefix("/xrpc/")
        if nsid not in _ROUTES or not request.path.startswith("/xrpc/"):
            raise XrpcError(501)
        method, handler_name, auth = _ROUTES[nsid]
        if request.method != method:
            raise XrpcError(400, message=f"Incorrect HTTP method ({request.method}) expected {method}")
        time.sleep(self._delays.get(nsid, 0))
        with self._state:
            self._raise_injected_fault(nsid)
            viewer = None if auth == "none" else self._authenticate(request, "access" if auth == "chat" else auth)
            if auth == "chat":
                self._check_chat(request, viewer, nsid)
            body = getattr(self, handler_name)(request, viewer)
            if nsid in self._lost:
                self._lost.discard(nsid)
                raise XrpcError(502)
        return Response(200, body)

    def _raise_injected_fault(self, nsid: str) -> None:
        queue = self._faults.get(nsid)
        if not queue:
            return
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        raise XrpcError(fault.status, fault.error, fault.message, fault.headers)

    # --- tokens -------------------------------------------------------------------------

    def _jwt(self, typ: str, payload: dict) -> str:
        header = _b64url(json.dumps({"typ": typ, "alg": "HS256"}).encode())
        body = _b64url(json.dumps(payload).encode())
        signature = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64url(signature)}"

    def _session(self, account: Account) -> dict:
        """createSession/refreshSession body; no didDoc, so the SDK keeps this base URL."""
        now = int(time.time())
        # jti keeps each access token distinct so expire_tokens() can single them out.
        access = self._jwt("at+jwt", {
            "scope": ACCESS_SCOPE, "sub": account.did, "aud": SERVICE_DID, "iat": now,
            "exp": now + int(self.access_token_ttl.total_seconds()), "jti": secrets.token_hex(8)})
        refresh = self._jwt("refresh+jwt", {
            "scope": REFRESH_SCOPE, "sub": account.did, "aud": SERVICE_DID, "iat": now,
            "exp": now + 90 * 86400, "jti": secrets.token_hex(16)})
        self._issued_access.add(access)
        return {"accessJwt": access, "refreshJwt": refresh, **self._session_info(account)}

    @staticmethod
    def _session_info(account: Account) -> dict:
        info = {"handle": account.handle, "did": account.did,
                "emailConfirmed": account.email is not None, "active": True}
        if account.email:
            info["email"] = account.email
        return info

    def _authenticate(self, request: Request, kind: str) -> str:
        """Verify the bearer JWT the way the PDS auth verifier does; returns its did."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise XrpcError(401, "AuthMissing")
        payload = self._verified_payload(token, "at+jwt" if kind == "access" else "refresh+jwt")
        if payload.get("exp", 0) <= time.time() or token in self._expired_access:
            raise XrpcError(400, "ExpiredToken", "Token has expired")
        if payload.get("scope") != (ACCESS_SCOPE if kind == "access" else REFRESH_SCOPE):
            raise XrpcError(400, "InvalidToken", "Bad token scope")
        if self._account_by_did(payload.get("sub")) is None:
            raise XrpcError(400, "InvalidToken", "Malformed token")
        return payload["sub"]

    def _verified_payload(self, token: str, typ: str) -> dict:
        unverifiable = XrpcError(400, "InvalidToken", "Token could not be verified")
        try:
            header, body, signature = token.split(".")
            expected = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64url_decode(signature)):
                raise unverifiable
            if json.loads(_b64url_decode(header)).get("typ") != typ:
                raise unverifiable
            return json.loads(_b64url_decode(body))
        except (ValueError, TypeError):
            raise unverifiable from None

    # --- lookups ------------------------------------------------------------------------

    def _account(self, handle: str) -> Account:
        return self.accounts[handle.lower()]

    def _account_by_did(self, did: object) -> Account | None:
        return next((a for a in self.accounts.values() if a.did == did), None)

    def _actor(self, handle_or_did: str) -> Account | None:
        if handle_or_did.startswith("did:"):
            return self._account_by_did(handle_or_did)
        return self.accounts.get(handle_or_did.lower())

    def _live(self, uri: str | None) -> Record | None:
        record = self.records.get(uri) if uri else None
        return record if record and not record.deleted else None

    def _live_posts(self) -> list[Record]:
        return [r for r in self.records.values() if r.collection == POST and not r.deleted]

    # --- indexing and notifications ----------------------------------------------------

    def _index(self, did: str, collection: str, value: dict, *, indexed_at: datetime | None = None,
               via_api: bool = False) -> Record:
        indexed_at = indexed_at or self._clock.tick()
        created_at = _ms(_parse_datetime(value["createdAt"]) or indexed_at)
        record = Record(uri=f"at://{did}/{collection}/{self._tids.next()}", cid=_cid(value),
                        value=value, indexed_at=indexed_at, sort_at=min(indexed_at, created_at),
                        via_api=via_api)
        self.records[record.uri] = record
        for listener in self.on_record:
            listener(record)
        for recipient, reason, subject in self._notifications_for(record):
            self.notifications.append(
                Notification(recipient, record.uri, did, reason, record.sort_at, subject))
        return record

    def _notifications_for(self, record: Record) -> list[tuple[str, str, str | None]]:
        """(recipient, reason, reasonSubject) per the AppView indexing plugins; never to oneself."""
        if record.collection == LIKE:
            subject = record.value["subject"]["uri"]
            targets = [(subject.split("/")[2], "like", subject)]
        elif record.collection == FOLLOW:
            targets = [(record.value["subject"], "follow", None)]
        else:
            targets = self._post_notification_targets(record)
        notified = {record.author}
        chosen = []
        for recipient, reason, subject in targets:
            if recipient not in notified and self._account_by_did(recipient):
                notified.add(recipient)
                chosen.append((recipient, reason, subject))
        return chosen

    def _post_notification_targets(self, post: Record) -> list[tuple[str, str, str | None]]:
        """Mentions first, then the quoted author, then authors of up to 4 ancestors.

        Each account is notified once per post, so a reply that also @mentions the parent's
        author gives that author a ``mention``, not a ``reply``.
        """
        targets: list[tuple[str, str, str | None]] = [
            (feature["did"], "mention", None)
            for facet in post.value.get("facets") or []
            for feature in facet.get("features") or []
            if feature.get("$type") == "app.bsky.richtext.facet#mention"
        ]
        quoted = post.quoted_uri
        if quoted and quoted.split("/")[3] == POST:
            targets.append((quoted.split("/")[2], "quote", quoted))
        ancestor = self._live(post.parent_uri)
        for _ in range(REPLY_NOTIF_DEPTH):
            if ancestor is None:
                break
            targets.append((ancestor.author, "reply", ancestor.uri))
            ancestor = self._live(ancestor.parent_uri)
        return targets

    def _detect_facets(self, text: str) -> list[dict]:
        """Mentions of known handles and http(s) links, indexed by UTF-8 byte offsets."""
        def byte_slice(start: int, end: int) -> dict:
            return {"byteStart": len(text[:start].encode()), "byteEnd": len(text[:end].encode())}

        facets = []
        for match in _MENTION.finditer(text):
            account = self.accounts.get(match.group(1).lower())
            if account:
                facets.append({"$type": "app.bsky.richtext.facet",
                               "index": byte_slice(match.start(), match.end()),
                               "features": [{"$type": "app.bsky.richtext.facet#mention",
                                             "did": account.did}]})
        for match in _LINK.finditer(text):
            url = match.group(1).rstrip(".,;:!?")
            if url.endswith(")") and "(" not in url:
                url = url[:-1]
            facets.append({"$type": "app.bsky.richtext.facet",
                           "index": byte_slice(match.start(1), match.start(1) + len(url)),
                           "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}]})
        return sorted(facets, key=lambda facet: facet["index"]["byteStart"])

    def _visible(self, notification: Notification) -> bool:
        """Deleted records take their notifications (and those about them) along."""
        if self._live(notification.uri) is None:
            return False
        return notification.reason_subject is None or self._live(notification.reason_subject) is not None

    # --- views --------------------------------------------------------------------------

    def _profile_basic(self, did: str) -> dict:
        account = self._account_by_did(did)
        view = {"did": did, "handle": account.handle, "labels": [],
                "createdAt": _iso(account.created_at),
                "viewer": {"muted": False, "blockedBy": False}}
        if account.display_name:
            view["displayName"] = account.display_name
        return view

    def _profile(self, did: str) -> dict:
        return {**self._profile_basic(did), "indexedAt": _iso(self._account_by_did(did).created_at)}

    def _profile_detailed(self, did: str) -> dict:
        follows = [r for r in self.records.values() if r.collection == FOLLOW and not r.deleted]
        return {**self._profile(did),
                "followersCount": sum(r.value["subject"] == did for r in follows),
                "followsCount": sum(r.author == did for r in follows),
                "postsCount": sum(r.author == did for r in self._live_posts())}

    def _post_view(self, post: Record, *, with_embed: bool = True) -> dict:
        live = [r for r in self.records.values() if not r.deleted]
        view = {
            "uri": post.uri, "cid": post.cid, "author": self._profile_basic(post.author),
            "record": post.value, "indexedAt": _iso(post.sort_at), "labels": [],
            "replyCount": sum(r.collection == POST and r.parent_uri == post.uri for r in live),
            "repostCount": 0,
            "likeCount": sum(r.collection == LIKE and r.value["subject"]["uri"] == post.uri
                             for r in live),
            "quoteCount": sum(r.collection == POST and r.quoted_uri == post.uri for r in live),
            "bookmarkCount": 0,
        }
        if with_embed and post.quoted_uri:
            view["embed"] = self._quote_embed_view(post.quoted_uri)
        return view

    def _quote_embed_view(self, uri: str) -> dict:
        quoted = self._live(uri)
        if quoted is None:
            record = {"$type": "app.bsky.embed.record#viewNotFound", "uri": uri, "notFound": True}
        else:
            view = self._post_view(quoted, with_embed=False)
            record = {"$type": "app.bsky.embed.record#viewRecord", "uri": uri, "cid": quoted.cid,
                      "author": view["author"], "value": quoted.value, "labels": [],
                      "indexedAt": view["indexedAt"],
                      **{k: view[k] for k in ("likeCount", "replyCount", "repostCount", "quoteCount")}}
        return {"$type": "app.bsky.embed.record#view", "record": record}

    def _thread_view(self, anchor: Record, depth: int, height: int) -> dict:
        view: dict = {"$type": THREAD_VIEW, "post": self._post_view(anchor)}
        parent = self._thread_parent(anchor, anchor.root_uri, height)
        if parent:
            view["parent"] = parent
        replies = self._thread_replies(anchor, anchor.root_uri, depth)
        if replies is not None:
            view["replies"] = replies
        return view

    def _thread_parent(self, child: Record, root_uri: str, height: int) -> dict | None:
        """A missing parent shows as notFoundPost; one claiming another root is left out."""
        if height < 1 or not child.parent_uri:
            return None
        parent = self._live(child.parent_uri)
        if parent is None:
            return {"$type": NOT_FOUND_POST, "uri": child.parent_uri, "notFound": True}
        if parent.root_uri != root_uri:
            return None
        view: dict = {"$type": THREAD_VIEW, "post": self._post_view(parent)}
        grandparent = self._thread_parent(parent, root_uri, height - 1)
        if grandparent:
            view["parent"] = grandparent
        return view

    def _thread_replies(self, parent: Record, root_uri: str, depth: int) -> list[dict] | None:
        """Newest first; replies naming a different root, and deleted ones, are dropped."""
        if depth < 1:
            return None
        children = [r for r in self._live_posts()
                    if r.parent_uri == parent.uri and r.root_uri == root_uri]
        views = []
        for child in sorted(children, key=lambda r: r.sort_at, reverse=True):
            view: dict = {"$type": THREAD_VIEW, "post": self._post_view(child)}
            replies = self._thread_replies(child, root_uri, depth - 1)
            if replies is not None:
                view["replies"] = replies
            views.append(view)
        return views

    def _notification_view(self, notification: Notification, last_seen: datetime | None) -> dict:
        record = self.records[notification.uri]
        view = {"uri": record.uri, "cid": record.cid, "author": self._profile(notification.author),
                "reason": notification.reason, "record": record.value,
                "isRead": last_seen > notification.sort_at if last_seen else True,
                "indexedAt": _iso(notification.sort_at), "labels": []}
        if notification.reason_subject:
            view["reasonSubject"] = notification.reason_subject
        return view

    # --- chat.bsky (the chat service behind the PDS's proxy) -----------------------------

    def messages_to(self, handle: str) -> list[dict]:
        """Every chat message in conversations ``handle`` is in, oldest first."""
        did = self._account(handle).did
        with self._state:
            return [m for c in self.convos.values() if did in c.members for m in c.messages]

    def _check_chat(self, request: Request, viewer: str, nsid: str) -> None:
        if request.headers.get("atproto-proxy") != CHAT_PROXY:
            raise XrpcError(400, message=f"No service configured for {nsid}")
        if not self._account_by_did(viewer).dm_access:  # pipethrough's PRIVILEGED_METHODS
            raise XrpcError(400, "InvalidToken", "Bad token method")

    def _get_convo_for_members(self, request: Request, viewer: str) -> dict:
        members = request.query.get("members") or []
        if not 1 <= len(members) <= 10:
            raise XrpcError(400, message=f"Array too {'short' if not members else 'long'} at $.members")
        for did in members:
            if did == viewer:
                continue
            other = self._account_by_did(did)
            if other is None:
                raise XrpcError(400, "RecipientNotFound", "recipient not found")
            if other.allow_incoming == "none":
                raise XrpcError(400, "MessagesDisabled", "recipient has disabled incoming messages")
            if other.allow_incoming == "following" and not self._follows(other.did, viewer):
                raise XrpcError(400, "NotFollowedBySender", "recipient requires incoming messages to come from someone they follow")
        dids = tuple(sorted({viewer, *members}))
        convo = next((c for c in self.convos.values() if c.members == dids), None)
        if convo is None:
            convo = Convo(self._tids.next(), dids)
            self.convos[convo.id] = convo
        return {"convo": self._convo_view(convo)}

    def _send_message(self, request: Request, viewer: str) -> dict:
        body = request.json()
        convo = self.convos.get(str(body.get("convoId")))
        if convo is None or viewer not in convo.members:
            raise XrpcError(400, "InvalidConvo", "Convo not found")
        text = _required(body.get("message"), "text", "$.message")
        if not isinstance(text, str):
            raise XrpcError(400, message="Expected string value type at $.message.text")
        if len(text.encode()) > 10000:
            raise XrpcError(400, message=f"string too big (maximum 10000, got {len(text.encode())}) at $.message.text")
        if _graphemes(text) > 1000:
            raise XrpcError(400, message=f"grapheme too big (maximum 1000, got {_graphemes(text)}) at $.message.text")
        message = {"$type": "chat.bsky.convo.defs#messageView", "id": self._tids.next(), "rev": self._tids.next(),
                   "text": text, "sender": {"did": viewer}, "sentAt": _iso(self._clock.tick())}
        convo.messages.append(message)
        return message

    def _get_messages(self, request: Request, viewer: str) -> dict:
        convo = self.convos.get(_param(request, "convoId", required=True) or "")
        if convo is None or viewer not in convo.members:
            raise XrpcError(400, "InvalidConvo", "Convo not found")
        return {"messages": list(reversed(convo.messages))}  # newest first

    def _list_convos(self, request: Request, viewer: str) -> dict:
        limit = _int_param(request, "limit", default=50, low=1, high=100)
        return {"convos": [self._convo_view(c) for c in self.convos.values() if viewer in c.members][:limit]}

    def _convo_view(self, convo: Convo) -> dict:
        return {"id": convo.id, "rev": convo.messages[-1]["rev"] if convo.messages else "0", "muted": False, "unreadCount": 0,
                "members": [self._profile_basic(did) for did in convo.members]}

    def _follows(self, follower: str, subject: str) -> bool:
        return any(r.collection == FOLLOW and not r.deleted and r.author == follower and r.value.get("subject") == subject
                   for r in self.records.values())

    # --- com.atproto.server / identity -------------------------------------------------

    def _describe_server(self, request: Request, viewer: None) -> dict:
        return {"did": SERVICE_DID, "availableUserDomains": [".test"],
                "inviteCodeRequired": False, "links": {}, "contact": {}}

    def _create_session(self, request: Request, viewer: None) -> dict:
        body = request.json()
        identifier = str(body.get("identifier", ""))
        if "@" in identifier:
            account = next((a for a in self.accounts.values() if a.email == identifier), None)
        else:
            account = self._actor(identifier)
        if account is None or account.password != body.get("password"):
            raise XrpcError(401, message="Invalid identifier or password")
        return self._session(account)

    def _refresh_session(self, request: Request, viewer: str) -> dict:
        return self._session(self._account_by_did(viewer))

    def _get_session(self, request: Request, viewer: str) -> dict:
        return self._session_info(self._account_by_did(viewer))

    def _resolve_handle(self, request: Request, viewer: None) -> dict:
        account = self._actor(_param(request, "handle", required=True))
        if account is None:
            raise XrpcError(400, message="Unable to resolve handle")
        return {"did": account.did}

    # --- com.atproto.repo ---------------------------------------------------------------

    def _own_repo(self, repo: object, viewer: str) -> Account:
        account = self._actor(str(repo or ""))
        if account is None:
            raise XrpcError(403, "AccountNotFound", "Account not found")
        if account.did != viewer:
            raise XrpcError(401)
        return account

    def _create_record(self, request: Request, viewer: str) -> dict:
        body = request.json()
        account = self._own_repo(body.get("repo"), viewer)
        if body.get("collection") != POST or body.get("rkey"):
            raise XrpcError(400, message="this fake stores only app.bsky.feed.post records with "
                                         "server-chosen rkeys")
        value = dict(body.get("record") or {})
        value.setdefault("$type", POST)
        if value["$type"] != POST:
            raise XrpcError(400, message=f"Invalid $type: expected {POST}, got {value['$type']}")
        _validate_post(value)
        record = self._index(account.did, POST, value, via_api=True)
        return {"uri": record.uri, "cid": record.cid,
                "commit": {"cid": _cid({"commit": record.uri}), "rev": self._tids.next()},
                "validationStatus": "valid"}

    def _delete_record(self, request: Request, viewer: str) -> dict:
        body = request.json()
        account = self._own_repo(body.get("repo"), viewer)
        record = self._live(f"at://{account.did}/{body.get('collection')}/{body.get('rkey')}")
        if record is None:
            return {}  # the PDS treats deleting a missing record as a no-op
        record.deleted = True
        return {"commit": {"cid": _cid({"delete": record.uri}), "rev": self._tids.next()}}

    def _get_record(self, request: Request, viewer: None) -> dict:
        repo = _param(request, "repo", required=True)
        account = self._actor(repo)
        if account is None:
            raise XrpcError(400, message=f"Could not find repo: {repo}")
        uri = (f"at://{account.did}/{_param(request, 'collection', required=True)}/"
               f"{_param(request, 'rkey', required=True)}")
        record = self._live(uri)
        wanted_cid = _param(request, "cid")
        if record is None or (wanted_cid and wanted_cid != record.cid):
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return {"uri": uri, "cid": record.cid, "value": record.value}

    # --- app.bsky.actor / notification -------------------------------------------------

    def _get_profile(self, request: Request, viewer: str) -> dict:
        account = self._actor(_param(request, "actor", required=True))
        if account is None:
            raise XrpcError(400, message="Profile not found")
        return self._profile_detailed(account.did)

    def _get_profiles(self, request: Request, viewer: str) -> dict:
        actors = request.query.get("actors", [])
        if len(actors) > 25:
            raise XrpcError(400, message=f"array too big (maximum 25, got {len(actors)}) at $.actors")
        found = [self._actor(actor) for actor in actors]
        return {"profiles": [self._profile_detailed(account.did) for account in found if account]}

    def _list_notifications(self, request: Request, viewer: str) -> dict:
        """One page, newest first; the cursor is the last item's sortAt (next page: older)."""
        if _param(request, "seenAt"):
            raise XrpcError(400, message="The seenAt parameter is unsupported")
        limit = _int_param(request, "limit", default=50, low=1, high=100)
        cursor = _param(request, "cursor")
        reasons = request.query.get("reasons")
        page, next_cursor = _fill_page(cursor, limit,
                                       lambda c, n: self._notification_page(viewer, c, n, reasons))
        account = self._account_by_did(viewer)
        last_seen = account.seen_at
        if last_seen is None and cursor is None and page:
            last_seen = page[0].sort_at  # AppView: with no seenAt only the top one is unread
        result: dict = {"notifications": [self._notification_view(n, last_seen) for n in page],
                        "priority": False}
        if next_cursor:
            result["cursor"] = next_cursor
        if last_seen:
            result["seenAt"] = _iso(last_seen)
        return result

    def _notification_page(self, viewer: str, cursor: str | None, limit: int,
                           reasons: list[str] | None) -> tuple[list[Notification], str | None]:
        """The data-plane query: ``sortAt < cursor`` desc, limit+1 to know if more follow.

        ``reasons`` filters after paging, as the AppView does, so pages can run short.
        """
        before = _parse_cursor(cursor)
        mine = [n for n in self.notifications if n.recipient == viewer and self._visible(n)]
        ordered = sorted(reversed(mine), key=lambda n: n.sort_at, reverse=True)
        candidates = [n for n in ordered if before is None or n.sort_at < before]
        page = candidates[:limit]
        next_cursor = _iso(page[-1].sort_at) if len(candidates) > limit else None
        return [n for n in page if not reasons or n.reason in reasons], next_cursor

    def _get_unread_count(self, request: Request, viewer: str) -> dict:
        if _param(request, "seenAt"):
            raise XrpcError(400, message="The seenAt parameter is unsupported")
        seen = self._account_by_did(viewer).seen_at
        return {"count": sum(1 for n in self.notifications if n.recipient == viewer
                             and self._visible(n) and (seen is None or n.sort_at > seen))}

    def _update_seen(self, request: Request, viewer: str) -> None:
        seen_at = request.json().get("seenAt")
        parsed = _parse_datetime(seen_at)
        if parsed is None:
            raise XrpcError(400, message=f"Invalid datetime (got {json.dumps(seen_at)}) at $.seenAt")
        self._account_by_did(viewer).seen_at = _ms(parsed)

    # --- app.bsky.feed ------------------------------------------------------------------

    def _search_posts(self, request: Request, viewer: str) -> dict:
        """Every term must appear as a whole word, case-insensitively; cursor is an offset."""
        if not self.search_supported:
            raise XrpcError(501)
        terms = _param(request, "q", required=True).split()
        limit = _int_param(request, "limit", default=25, low=1, high=100)
        offset = _offset_cursor(_param(request, "cursor"))
        since = _parse_since(_param(request, "since"))
        hits = [p for p in self._live_posts()
                if all(re.search(rf"(?<!\w){re.escape(t)}(?!\w)", p.text, re.IGNORECASE) for t in terms)
                and (since is None or p.sort_at >= since)]
        views = [self._post_view(p) for p in hits]
        if _param(request, "sort") == "top":
            views.sort(key=lambda v: (v["likeCount"], v["indexedAt"]), reverse=True)
        else:
            views.sort(key=lambda v: v["indexedAt"], reverse=True)
        result: dict = {"posts": views[offset:offset + limit], "hitsTotal": len(views)}
        if offset + limit < len(views):
            result["cursor"] = str(offset + limit)
        return result

    def _get_post_thread(self, request: Request, viewer: str) -> dict:
        uri = _param(request, "uri", required=True)
        anchor = self._live(uri)
        if anchor is None or anchor.collection != POST:
            raise XrpcError(400, "NotFound", f"Post not found: {uri}")
        depth = _int_param(request, "depth", default=6, low=0, high=1000)
        height = _int_param(request, "parentHeight", default=80, low=0, high=1000)
        return {"thread": self._thread_view(anchor, depth, height)}

    def _get_posts(self, request: Request, viewer: str) -> dict:
        uris = request.query.get("uris", [])
        if len(uris) > 25:
            raise XrpcError(400, message=f"array too big (maximum 25, got {len(uris)}) at $.uris")
        posts = [self._live(uri) for uri in uris]
        return {"posts": [self._post_view(p) for p in posts if p and p.collection == POST]}


# --- request parsing and record validation -----------------------------------------------


def _param(request: Request, name: str, required: bool = False) -> str | None:
    values = request.query.get(name)
    if not values:
        if required:
            raise XrpcError(400, message=f'Missing required key "{name}" at $')
        return None
    return values[-1]


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = _param(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        message = f"Expected integer value type (got {json.dumps(raw)}) at $.{name}"
        raise XrpcError(400, message=message) from None
    if value < low:
        raise XrpcError(400, message=f"integer too small (minimum {low}, got {value}) at $.{name}")
    if value > high:
        raise XrpcError(400, message=f"integer too big (maximum {high}, got {value}) at $.{name}")
    return value


def _parse_cursor(cursor: str | None) -> datetime | None:
    if cursor is None:
        return None
    try:
        return _utc(datetime.fromisoformat(cursor))
    except ValueError:
        raise XrpcError(400, message="Malformed cursor") from None


def _offset_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise XrpcError(400, message="Malformed cursor")
    return int(cursor)


def _parse_since(since: str | None) -> datetime | None:
    """``since`` may be a datetime or a bare YYYY-MM-DD date."""
    if since is None:
        return None
    try:
        return _utc(datetime.fromisoformat(since))
    except ValueError:
        raise XrpcError(400, message=f"Invalid since (got {json.dumps(since)})") from None


def _fill_page(cursor: str | None, limit: int,
               fetch: Callable[[str | None, int], tuple[list, str | None]]) -> tuple[list, str | None]:
    """The AppView's fillPage: refetch (up to 10 times) while filtering left the page short."""
    items, cursor = fetch(cursor, limit)
    for _ in range(9):
        if not cursor or len(items) >= limit:
            break
        more, next_cursor = fetch(cursor, limit - len(items))
        items += more
        cursor = None if next_cursor == cursor else next_cursor
    return items, cursor


def _validate_post(value: dict) -> None:
    """The app.bsky.feed.post lexicon checks the PDS applies before writing."""
    text = _required(value, "text", "$.record")
    if not isinstance(text, str):
        raise _invalid_record(f"Expected string value type (got {json.dumps(text)})", "$.record.text")
    size = len(text.encode())
    if size > 3000:
        raise _invalid_record(f"string too big (maximum 3000, got {size})", "$.record.text")
    graphemes = _graphemes(text)
    if graphemes > 300:
        raise _invalid_record(f"grapheme too big (maximum 300, got {graphemes})", "$.record.text")
    if "reply" in value:
        for key in ("root", "parent"):
            _validate_strong_ref(_required(value["reply"], key, "$.record.reply"), f"$.record.reply.{key}")
    embed = value.get("embed") or {}
    if embed.get("$type") == "app.bsky.embed.record":
        _validate_strong_ref(_required(embed, "record", "$.record.embed"), "$.record.embed.record")
    langs = value.get("langs") or []
    if len(langs) > 3:
        raise _invalid_record(f"array too big (maximum 3, got {len(langs)})", "$.record.langs")
    created_at = _required(value, "createdAt", "$.record")
    if _parse_datetime(created_at) is None:
        raise _invalid_record(f"Invalid datetime (got {json.dumps(created_at)})", "$.record.createdAt")


def _required(obj: object, key: str, path: str):
    if not isinstance(obj, dict):
        raise _invalid_record(f"Expected object value type (got {json.dumps(obj)})", path)
    if key not in obj:
        raise _invalid_record(f'Missing required key "{key}"', path)
    return obj[key]


def _validate_strong_ref(ref: object, path: str) -> None:
    uri = _required(ref, "uri", path)
    cid = _required(ref, "cid", path)
    if not isinstance(uri, str) or not _AT_URI.match(uri):
        raise _invalid_record(f"Invalid at-uri (got {json.dumps(uri)})", f"{path}.uri")
    if not isinstance(cid, str) or not _CID.match(cid):
        raise _invalid_record(f"Invalid CID string (got {json.dumps(cid)})", f"{path}.cid")
