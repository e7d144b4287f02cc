"""The Bluesky adapter through the atproto SDK against the fake PDS (the real one: tests/integration)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.platforms.base import AuthFailed, MentionGone, RateLimited, Rejected
from bot.platforms.bluesky import BlueskyPlatform, grapheme_count

LONG_AGO = datetime.now(timezone.utc) - timedelta(days=1)


@pytest.fixture
def adapter(bluesky):
    return BlueskyPlatform("brand.test", "brand-app-password", bluesky.base_url, keywords=("brandco",))


def fetch(adapter, cursors=None, since=LONG_AGO):
    result = adapter.fetch_mentions(cursors or {}, since)
    return result, {m.external_id: m for m in result.mentions}


def test_mentions_replies_and_quotes_become_mentions_with_thread_refs(adapter, bluesky):
    brand_post = bluesky.post("brand.test", "We shipped dark mode!")
    mention = bluesky.post("alice.test", "@brand.test love it")
    reply = bluesky.post("bob.test", "finally, thank you", reply_to=brand_post)
    quote = bluesky.post("alice.test", "this is great", quote=brand_post)
    bluesky.like("bob.test", brand_post)
    bluesky.follow("alice.test", "brand.test")

    result, found = fetch(adapter)

    assert set(found) == {mention, reply, quote}  # likes and follows are not conversations
    assert found[mention].reason == "mention" and found[mention].author_name == "Alice"
    assert found[mention].thread_ref["root"]["uri"] == mention
    assert found[reply].reason == "reply" and found[reply].parent_text == "We shipped dark mode!"
    assert found[reply].thread_ref["root"]["uri"] == brand_post and found[reply].thread_key == brand_post
    assert found[quote].reason == "quote"
    assert found[mention].url == f"https://bsky.app/profile/alice.test/post/{mention.rsplit('/', 1)[1]}"
    assert bluesky.accounts["brand.test"].seen_at is not None  # updateSeen keeps the app's badge honest


def test_a_restart_neither_misses_nor_repeats(adapter, bluesky):
    first = bluesky.post("alice.test", "@brand.test one")
    result, found = fetch(adapter)
    assert set(found) == {first}
    saved = result.cursors

    second = bluesky.post("bob.test", "@brand.test two")
    restarted = BlueskyPlatform("brand.test", "brand-app-password", bluesky.base_url)
    _, found = fetch(restarted, saved)
    # the overlap window re-reads recent items; the database's unique constraint drops them
    assert second in found and set(found) <= {first, second}


def test_the_first_run_only_reaches_back_to_the_window(adapter, bluesky):
    bluesky.post("alice.test", "@brand.test ancient", created_at=datetime.now(timezone.utc) - timedelta(days=3))
    recent = bluesky.post("bob.test", "@brand.test fresh")
    _, found = fetch(adapter, since=datetime.now(timezone.utc) - timedelta(hours=6))
    assert set(found) == {recent}


def test_a_backlog_is_paged_through(adapter, bluesky):
    uris = {bluesky.post("alice.test", f"@brand.test number {i}") for i in range(120)}
    _, found = fetch(adapter)
    assert set(found) == uris
    assert len(bluesky.requests_to("/xrpc/app.bsky.notification.listNotifications")) >= 3


def test_keyword_search_finds_posts_that_do_not_tag_the_brand_and_skips_our_own(adapter, bluesky):
    untagged = bluesky.post("bob.test", "anyone tried BrandCo for note taking?")
    bluesky.post("brand.test", "BrandCo 2.0 is out")
    _, found = fetch(adapter)
    assert set(found) == {untagged} and found[untagged].reason == "keyword"


def test_search_failing_does_not_stop_mentions(adapter, bluesky):
    bluesky.search_supported = False
    mention = bluesky.post("alice.test", "@brand.test hi")
    result, found = fetch(adapter)
    assert set(found) == {mention}
    assert len(result.errors) == 1 and "search" in str(result.errors[0])
    assert "search:brandco" not in result.cursors  # read again next time


def test_an_expired_session_logs_in_again(adapter, bluesky):
    fetch(adapter)
    bluesky.expire_tokens()
    mention = bluesky.post("alice.test", "@brand.test still there?")
    _, found = fetch(adapter)
    assert mention in found


def test_reply_has_root_parent_and_facets_with_byte_offsets(adapter, bluesky):
    root = bluesky.post("bob.test", "Thread start")
    mention = bluesky.post("alice.test", "@brand.test deep reply", reply_to=bluesky.post("bob.test", "middle", reply_to=root))
    _, found = fetch(adapter)
    text = "Merci 🙏 日本語 — see https://brand.example/help?x=1 and ask @alice.test!"

    posted = adapter.post_reply(found[mention].thread_ref, text, idempotency_key="k")

    record = bluesky.get(posted.external_id).value
    assert record["reply"]["root"]["uri"] == root and record["reply"]["parent"]["uri"] == mention
    encoded = text.encode("utf-8")
    link, tag = sorted(record["facets"], key=lambda f: f["index"]["byteStart"])
    assert encoded[link["index"]["byteStart"]:link["index"]["byteEnd"]] == b"https://brand.example/help?x=1"
    assert link["features"][0]["uri"] == "https://brand.example/help?x=1"
    assert encoded[tag["index"]["byteStart"]:tag["index"]["byteEnd"]] == b"@alice.test"
    assert tag["features"][0]["did"] == bluesky.accounts["alice.test"].did
    assert "langs" not in record  # we do not claim a language we did not detect


def test_grapheme_count_matches_the_300_limit(adapter, bluesky):
    mention = bluesky.post("alice.test", "@brand.test hi")
    _, found = fetch(adapter)
    at_limit = "👩‍👩‍👧" * 100 + "日本" * 100
    assert grapheme_count(at_limit) == 300 and adapter.text_length(at_limit) == 300
    adapter.post_reply(found[mention].thread_ref, at_limit, idempotency_key="a")
    with pytest.raises(Rejected):
        adapter.post_reply(found[mention].thread_ref, at_limit + "!", idempotency_key="b")


def test_find_brand_reply_and_deleted_posts(adapter, bluesky):
    mention = bluesky.post("alice.test", "@brand.test hello")
    _, found = fetch(adapter)
    ref = found[mention].thread_ref
    assert adapter.find_brand_reply(ref) is None
    answer = bluesky.post("brand.test", "hi Alice", reply_to=mention)
    assert adapter.find_brand_reply(ref).external_id == answer

    bluesky.delete(mention)
    with pytest.raises(MentionGone):
        adapter.find_brand_reply(ref)


def test_errors_map_to_what_the_caller_should_do(adapter, bluesky):
    bluesky.fail_next("com.atproto.server.createSession", status=401, error="AuthenticationRequired", message="Invalid identifier or password")
    with pytest.raises(AuthFailed, match="BLUESKY_APP_PASSWORD"):
        adapter.check_login()
    assert "@brand.test" in adapter.check_login()

    bluesky.fail_next("app.bsky.notification.listNotifications", status=429, headers={"ratelimit-reset": "4102444800"})
    with pytest.raises(RateLimited) as limited:
        fetch(adapter)
    assert limited.value.retry_at.year == 2100
