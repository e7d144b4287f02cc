"""A fake Slack Web API that the real ``slack_sdk.WebClient`` talks to over HTTP.

Point the client at it with ``WebClient(base_url=fake.api_url, token="xoxb-test")``.
Responses follow the shapes in Slack's method docs, so code that works here
reads the same fields it will read from Slack. State (channels, messages,
views, uploads) lives in plain attributes that tests can seed and inspect.
"""
from __future__ import annotations

import base64
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .http import FakeServer, Request, Response

TEAM_ID = "T1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
WORKSPACE_URL = "https://conversant-test.slack.com/"
# Slack sends these as JSON strings inside form bodies; the fake decodes them.
JSON_ARGS = {"blocks", "attachments", "view", "files", "metadata"}
MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
# Block Kit's documented limits (docs.slack.dev/reference/block-kit), in UTF-16 code units: counting an
# emoji as two is never less than what Slack counts, so a payload this fake takes, Slack takes.
TEXT_LIMIT = 3000  # a text object, a section's text, a context element
FIELD_LIMIT, FIELDS = 2000, 10
HEADER_LIMIT = 150
CONTEXT_ELEMENTS = 10
BUTTON_TEXT, BUTTON_VALUE = 75, 2000
OPTION_TEXT, OPTION_VALUE, OPTIONS = 75, 150, 100
PLACEHOLDER_LIMIT = 150
INPUT_LABEL, INPUT_MAX = 2000, 3000
VIEW_TITLE, PRIVATE_METADATA = 24, 3000


@dataclass
class SlackCall:
    method: str
    args: dict
    token: str | None


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int | None
    times: int


class SlackError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class FakeSlack(FakeServer):
    """Slack's Web API (``/api/<method>``) plus the file upload URL it hands out."""

    def __init__(self) -> None:
        self.channels: set[str] = {"C_REVIEW", "C_DIGEST"}
        self.channels_not_joined: set[str] = set()
        self.users: dict[str, dict] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.messages: dict[tuple[str, str], dict] = {}
        self.history: dict[tuple[str, str], list[dict]] = {}
        self.ephemerals: list[dict] = []
        self.views: dict[str, dict] = {}
        self.home_views: dict[str, dict] = {}  # the App Home tab each user sees
        self.uploads: dict[str, bytes] = {}
        self.files: dict[str, dict] = {}
        self.socket_url = "ws://127.0.0.1:1/"
        self.bot_scopes = list(_SCOPES)  # what auth.test says the bot was granted: the manifest's
        self.calls: list[SlackCall] = []
        self._faults: dict[str, _Fault] = {}
        self._refusals: list[tuple[str, str, Callable[[dict], bool]]] = []  # (method, error, when)
        self._lost_answers: dict[str, int] = {}  # method -> answers still to lose after acting
        self._held: dict[str, threading.Event] = {}  # method -> released when set
        self.held_arrived = threading.Event()  # a held call has acted and waits
        self._delays: dict[str, float] = {}
        self._limits: dict[str, tuple[float, float]] = {}  # method -> (calls per second, burst)
        self._buckets: dict[tuple[str, str | None], tuple[float, float]] = {}  # (method, channel) -> (tokens, when)
        self.rate_limited: list[tuple[str, str | None]] = []  # (method, channel) of each call answered 429
        self._pending_uploads: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._ts_micros = itertools.count(int(time.time() * 10_000) * 100, 100)  # like Slack's: the time of posting
        self._state = threading.RLock()
        self._methods: dict[str, Callable[[dict, str], dict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.join": self._conversations_join,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # ---- test helpers -------------------------------------------------------

    def calls_to(self, method: str) -> list[dict]:
        with self._state:
            return [c.args for c in self.calls if c.method == method]

    def last(self, method: str) -> dict:
        calls = self.calls_to(method)
        if not calls:
            made = sorted({c.method for c in self.calls})
            raise AssertionError(f"FakeSlack: no {method} call was made (calls made: {made})")
        return calls[-1]

    def add_user(self, user_id: str, name: str, real_name: str = "", display_name: str = "") -> dict:
        """Register a user for ``users.info`` in the shape Slack returns."""
        real_name = real_name or name
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": "Europe/London",
            "is_bot": False,
            "is_admin": False,
            "profile": {"real_name": real_name, "display_name": display_name, "image_48": ""},
        }
        with self._state:
            self.users[user_id] = user
        return user

    def fail_next(
        self, method: str, error: str = "ratelimited", status: int = 200,
        retry_after: int | None = None, times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``error``.

        With ``retry_after`` the answer is HTTP 429 with a ``Retry-After`` header,
        which is how Slack rate-limits.
        """
        with self._state:
            self._faults[method] = _Fault(error, 429 if retry_after is not None else status, retry_after, times)

    def refuse(self, method: str, error: str, when: Callable[[dict], bool]) -> None:
        """Answer ``{"ok": false, "error": error}`` to every call of ``method`` whose arguments
        ``when`` picks (say, one card Slack will not take)."""
        with self._state:
            self._refusals.append((method, error, when))

    def lose_answers(self, method: str, times: int = 1) -> None:
        """Do what the next ``times`` calls of ``method`` ask, then answer HTTP 502, as a gateway
        that lost Slack's answer does: the message is stored though the caller cannot know it."""
        with self._state:
            self._lost_answers[method] = times

    def hold_answers(self, method: str) -> threading.Event:
        """Do what each call of ``method`` asks, then keep the answer until the returned event is
        set (``held_arrived`` says one is waiting): for a process killed before it hears back."""
        release = threading.Event()
        with self._state:
            self._held[method] = release
        return release

    def rate_limit(self, method: str, per_second: float | None, burst: float | None = None) -> None:
        """Limit ``method`` to ``per_second`` calls per channel, as Slack limits ``chat.postMessage``
        ("1 per second per channel, short bursts allowed"): beyond it, HTTP 429 with ``Retry-After``
        in whole seconds. ``burst`` (default: one second's worth) calls may come at once;
        ``None`` lifts the limit.
        """
        with self._state:
            if per_second is None:
                self._limits.pop(method, None)
            else:
                self._limits[method] = (per_second, max(1.0, burst if burst is not None else per_second))
            self._buckets = {k: v for k, v in self._buckets.items() if k[0] != method}

    def delay(self, method: str, seconds: float) -> None:
        """Sleep before answering ``method`` (0 turns it off), for timeout tests."""
        with self._state:
            self._delays[method] = seconds

    # ---- HTTP ---------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/upload/"):
            return self._receive_upload(request)
        if not request.path.startswith("/api/"):
            return Response(404, "not found")
        method = request.path.removeprefix("/api/")
        args = _parse_args(request)
        token = _token(request, args)
        with self._state:
            self.calls.append(SlackCall(method, args, token))
            seconds = self._delays.get(method, 0)
        if seconds:
            time.sleep(seconds)
        with self._state:
            response = self._dispatch(method, args, token)
            held = self._held.get(method)
            lost = response.status == 200 and self._lost_answers.get(method, 0) > 0
            if lost:
                self._lost_answers[method] -= 1
        if held is not None and not held.is_set():
            self.held_arrived.set()
            held.wait(30)
        return Response(502, "<html><body>502 Bad Gateway</body></html>") if lost else response

    def _dispatch(self, method: str, args: dict, token: str | None) -> Response:
        if not token or not token.startswith(("xoxb-", "xoxp-", "xapp-")):
            return _error("not_authed")
        if token == "xoxb-invalid":
            return _error("invalid_auth")
        fault = self._faults.get(method)
        if fault:
            fault.times -= 1
            if fault.times <= 0:
                del self._faults[method]
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return Response(fault.status, {"ok": False, "error": fault.error}, headers)
        refused = next((error for m, error, when in self._refusals if m == method and when(args)), None)
        if refused:
            return _error(refused)
        wait = self._over_limit(method, args.get("channel") or args.get("channel_id"))
        if wait:
            return Response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)})
        handler = self._methods.get(method)
        if handler is None:
            return _error("unknown_method", req_method=method)
        try:
            body = handler(args, token)
        except SlackError as e:
            return _error(e.error)
        headers = {"X-OAuth-Scopes": ",".join(self.bot_scopes)} if method == "auth.test" else {}
        return Response(200, {"ok": True, **body}, headers)

    def _over_limit(self, method: str, channel: str | None) -> int:
        """0 when the call is within ``rate_limit``, else the whole seconds to wait (token bucket)."""
        limit = self._limits.get(method)
        if limit is None:
            return 0
        per_second, burst = limit
        now = time.monotonic()
        tokens, then = self._buckets.get((method, channel), (burst, now))
        tokens = min(burst, tokens + (now - then) * per_second)
        if tokens >= 1:
            self._buckets[(method, channel)] = (tokens - 1, now)
            return 0
        self._buckets[(method, channel)] = (tokens, now)
        self.rate_limited.append((method, channel))
        return max(1, math.ceil((1 - tokens) / per_second))

    # ---- helpers shared by methods -----------------------------------------

    def _next_ts(self) -> str:
        micros = next(self._ts_micros)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _postable_channel(self, channel: str | None) -> str:
        if channel not in self.channels:
            raise SlackError("channel_not_found")
        if channel in self.channels_not_joined:
            raise SlackError("not_in_channel")
        return channel

    def _channel_info(self, channel: str) -> dict:
        return {
            "id": channel,
            "name": channel.lower().removeprefix("c_"),
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "is_member": channel not in self.channels_not_joined,
            "created": 1_600_000_000,
            "creator": "U_ADMIN",
        }

    def _stored_message(self, channel: str | None, ts: str | None) -> dict:
        if channel not in self.channels:
            raise SlackError("channel_not_found")
        message = self.messages.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        return message

    def _new_view(self, view: Any, view_id: str, root_view_id: str | None = None) -> dict:
        if not isinstance(view, dict) or "type" not in view:
            raise SlackError("invalid_arguments")
        _check_blocks(view.get("blocks", []), VIEW_BLOCK_LIMIT)
        if view_problems(view):
            raise SlackError("invalid_arguments")
        stored = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view["type"],
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{view_id}",
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "previous_view_id": None,
            "root_view_id": root_view_id or view_id,
            "app_id": "A1",
            "bot_id": BOT_ID,
        }
        self.views[view_id] = stored
        return stored

    # ---- methods ------------------------------------------------------------

    def _auth_test(self, args: dict, token: str) -> dict:
        is_bot = token.startswith("xoxb-")
        body = {
            "url": WORKSPACE_URL,
            "team": "Conversant Test",
            "user": "conversant" if is_bot else "admin",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID if is_bot else "U_ADMIN",
            "is_enterprise_install": False,
        }
        return {**body, "bot_id": BOT_ID} if is_bot else body

    def _chat_post_message(self, args: dict, token: str) -> dict:
        channel = self._postable_channel(args.get("channel"))
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise SlackError("no_text")
        _check_blocks(args.get("blocks"), MESSAGE_BLOCK_LIMIT)
        ts = self._next_ts()
        message = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "text": args.get("text", ""),
            "blocks": args.get("blocks"),
            "thread_ts": args.get("thread_ts"),
            "metadata": _metadata(args.get("metadata")),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
        }
        self.messages[(channel, ts)] = message
        self.history[(channel, ts)] = [dict(message)]
        return {"channel": channel, "ts": ts, "message": _as_returned(message)}

    def _chat_update(self, args: dict, token: str) -> dict:
        message = self._stored_message(args.get("channel"), args.get("ts"))
        # As documented: omitted text/blocks keep their previous value.
        for field in ("text", "blocks", "attachments"):
            if field in args:
                message[field] = args[field]
        if "metadata" in args:
            message["metadata"] = _metadata(args["metadata"])
        _check_blocks(message.get("blocks"), MESSAGE_BLOCK_LIMIT)
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        self.history[(message["channel"], message["ts"])].append(dict(message))
        return {
            "channel": message["channel"],
            "ts": message["ts"],
            "text": message["text"],
            "message": _as_returned(message),
        }

    def _chat_post_ephemeral(self, args: dict, token: str) -> dict:
        channel = self._postable_channel(args.get("channel"))
        if not args.get("user"):
            raise SlackError("invalid_arguments")
        message_ts = self._next_ts()
        self.ephemerals.append({
            "channel": channel,
            "user": args["user"],
            "text": args.get("text", ""),
            "blocks": args.get("blocks"),
            "message_ts": message_ts,
        })
        return {"message_ts": message_ts}

    def _chat_get_permalink(self, args: dict, token: str) -> dict:
        message = self._stored_message(args.get("channel"), args.get("message_ts"))
        ts = message["ts"].replace(".", "")
        return {"channel": message["channel"], "permalink": f"{WORKSPACE_URL}archives/{message['channel']}/p{ts}"}

    def _views_open(self, args: dict, token: str) -> dict:
        _check_trigger(args.get("trigger_id"))
        return {"view": self._new_view(args.get("view"), self._next_id("V"))}

    def _views_push(self, args: dict, token: str) -> dict:
        _check_trigger(args.get("trigger_id"))
        return {"view": self._new_view(args.get("view"), self._next_id("V"))}

    def _views_update(self, args: dict, token: str) -> dict:
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            matches = [v["id"] for v in self.views.values() if v["external_id"] == args["external_id"]]
            view_id = matches[-1] if matches else None
        current = self.views.get(view_id)
        if current is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        return {"view": self._new_view(args.get("view"), view_id, current["root_view_id"])}

    def _views_publish(self, args: dict, token: str) -> dict:
        """The App Home tab: one view per user, which must be of type ``home``."""
        view, user = args.get("view"), args.get("user_id")
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            raise SlackError("invalid_arguments")
        stored = self._new_view(view, self._next_id("V"))
        self.home_views[user] = stored
        return {"view": stored}

    def _conversations_info(self, args: dict, token: str) -> dict:
        channel = args.get("channel")
        if channel not in self.channels:
            raise SlackError("channel_not_found")
        return {"channel": self._channel_info(channel)}

    def _conversations_history(self, args: dict, token: str) -> dict:
        """The channel's messages, newest first, without thread replies; metadata only with
        ``include_all_metadata``; ``oldest``/``latest`` bounds; cursor pagination."""
        channel = self._readable_channel(args.get("channel"))
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or math.inf)
        inclusive = _true(args.get("inclusive"))
        found = [m for (c, ts), m in self.messages.items()
                 if c == channel and m.get("thread_ts") in (None, ts)
                 and (oldest <= float(ts) if inclusive else oldest < float(ts))
                 and (float(ts) <= latest if inclusive else float(ts) < latest)]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return self._page(found, args, most=999)

    def _conversations_replies(self, args: dict, token: str) -> dict:
        """A thread: its parent, then its replies oldest first (those after ``oldest``), paginated."""
        channel = self._readable_channel(args.get("channel"))
        parent = self.messages.get((channel, args.get("ts")))
        if parent is None:
            raise SlackError("thread_not_found")
        oldest = float(args.get("oldest") or 0)
        replies = sorted((m for (c, ts), m in self.messages.items()
                          if c == channel and m.get("thread_ts") == parent["ts"] and ts != parent["ts"] and float(ts) > oldest),
                         key=lambda m: float(m["ts"]))
        return self._page([parent, *replies], args, most=1000)

    def _readable_channel(self, channel: str | None) -> str:
        if "channels:history" not in self.bot_scopes:
            raise SlackError("missing_scope")
        return self._postable_channel(channel)

    def _page(self, messages: list[dict], args: dict, *, most: int) -> dict:
        """One page of ``messages`` as Slack pages them: ``limit``, an opaque ``cursor``, and
        ``response_metadata.next_cursor`` (empty on the last page)."""
        start = int(base64.b64decode(args["cursor"]).decode().removeprefix("next_ts:")) if args.get("cursor") else 0
        limit = min(int(args.get("limit") or 100), most)
        page = messages[start:start + limit]
        more = start + limit < len(messages)
        metadata = _true(args.get("include_all_metadata"))
        shown = [{k: v for k, v in _as_returned(m).items() if metadata or k != "metadata"} for m in page]
        cursor = base64.b64encode(f"next_ts:{start + limit}".encode()).decode() if more else ""
        return {"messages": shown, "has_more": more, "pin_count": 0, "response_metadata": {"next_cursor": cursor}}

    def _conversations_join(self, args: dict, token: str) -> dict:
        channel = args.get("channel")
        if channel not in self.channels:
            raise SlackError("channel_not_found")
        already = channel not in self.channels_not_joined
        self.channels_not_joined.discard(channel)
        body = {"channel": self._channel_info(channel)}
        return {**body, "warning": "already_in_channel"} if already else body

    def _users_info(self, args: dict, token: str) -> dict:
        user = self.users.get(args.get("user"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def _usergroups_users_list(self, args: dict, token: str) -> dict:
        users = self.usergroups.get(args.get("usergroup"))
        if users is None:
            raise SlackError("no_such_subteam")
        return {"users": list(users)}

    def _files_get_upload_url(self, args: dict, token: str) -> dict:
        if not args.get("filename") or not args.get("length"):
            raise SlackError("invalid_arguments")
        file_id = self._next_id("F")
        self._pending_uploads[file_id] = {"filename": args["filename"], "length": int(args["length"])}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _receive_upload(self, request: Request) -> Response:
        file_id = request.path.removeprefix("/upload/")
        with self._state:
            if request.method != "POST" or file_id not in self._pending_uploads:
                return Response(404, "not found")
            self.uploads[file_id] = request.body
        return Response(200, f"OK - {len(request.body)}")

    def _files_complete_upload(self, args: dict, token: str) -> dict:
        entries = args.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        channel_id = args.get("channel_id")
        if channel_id:
            self._postable_channel(channel_id)
        completed = []
        for entry in entries:
            file_id = entry.get("id")
            if file_id not in self.uploads:
                raise SlackError("file_not_found")
            name = self._pending_uploads[file_id]["filename"]
            completed.append({
                "id": file_id,
                "name": name,
                "title": entry.get("title") or name,
                "size": len(self.uploads[file_id]),
                "channel_id": channel_id,
                "initial_comment": args.get("initial_comment"),
                "thread_ts": args.get("thread_ts"),
                "permalink": f"{WORKSPACE_URL}files/{BOT_USER_ID}/{file_id}/{name}",
            })
        for f in completed:
            self.files[f["id"]] = f
        returned = ("id", "name", "title", "size", "permalink")
        return {"files": [{k: f[k] for k in returned} for f in completed]}

    def _apps_connections_open(self, args: dict, token: str) -> dict:
        if not token.startswith("xapp-"):
            raise SlackError("not_allowed_token_type")
        return {"url": self.socket_url}


_SCOPES = ("chat:write", "commands", "channels:read", "groups:read", "channels:history", "groups:history",
           "usergroups:read", "files:write")


def _metadata(value: Any) -> dict | None:
    """Message metadata as chat.postMessage takes it: an event_type and an event_payload object."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event_type"), str) or not isinstance(value.get("event_payload"), dict):
        raise SlackError("invalid_metadata_format")
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}


def _true(value: Any) -> bool:
    """A boolean argument as slack_sdk sends it (1/0) or as people write it (true/false)."""
    return str(value).lower() in ("1", "true")


def _error(error: str, **extra: Any) -> Response:
    return Response(200, {"ok": False, "error": error, **extra})


def _parse_args(request: Request) -> dict:
    """Merge query string and body (JSON or form), decoding JSON-string fields."""
    args: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
    if request.headers.get("content-type", "").startswith("application/json"):
        args.update(request.json())
    else:
        args.update(request.form())
    for key in JSON_ARGS & args.keys():
        value = args[key]
        if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            args[key] = json.loads(value)
    return args


def _token(request: Request, args: dict) -> str | None:
    """The bearer token from the header, else the ``token`` argument (Slack accepts both)."""
    param = args.pop("token", None)
    auth = request.headers.get("authorization", "")
    return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else param


def _check_blocks(blocks: Any, limit: int) -> None:
    if blocks is None:
        return
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise SlackError("invalid_blocks")
    if not all(isinstance(b, dict) and "type" in b for b in blocks):
        raise SlackError("invalid_blocks")
    if block_problems(blocks, limit):
        raise SlackError("invalid_blocks")


def _units(text: Any) -> int:
    return len(str(text).encode("utf-16-le")) // 2


def _text_problems(where: str, obj: Any, limit: int) -> list[str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"]:
        return [f"{where}: no text"]
    n = _units(obj["text"])
    return [f"{where}: text of {n} > {limit}"] if n > limit else []


def _element_problems(where: str, e: dict) -> list[str]:
    found: list[str] = []
    kind = e.get("type")
    if kind == "button":
        found += _text_problems(f"{where} button", e.get("text"), BUTTON_TEXT)
        if _units(e.get("value", "")) > BUTTON_VALUE:
            found.append(f"{where} button: value of {_units(e['value'])} > {BUTTON_VALUE}")
    if kind in ("static_select", "radio_buttons", "checkboxes", "overflow"):
        options = e.get("options") or []
        if len(options) > OPTIONS:
            found.append(f"{where}: {len(options)} options > {OPTIONS}")
        for o in options:
            found += _text_problems(f"{where} option", o.get("text"), OPTION_TEXT)
            if _units(o.get("value", "")) > OPTION_VALUE:
                found.append(f"{where} option: value of {_units(o['value'])} > {OPTION_VALUE}")
    if "placeholder" in e:
        found += _text_problems(f"{where} placeholder", e["placeholder"], PLACEHOLDER_LIMIT)
    if kind == "plain_text_input":
        most = e.get("max_length", INPUT_MAX)
        if most > INPUT_MAX:
            found.append(f"{where}: max_length {most} > {INPUT_MAX}")
        if _units(e.get("initial_value", "")) > min(most, INPUT_MAX):
            found.append(f"{where}: initial_value of {_units(e['initial_value'])} > max_length {most}")
    return found


def block_problems(blocks: list[dict], limit: int = MESSAGE_BLOCK_LIMIT) -> list[str]:
    """Every Block Kit limit these blocks break, as Slack would refuse them (``invalid_blocks``)."""
    found = [f"{len(blocks)} blocks > {limit}"] if len(blocks) > limit else []
    for i, b in enumerate(blocks):
        where = f"block {i} ({b.get('type')})"
        if b["type"] == "section":
            if "text" in b:
                found += _text_problems(where, b["text"], TEXT_LIMIT)
            fields = b.get("fields") or []
            if len(fields) > FIELDS:
                found.append(f"{where}: {len(fields)} fields > {FIELDS}")
            for f in fields:
                found += _text_problems(f"{where} field", f, FIELD_LIMIT)
            if "accessory" in b:
                found += _element_problems(where, b["accessory"])
        elif b["type"] == "header":
            found += _text_problems(where, b.get("text"), HEADER_LIMIT)
        elif b["type"] == "context":
            elements = b.get("elements") or []
            if len(elements) > CONTEXT_ELEMENTS:
                found.append(f"{where}: {len(elements)} elements > {CONTEXT_ELEMENTS}")
            for e in elements:
                if e.get("type") in ("mrkdwn", "plain_text"):
                    found += _text_problems(where, e, TEXT_LIMIT)
        elif b["type"] == "actions":
            for e in b.get("elements") or []:
                found += _element_problems(where, e)
        elif b["type"] == "input":
            found += _text_problems(f"{where} label", b.get("label"), INPUT_LABEL)
            found += _element_problems(where, b.get("element") or {})
    return found


def view_problems(view: dict) -> list[str]:
    """A modal's or Home tab's limits: its blocks, its title and buttons (24), its private_metadata."""
    found = block_problems(view.get("blocks", []), VIEW_BLOCK_LIMIT)
    for key in ("title", "submit", "close"):
        if view.get(key) is not None:
            found += _text_problems(f"view {key}", view[key], VIEW_TITLE)
    if _units(view.get("private_metadata", "")) > PRIVATE_METADATA:
        found.append(f"view private_metadata > {PRIVATE_METADATA}")
    return found


def _check_trigger(trigger_id: str | None) -> None:
    if not trigger_id:
        raise SlackError("invalid_arguments")
    if trigger_id == "expired":
        raise SlackError("expired_trigger_id")


def _as_returned(message: dict) -> dict:
    """A stored message as Slack returns it: no channel key, no empty fields."""
    return {k: v for k, v in message.items() if k != "channel" and v is not None}
