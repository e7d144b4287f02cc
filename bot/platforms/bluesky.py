"""Bluesky through the `atproto` SDK: notifications and search in, threaded replies out.

Cursors: the notifications feed and each keyword search keep the newest
``indexedAt`` already read (``{"seen": iso}``). Each poll pages newest-first
until it reaches that time, so a restart neither misses nor repeats anything;
items at exactly that time are read again and dropped by the database's unique
constraint. ``updateSeen`` is sent as a courtesy (the app's unread badge), but
our own cursor is the truth, so a person reading notifications in the app
cannot make Conversant miss one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import regex
from atproto import Client, models
from atproto_client.exceptions import (
    AtProtocolError,
    BadRequestError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.request import Request

from bot import deadline, links
from bot.deadline import CALL_SECONDS, DeadlineExceeded
from bot.platforms.formats import BLUESKY
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
from bot.text import grapheme_count

log = logging.getLogger(__name__)

REASONS = ("mention", "reply", "quote")
PAGE_SIZE = 50
MAX_PAGES = 40  # 2,000 items a poll; older backlog waits for the next poll
SEEN_AFTER = timedelta(milliseconds=1)  # the AppView counts as read only what is strictly older than seenAt
OVERLAP = timedelta(minutes=10)  # how far behind the watermark each poll re-reads
HANDLE_RE = regex.compile(r"(?<![\w@])@([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+)")
CREDENTIALS_HINT = "check BLUESKY_HANDLE and BLUESKY_APP_PASSWORD (create an app password in Bluesky: Settings → Privacy and security → App passwords)"



def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_url(handle: str, uri: str) -> str:
    return f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}"


class BlueskyPlatform:
    name = "bluesky"
    label = "Bluesky"
    call_deadline = CALL_SECONDS  # one call, however the server trickles (bot/deadline.py)
    format = BLUESKY
    text_limit = BLUESKY.limit

    def __init__(self, handle: str, app_password: str, pds_url: str, *, keywords: tuple[str, ...] = (), timeout: float = 20.0):
        self.handle = handle
        self._password = app_password
        self.pds_url = pds_url
        self.keywords = keywords
        self._timeout = timeout
        self._client: Client | None = None
        self.did: str | None = None

    # -- session ---------------------------------------------------------------

    def _session(self) -> Client:
        if self._client is None:
            client = Client(base_url=self.pds_url, request=Request(timeout=self._timeout))
            profile = self._translate("log in", lambda: client.login(self.handle, self._password))
            self.did = profile.did
            self._client = client
        return self._client

    def _call(self, what: str, action):
        """Run ``action(client)``; when the server says the session expired, log in again once.

        The SDK refreshes a token only before it expires by its own clock; a
        server that answers ExpiredToken (400) anyway needs a fresh login.
        """
        try:
            return self._translate(what, lambda: action(self._session()))
        except SessionExpired:
            self._client = None
            return self._translate(what, lambda: action(self._session()))

    def _translate(self, what: str, action):
        """Run one SDK call within ``call_deadline``, turning its errors into our error tree."""
        try:
            return deadline.call(action, self.call_deadline, f"Bluesky: {what}")
        except DeadlineExceeded:
            raise Unavailable(self.name, f"Bluesky did not finish answering within {self.call_deadline:g} s while trying to {what}",
                              hint="Conversant tries again on the next poll") from None
        except RateLimitExceededError as error:
            raise RateLimited(self.name, f"Bluesky rate limit reached while trying to {what}", retry_at=error.reset_at) from None
        except UnauthorizedError as error:
            self._client = None  # log in again next time
            raise AuthFailed(self.name, f"Bluesky refused to {what} for @{self.handle}: {_detail(error)}", hint=CREDENTIALS_HINT) from None
        except BadRequestError as error:
            detail, name = _detail(error), _error_name(error)
            if name in ("ExpiredToken", "InvalidToken"):
                raise SessionExpired(self.name, detail) from None
            if name in ("NotFound", "RecordNotFound"):
                raise MentionGone(self.name, f"the Bluesky post is gone ({detail})") from None
            if name in ("AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired"):
                raise AuthFailed(self.name, f"Bluesky refused to {what} for @{self.handle}: {detail}", hint=CREDENTIALS_HINT) from None
            raise Rejected(self.name, f"Bluesky refused to {what}: {detail}") from None
        except (NetworkError, RequestErrorBase) as error:
            raise Unavailable(self.name, f"Bluesky did not answer while trying to {what}: {_detail(error)}", hint="Conversant tries again on the next poll") from None
        except AtProtocolError as error:
            raise Unavailable(self.name, f"Bluesky gave an unexpected answer while trying to {what}: {type(error).__name__}") from None

    def check_login(self) -> str:
        self._session()
        return f"@{self.handle} ({self.did}) on {self.pds_url}"

    def text_length(self, text: str) -> int:
        return grapheme_count(text)

    # -- reading ---------------------------------------------------------------

    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        self._session()  # log in first: a login failure fails the whole fetch
        result = FetchResult(mentions=[])
        seen_uris: set[str] = set()

        def keep(mention: Mention) -> None:
            if mention.external_id not in seen_uris:
                seen_uris.add(mention.external_id)
                result.mentions.append(mention)

        notifications = self._read_feed(
            "read notifications", _watermark(cursors.get("notifications"), since),
            lambda c, cursor: c.app.bsky.notification.list_notifications({"limit": PAGE_SIZE, "cursor": cursor}),
            items=lambda page: page.notifications,
        )
        for item in notifications.kept:
            if item.reason in REASONS:
                keep(self._mention(item, reason=item.reason))
        if notifications.newest:
            result.cursors["notifications"] = {"seen": iso(notifications.newest)}
            self._mark_seen(notifications.newest)

        for keyword in self.keywords:
            feed = f"search:{keyword.lower()}"
            watermark = _watermark(cursors.get(feed), since)
            try:
                found = self._read_feed(
                    f"search posts for {keyword!r}", watermark,
                    lambda c, cursor, keyword=keyword, watermark=watermark: c.app.bsky.feed.search_posts(
                        {"q": keyword, "sort": "latest", "since": iso(watermark - OVERLAP), "limit": PAGE_SIZE, "cursor": cursor}
                    ),
                    items=lambda page: page.posts,
                )
            except PlatformError as error:
                result.errors.append(error)
                continue
            for post in found.kept:
                keep(self._mention(post, reason="keyword"))
            if found.newest:
                result.cursors[feed] = {"seen": iso(found.newest)}

        self._attach_parent_texts(result.mentions)
        return result

    def _read_feed(self, what: str, watermark: datetime, fetch_page, *, items) -> "FeedPage":
        """Page newest-first until items sort before ``watermark - OVERLAP``.

        The AppView sorts by the earlier of indexedAt and the post's createdAt,
        so a post from a phone whose clock runs behind sorts below newer
        items; re-reading a few minutes behind the watermark catches it, and
        the database's unique constraint drops what was already stored.
        """
        feed = FeedPage()
        stop_before = watermark - OVERLAP
        cursor = None
        for _ in range(MAX_PAGES):
            page = self._call(what, lambda c: fetch_page(c, cursor))
            reached_old = False
            for item in items(page):
                indexed = parse_time(item.indexed_at)
                if _sort_time(item, indexed) < stop_before:
                    reached_old = True
                    break
                feed.newest = max(feed.newest or indexed, indexed)
                if indexed >= stop_before and item.author.did != self.did:
                    feed.kept.append(item)
            cursor = page.cursor
            if reached_old or not cursor or not items(page):
                return feed
        log.warning("bluesky: more than %d items to %s since the last poll; the rest come next poll", MAX_PAGES * PAGE_SIZE, what)
        return feed

    def _mark_seen(self, newest: datetime) -> None:
        try:
            self._call("mark notifications seen", lambda c: c.app.bsky.notification.update_seen({"seen_at": iso(newest + SEEN_AFTER)}))
        except PlatformError as error:
            log.info("bluesky: updateSeen failed (%s); our own cursor is unaffected", error)

    def _mention(self, item, *, reason: str) -> Mention:
        """A notification or a postView (both carry uri, cid, author, record, indexedAt) as a Mention."""
        uri, cid, author, record = item.uri, item.cid, item.author, item.record
        reply = getattr(record, "reply", None)
        root = {"uri": reply.root.uri, "cid": reply.root.cid} if reply else {"uri": uri, "cid": cid}
        parent_uri = reply.parent.uri if reply else None
        created = getattr(record, "created_at", None) or item.indexed_at
        return Mention(
            platform=self.name,
            external_id=uri,
            thread_key=root["uri"],
            thread_ref={"uri": uri, "cid": cid, "root": root, "parent_uri": parent_uri, "author_handle": author.handle},
            reason=reason,
            author_id=author.did,
            author_handle=author.handle,
            author_name=getattr(author, "display_name", None) or None,
            text=getattr(record, "text", "") or "",
            url=post_url(author.handle, uri),
            created_at=min(parse_time(created), datetime.now(timezone.utc)),
            language=_first_language(getattr(record, "langs", None)),
        )

    def mentions_from_posts(self, posts: list) -> list[Mention]:
        """Posts a stream found (``(PostEvent, reason)`` pairs) as mentions, shaped as a poll shapes them.

        The stream carries DIDs only: handles and names come from one getProfiles per 25 authors
        (the AppView knows accounts long before it has indexed a brand-new post). An author it
        cannot name keeps the DID as handle rather than holding the mention back.
        """
        profiles: dict[str, object] = {}
        dids = sorted({post.author_did for post, _ in posts})
        for start in range(0, len(dids), 25):
            try:
                page = self._call("read authors' profiles", lambda c: c.app.bsky.actor.get_profiles({"actors": dids[start:start + 25]}))
                profiles.update((profile.did, profile) for profile in page.profiles)
            except PlatformError as error:
                log.info("bluesky: could not read profiles (%s); cards show DIDs", error)
        mentions = []
        for post, reason in posts:
            record, profile = post.record, profiles.get(post.author_did)
            handle = profile.handle if profile is not None else post.author_did
            reply = record.get("reply") or {}
            root = reply.get("root") if isinstance(reply.get("root"), dict) else {"uri": post.uri, "cid": post.cid}
            parent_uri = (reply.get("parent") or {}).get("uri") if reply else None
            try:
                created = min(parse_time(record.get("createdAt") or ""), post.at)
            except ValueError:
                created = post.at
            mentions.append(Mention(
                platform=self.name, external_id=post.uri, thread_key=root["uri"],
                thread_ref={"uri": post.uri, "cid": post.cid, "root": {"uri": root["uri"], "cid": root.get("cid")},
                            "parent_uri": parent_uri, "author_handle": handle},
                reason=reason, author_id=post.author_did, author_handle=handle,
                author_name=getattr(profile, "display_name", None) or None,
                text=record.get("text") if isinstance(record.get("text"), str) else "",
                url=post_url(handle, post.uri), created_at=created, language=_first_language(record.get("langs")),
            ))
        self._attach_parent_texts(mentions)
        return mentions

    def _attach_parent_texts(self, mentions: list[Mention]) -> None:
        """Fill in the post each reply answers, so the card and the prompt can show it."""
        wanted = sorted({m.thread_ref["parent_uri"] for m in mentions if m.thread_ref.get("parent_uri")})
        texts: dict[str, str] = {}
        for start in range(0, len(wanted), 25):
            try:
                page = self._call("read parent posts", lambda c: c.get_posts(wanted[start:start + 25]))
            except PlatformError as error:
                log.info("bluesky: could not read parent posts (%s); cards show the mention alone", error)
                return
            texts.update({post.uri: getattr(post.record, "text", "") for post in page.posts})
        for index, mention in enumerate(mentions):
            parent = texts.get(mention.thread_ref.get("parent_uri") or "")
            if parent is not None:
                mentions[index] = replace(mention, parent_text=parent)

    def find_brand_reply(self, thread_ref: dict) -> PostedReply | None:
        try:
            response = self._call(
                "read the thread", lambda c: c.get_post_thread(thread_ref["uri"], depth=1, parent_height=0)
            )
            thread = response.thread
            if not hasattr(thread, "post"):  # notFoundPost or blockedPost
                raise MentionGone(self.name, "the Bluesky post was deleted or is no longer visible")
        except MentionGone:
            if _just_posted(thread_ref["uri"]) and self._record_exists(thread_ref["uri"]):
                return None  # streamed before the AppView indexed it: neither gone nor answered yet
            raise
        for reply in thread.replies or []:
            post = getattr(reply, "post", None)
            if post is not None and post.author.did == self.did:
                return PostedReply(external_id=post.uri, url=post_url(post.author.handle, post.uri))
        return None

    def _record_exists(self, uri: str) -> bool:
        """Ask the repo itself (the AppView may lag behind a stream); True when it cannot tell."""
        repo, collection, rkey = uri.removeprefix("at://").split("/", 2)
        try:
            self._call("read the post", lambda c: c.com.atproto.repo.get_record({"repo": repo, "collection": collection, "rkey": rkey}))
        except MentionGone:
            return False
        except PlatformError:
            return True
        return True

    # -- writing ---------------------------------------------------------------

    def compose_reply(self, thread_ref: dict, text: str) -> str:
        return text  # Bluesky notifies the parent's author of a reply without a mention

    def post_reply(self, thread_ref: dict, text: str, *, idempotency_key: str) -> PostedReply:
        # Bluesky has no idempotency key: the outbox's thread check guards against a double post.
        self._session()
        reply_to = models.AppBskyFeedPost.ReplyRef(
            root=models.ComAtprotoRepoStrongRef.Main(uri=thread_ref["root"]["uri"], cid=thread_ref["root"]["cid"]),
            parent=models.ComAtprotoRepoStrongRef.Main(uri=thread_ref["uri"], cid=thread_ref["cid"]),
        )
        record = models.AppBskyFeedPost.Record(
            created_at=iso(datetime.now(timezone.utc)),
            text=text,
            reply=reply_to,
            facets=self._facets(text) or None,
        )
        created = self._call("post the reply", lambda c: c.app.bsky.feed.post.create(self.did, record))
        return PostedReply(external_id=created.uri, url=post_url(self.handle, created.uri))

    def check_private(self) -> str:
        """Whether this login may use chat (the app password's "Allow access to your direct messages")."""
        def probe(client: Client):
            try:
                client.with_bsky_chat_proxy().chat.bsky.convo.list_convos(models.ChatBskyConvoListConvos.Params(limit=1))
            except BadRequestError as error:
                reason = _chat_error(error, self.handle)
                if reason:
                    raise Rejected(self.name, reason) from None
                raise
        self._call("reach Bluesky chat", probe)
        return "chat messages can be sent"

    def send_private(self, thread_ref: dict, author_id: str, author_handle: str, text: str, *, idempotency_key: str) -> PostedReply:
        """A chat message through the chat service the PDS proxies to (``atproto-proxy`` header):
        the 1-1 conversation with the author, then the message. chat.bsky takes no idempotency key."""
        def send(client: Client):
            chat = client.with_bsky_chat_proxy().chat.bsky.convo
            try:
                convo = chat.get_convo_for_members(models.ChatBskyConvoGetConvoForMembers.Params(members=[author_id])).convo
                sent = chat.send_message(models.ChatBskyConvoSendMessage.Data(
                    convo_id=convo.id, message=models.ChatBskyConvoDefs.MessageInput(text=text)))
            except BadRequestError as error:
                reason = _chat_error(error, author_handle)
                if reason:
                    raise Rejected(self.name, f"Bluesky chat refused the message: {reason}") from None
                raise
            return convo.id, sent.id
        convo_id, message_id = self._call("send the chat message", send)
        return PostedReply(external_id=f"{convo_id}/{message_id}", url=f"https://bsky.app/messages/{convo_id}")

    def find_private(self, author_id: str, text: str, since: datetime) -> PostedReply | None:
        """The brand's chat message to the author with this text, sent since ``since``: a message whose
        answer was lost can be found in the conversation (and is then never sent again)."""
        def look(client: Client):
            chat = client.with_bsky_chat_proxy().chat.bsky.convo
            convo = chat.get_convo_for_members(models.ChatBskyConvoGetConvoForMembers.Params(members=[author_id])).convo
            page = chat.get_messages(models.ChatBskyConvoGetMessages.Params(convo_id=convo.id, limit=50))
            for message in page.messages:
                if (getattr(message, "text", None) == text and message.sender.did == self.did
                        and parse_time(message.sent_at) >= since):
                    return PostedReply(external_id=f"{convo.id}/{message.id}", url=f"https://bsky.app/messages/{convo.id}")
            return None
        return self._call("look for the chat message", look)

    def _facets(self, text: str) -> list:
        """Link and mention facets with UTF-8 byte offsets, as the Bluesky app makes them."""
        facets = []
        for link in links.written_links(text):  # the very links the policy checked, by host
            if link.href and link.href.startswith(("https://", "http://")):
                facets.append(_facet(text, (link.start, link.end), models.AppBskyRichtextFacet.Link(uri=link.href)))
        for match in HANDLE_RE.finditer(text):
            handle = match.group(1).lower()
            try:
                did = self._call("resolve a handle", lambda c: c.resolve_handle(handle).did)
            except PlatformError:
                continue  # an unknown handle stays plain text, as in the app
            facets.append(_facet(text, match.span(), models.AppBskyRichtextFacet.Mention(did=did)))
        return facets


def _chat_error(error: BadRequestError, handle: str) -> str | None:
    """chat.bsky's refusals (getConvoForMembers' errors), said so a person knows what to do."""
    name = _error_name(error)
    if name == "InvalidToken" and "method" in _detail(error).lower():
        return ("the app password does not allow direct messages: create one with \"Allow access to your direct messages\" "
                "ticked (Settings → Privacy and security → App passwords) and put it in BLUESKY_APP_PASSWORD")
    return {
        "MessagesDisabled": f"@{handle} does not accept chat messages",
        "NotFollowedBySender": f"@{handle} only accepts chat messages from accounts they follow, and they do not follow the brand",
        "RecipientNotFound": f"@{handle} has no chat account",
        "BlockedActor": f"@{handle} has blocked the brand",
        "BlockedSubject": f"the brand has blocked @{handle}",
        "AccountSuspended": "the brand's chat account is suspended",
        "ConvoLocked": f"the chat with @{handle} is locked",
    }.get(name or "")


def _first_language(langs) -> str | None:
    """The post's first language tag ("en"), as its author's client set it."""
    return langs[0][:16] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None


def _facet(text: str, span: tuple[int, int], feature) -> models.AppBskyRichtextFacet.Main:
    start = len(text[: span[0]].encode("utf-8"))
    end = start + len(text[span[0]: span[1]].encode("utf-8"))
    return models.AppBskyRichtextFacet.Main(
        index=models.AppBskyRichtextFacet.ByteSlice(byte_start=start, byte_end=end), features=[feature]
    )


TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"
INDEXING_GRACE = timedelta(minutes=5)


def _just_posted(uri: str) -> bool:
    """Whether the post's record key, a TID (microseconds since the epoch), says it is minutes old."""
    rkey = uri.rsplit("/", 1)[-1]
    if len(rkey) != 13 or any(char not in TID_CHARS for char in rkey):
        return False
    value = 0
    for char in rkey:
        value = value * 32 + TID_CHARS.index(char)
    posted = datetime.fromtimestamp((value >> 10) / 1_000_000, timezone.utc)
    return datetime.now(timezone.utc) - posted < INDEXING_GRACE


@dataclass
class FeedPage:
    newest: datetime | None = None
    kept: list = field(default_factory=list)


class SessionExpired(PlatformError):
    """The server rejected our session token; logging in again fixes it."""


def _sort_time(item, indexed: datetime) -> datetime:
    created = getattr(item.record, "created_at", None)
    try:
        return min(indexed, parse_time(created)) if created else indexed
    except ValueError:
        return indexed


def _watermark(cursor: dict | None, since: datetime) -> datetime:
    return parse_time(cursor["seen"]) if cursor and cursor.get("seen") else since


def _error_name(error: RequestErrorBase) -> str | None:
    content = getattr(error.response, "content", None)
    return getattr(content, "error", None) or (content.get("error") if isinstance(content, dict) else None)


def _detail(error: Exception) -> str:
    response = getattr(error, "response", None)
    content = getattr(response, "content", None)
    message = getattr(content, "message", None) or (content.get("message") if isinstance(content, dict) else None)
    name = _error_name(error) if isinstance(error, RequestErrorBase) else None
    status = getattr(response, "status_code", None)
    parts = [str(p) for p in (status, name, message) if p]
    return " ".join(parts) or type(error).__name__
