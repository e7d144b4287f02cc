"""The fake PDS, driven only through the real atproto SDK over HTTP."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from atproto import Client, models
from atproto_client.exceptions import (
    BadRequestError,
    RateLimitExceededError,
    RequestException,
    UnauthorizedError,
)

from tests.fakes.bluesky_pds import FakeBluesky

BRAND = "brand.test"


@pytest.fixture
def fake():
    with FakeBluesky() as server:
        server.add_account(BRAND, password="brand-pw", display_name="Brand")
        server.add_account("alice.test", display_name="Alice")
        server.add_account("bob.test")
        yield server


def login(fake: FakeBluesky, handle: str = BRAND, password: str = "brand-pw") -> Client:
    client = Client(base_url=fake.base_url)
    client.login(handle, password)
    return client


@pytest.fixture
def brand(fake) -> Client:
    return login(fake)


def notifications(client: Client, **params):
    return client.app.bsky.notification.list_notifications(params=params).notifications


def strong_ref(fake: FakeBluesky, uri: str) -> models.ComAtprotoRepoStrongRef.Main:
    return models.ComAtprotoRepoStrongRef.Main(uri=uri, cid=fake.get(uri).cid)


def error_of(excinfo) -> tuple[int, str, str]:
    response = excinfo.value.response
    return response.status_code, response.content.error, response.content.message


def test_login_uses_the_fake_and_fetches_the_profile(fake, brand):
    assert brand.me.handle == BRAND and brand.me.display_name == "Brand"
    assert fake.requests_to("/xrpc/app.bsky.actor.getProfile")  # no didDoc: SDK stays on the fake
    with pytest.raises(UnauthorizedError) as excinfo:
        login(fake, password="wrong")
    assert error_of(excinfo) == (401, "AuthenticationRequired", "Invalid identifier or password")


def test_mention_carries_utf8_byte_offsets(fake, brand):
    text = "héllo 日本 @brand.test, look https://example.com/x."
    fake.post("alice.test", text)

    [notification] = notifications(brand)
    assert notification.reason == "mention" and notification.reason_subject is None
    mention, link = notification.record.facets
    raw = text.encode()
    assert raw[mention.index.byte_start:mention.index.byte_end] == b"@brand.test"
    assert mention.features[0].did == brand.me.did
    assert raw[link.index.byte_start:link.index.byte_end] == b"https://example.com/x"


def test_reply_quote_like_and_follow_reasons(fake, brand):
    original = fake.post(BRAND, "our launch")
    reply = fake.post("alice.test", "congrats", reply_to=original)
    quote = fake.post("bob.test", "look at this", quote=original)
    like = fake.like("alice.test", original)
    follow = fake.follow("bob.test", BRAND)
    fake.like(BRAND, original)  # no self-notifications

    seen = {n.uri: (n.reason, n.reason_subject) for n in notifications(brand)}
    assert seen == {reply: ("reply", original), quote: ("quote", original),
                    like: ("like", original), follow: ("follow", None)}


def test_reply_that_mentions_the_parent_author_is_one_mention(fake, brand):
    original = fake.post(BRAND, "our launch")
    fake.post("alice.test", "@brand.test congrats", reply_to=original)
    assert [n.reason for n in notifications(brand)] == ["mention"]


def test_cursor_pages_through_a_backlog_exactly_once(fake, brand):
    posted = {fake.post("alice.test", f"@brand.test question {i}") for i in range(120)}

    seen, cursor, pages = [], None, []
    while True:
        page = brand.app.bsky.notification.list_notifications(
            params={"limit": 50, "cursor": cursor})
        seen += [n.uri for n in page.notifications]
        pages.append(len(page.notifications))
        cursor = page.cursor
        if not cursor:
            break
    assert pages == [50, 50, 20]
    assert len(seen) == len(set(seen)) and set(seen) == posted


def test_update_seen_marks_notifications_read(fake, brand):
    fake.post("alice.test", "@brand.test one")
    fake.post("alice.test", "@brand.test two")
    # Never seen: the AppView marks only the newest unread.
    assert [n.is_read for n in notifications(brand)] == [False, True]

    # just after the newest read: isRead means seenAt is strictly later
    seen = datetime.fromisoformat(notifications(brand)[0].indexed_at.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    brand.app.bsky.notification.update_seen(models.AppBskyNotificationUpdateSeen.Data(seen_at=seen.isoformat()))
    fake.post("alice.test", "@brand.test three")

    assert [n.is_read for n in notifications(brand)] == [False, True, True]
    assert brand.app.bsky.notification.get_unread_count().count == 1


def test_send_post_reply_is_threaded_under_the_root(fake, brand):
    root = fake.post("alice.test", "my kettle broke")
    question = fake.post("alice.test", "@brand.test can you help?", reply_to=root)

    sent = brand.send_post("Sorry! DM us.", reply_to=models.AppBskyFeedPost.ReplyRef(
        root=strong_ref(fake, root), parent=strong_ref(fake, question)))

    thread = brand.get_post_thread(root).thread
    assert thread.replies[0].post.uri == question
    assert thread.replies[0].replies[0].post.uri == sent.uri
    assert [p.uri for p in fake.created(BRAND)] == [sent.uri]
    alice = login(fake, "alice.test", "pw")
    assert [(n.reason, n.reason_subject) for n in notifications(alice)] == [("reply", question)]


def test_reply_naming_the_wrong_root_is_left_out_of_the_thread(fake, brand):
    root = fake.post("alice.test", "my kettle broke")
    question = fake.post("alice.test", "@brand.test help?", reply_to=root)
    ref = strong_ref(fake, question)

    brand.send_post("Sorry!", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))

    assert brand.get_post_thread(root).thread.replies[0].replies == []


def test_text_limit_is_300_graphemes_and_3000_bytes(fake, brand):
    accepted = "👍🏽" * 100 + "日" * 200
    brand.send_post(accepted)

    with pytest.raises(BadRequestError) as excinfo:
        brand.send_post(accepted + "a")
    assert error_of(excinfo) == (400, "InvalidRequest", "Invalid app.bsky.feed.post record: "
                                 "grapheme too big (maximum 300, got 301) at $.record.text")

    with pytest.raises(BadRequestError) as excinfo:
        brand.send_post("👨‍👩‍👧‍👦" * 300)  # 300 graphemes, 7500 bytes
    assert "string too big (maximum 3000, got 7500)" in error_of(excinfo)[2]


def test_reply_ref_needs_uri_and_cid(fake, brand):
    parent = fake.post("alice.test", "@brand.test hi")
    record = {"$type": "app.bsky.feed.post", "text": "hello", "createdAt": brand.get_current_time_iso(),
              "reply": {"root": {"uri": parent}, "parent": {"uri": parent}}}

    with pytest.raises(BadRequestError) as excinfo:
        brand.com.atproto.repo.create_record(
            models.ComAtprotoRepoCreateRecord.Data(repo=BRAND, collection="app.bsky.feed.post",
                                                   record=record))
    assert error_of(excinfo)[2].endswith('Missing required key "cid" at $.record.reply.root')


def test_search_finds_posts_without_a_mention(fake, brand):
    wanted = fake.post("alice.test", "Loving my new Brand kettle")
    fake.post("bob.test", "branding is hard")

    found = brand.app.bsky.feed.search_posts(params={"q": "brand", "sort": "latest"})
    assert [p.uri for p in found.posts] == [wanted]

    fake.search_supported = False
    with pytest.raises(RequestException) as excinfo:
        brand.app.bsky.feed.search_posts(params={"q": "brand"})
    assert error_of(excinfo)[:2] == (501, "MethodNotImplemented")


def test_deleted_post_is_not_found(fake, brand):
    question = fake.post("alice.test", "@brand.test help?")
    answer = fake.post(BRAND, "on it", reply_to=question)
    fake.delete(question)

    parent = brand.get_post_thread(answer).thread.parent
    assert parent.not_found and parent.uri == question
    with pytest.raises(BadRequestError) as excinfo:
        brand.get_post_thread(question)
    assert error_of(excinfo) == (400, "NotFound", f"Post not found: {question}")
    assert brand.get_posts([question, answer]).posts[0].uri == answer
    assert notifications(brand) == []  # the mention went with the post


def test_expired_token_is_400_and_the_sdk_does_not_refresh_on_it(fake, brand):
    fake.expire_tokens()
    with pytest.raises(BadRequestError) as excinfo:
        notifications(brand)
    assert error_of(excinfo) == (400, "ExpiredToken", "Token has expired")


def test_sdk_refreshes_a_token_near_its_exp_before_calling():
    with FakeBluesky(access_token_ttl=timedelta(minutes=10)) as fake:
        fake.add_account(BRAND, password="brand-pw")
        brand = login(fake)
        fake.expire_tokens()

        assert notifications(brand) == []
        assert fake.requests_to("/xrpc/com.atproto.server.refreshSession")


def test_injected_rate_limit_then_recovery(fake, brand):
    reset = int((datetime.now(timezone.utc) + timedelta(seconds=30)).timestamp())
    fake.fail_next("app.bsky.notification.listNotifications", status=429,
                   headers={"ratelimit-reset": str(reset)})

    with pytest.raises(RateLimitExceededError) as excinfo:
        notifications(brand)
    assert error_of(excinfo) == (429, "RateLimitExceeded", "Rate Limit Exceeded")
    assert excinfo.value.response.headers["ratelimit-reset"] == str(reset)
    assert notifications(brand) == []
