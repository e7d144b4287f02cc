"""The X adapter through the real tweepy.Client, against FakeX over HTTP."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from bot import decision, flows
from bot.models import Conversation, State
from bot.pipeline import poll_once
from bot.platforms.base import AuthFailed, MentionGone, PlatformError, RateLimited, Rejected, Unavailable
from bot.platforms.x import XPlatform
from bot.platforms.x_text import weighted_length
from tests.conftest import triage
from tests.fakes.x_api import CLIENT_FORBIDDEN, CREDITS_DEPLETED, OAUTH1_PERMISSIONS, FakeX

MENTIONS = "/2/users/:id/mentions"
SEARCH = "/2/tweets/search/recent"
POST = "/2/tweets"


@pytest.fixture
def x():
    with FakeX() as fake:
        fake.add_user("brand", "Brand")
        fake.add_user("alice", "Alice")
        fake.add_user("bob", "Bob")
        yield fake


def brand_adapter(fake: FakeX, *, keywords=(), bearer=False, api_secret=None, timeout=5.0, base_url=None) -> XPlatform:
    brand = fake.user("brand")
    return XPlatform(
        api_key=fake.consumer_key,
        api_secret=api_secret or fake.consumer_secret,
        access_token=brand.access_token,
        access_token_secret=brand.access_token_secret,
        bearer_token=fake.bearer_token if bearer else None,
        keywords=keywords,
        api_base_url=base_url or fake.base_url,
        timeout=timeout,
    )


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=6)


def mentions_path(fake: FakeX) -> str:
    return f"/2/users/{fake.user('brand').id}/mentions"


def secrets_of(fake: FakeX) -> list[str]:
    brand = fake.user("brand")
    return [fake.consumer_secret, fake.bearer_token, brand.access_token, brand.access_token_secret]


def assert_no_secret(error: PlatformError, fake: FakeX) -> None:
    assert not any(secret in str(error) for secret in secrets_of(fake))


# --- reading ---------------------------------------------------------------------------------


def test_mentions_come_with_author_text_link_and_thread(x):
    announcement = x.tweet("brand", "Dark mode is here!")
    reply = x.tweet("alice", "Love it, but sync got slow", reply_to=announcement)
    quote = x.tweet("alice", "@brand finally!", quote=announcement)
    mention = x.tweet("bob", "@brand my export keeps failing")
    adapter = brand_adapter(x)

    result = adapter.fetch_mentions({}, since())

    by_id = {m.external_id: m for m in result.mentions}
    assert set(by_id) == {reply, quote, mention}
    bob = by_id[mention]
    assert (bob.platform, bob.reason, bob.author_handle, bob.author_name) == ("x", "mention", "bob", "Bob")
    assert bob.author_id == x.user("bob").id
    assert bob.text == "@brand my export keeps failing"
    assert bob.url == f"https://x.com/bob/status/{mention}"
    assert bob.thread_key == mention and bob.thread_ref == {"tweet_id": mention}
    assert abs(bob.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    alice = by_id[reply]
    assert alice.reason == "reply" and alice.thread_key == announcement
    assert alice.parent_text == "Dark mode is here!"
    assert by_id[quote].reason == "quote"
    assert result.cursors == {"mentions": {"since_id": mention}} and result.errors == []

    [request] = x.requests_to(mentions_path(x))
    assert request.headers["authorization"].startswith("OAuth ")  # user context: billed as an Owned Read
    assert set(request.query["tweet.fields"][0].split(",")) >= {
        "author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets"}
    assert request.query["max_results"] == ["100"]


def test_a_long_post_arrives_whole(x):
    story = "@brand " + "I have been a loyal user for years, and the last update broke my workflow. " * 6
    x.tweet("alice", story)

    [mention] = brand_adapter(x).fetch_mentions({}, since()).mentions

    assert len(story) > 400 and mention.text == story


def test_first_run_reads_only_posts_newer_than_since(x):
    x.tweet("alice", "@brand from last week", created_at=datetime.now(timezone.utc) - timedelta(days=2))
    fresh = x.tweet("alice", "@brand from just now")

    result = brand_adapter(x).fetch_mentions({}, since())

    assert [m.external_id for m in result.mentions] == [fresh]
    [request] = x.requests_to(mentions_path(x))
    assert "start_time" in request.query and "since_id" not in request.query


def test_cursor_resumes_after_a_restart_without_repeats(x):
    x.tweet("alice", "@brand first")
    saved = brand_adapter(x).fetch_mentions({}, since()).cursors

    restarted = brand_adapter(x)
    assert restarted.fetch_mentions(saved, since()).mentions == []
    newer = x.tweet("bob", "@brand second")
    result = restarted.fetch_mentions(saved, since())

    assert [m.external_id for m in result.mentions] == [newer]
    assert result.cursors == {"mentions": {"since_id": newer}}
    last = x.requests_to(mentions_path(x))[-1]
    assert last.query["since_id"] == [saved["mentions"]["since_id"]] and "start_time" not in last.query


def test_a_backlog_is_read_page_by_page(x):
    posted = [x.tweet("alice" if n % 2 else "bob", f"@brand question number {n}") for n in range(230)]

    result = brand_adapter(x).fetch_mentions({}, since())

    assert sorted(m.external_id for m in result.mentions) == sorted(posted)
    pages = x.requests_to(mentions_path(x))
    assert len(pages) == 3
    assert "pagination_token" not in pages[0].query and all("pagination_token" in p.query for p in pages[1:])
    assert result.cursors["mentions"] == {"since_id": posted[-1]}


def test_keyword_search_finds_posts_without_the_handle(x):
    hit = x.tweet("alice", "Acme Notes ate my homework again")
    x.tweet("brand", "Acme Notes 2.0 is out")  # the brand's own post is never a mention
    both = x.tweet("bob", "@brand is Acme Notes down?")  # found by both feeds, kept once
    adapter = brand_adapter(x, keywords=("Acme Notes",))

    result = adapter.fetch_mentions({}, since())

    reasons = {m.external_id: m.reason for m in result.mentions}
    assert reasons == {hit: "keyword", both: "mention"}
    assert result.cursors["search:acme notes"] == {"since_id": both}
    [search] = x.requests_to(SEARCH)
    assert search.query["query"] == ['"Acme Notes" -from:brand -is:retweet']

    newer = x.tweet("bob", "switching away from acme notes")
    again = adapter.fetch_mentions(result.cursors, since())
    assert [m.external_id for m in again.mentions] == [newer]
    assert x.requests_to(SEARCH)[-1].query["since_id"] == [both]


def test_a_search_cursor_older_than_seven_days_restarts_inside_the_window(x):
    stale = x.tweet("alice", "acme, long ago", created_at=datetime.now(timezone.utc) - timedelta(days=8))
    fresh = x.tweet("bob", "acme today")

    result = brand_adapter(x, keywords=("acme",)).fetch_mentions({"search:acme": {"since_id": stale}}, since())

    assert [m.external_id for m in result.mentions] == [fresh] and result.errors == []
    [search] = x.requests_to(SEARCH)
    assert "start_time" in search.query and "since_id" not in search.query  # X answers 400 to that since_id


def test_the_brands_own_posts_are_skipped(x):
    x.tweet("alice", "@brand hello")
    own = x.tweet("brand", "Reminder for the @brand team: office hours at 3")

    result = brand_adapter(x).fetch_mentions({}, since())

    assert [m.author_handle for m in result.mentions] == ["alice"]
    assert result.cursors == {"mentions": {"since_id": own}}  # read, and not read again


def test_a_failing_search_is_reported_while_mentions_still_arrive(x):
    mention = x.tweet("alice", "@brand hi")
    x.fail_next(SEARCH, 503)

    result = brand_adapter(x, keywords=("acme",)).fetch_mentions({}, since())

    assert [m.external_id for m in result.mentions] == [mention]
    [error] = result.errors
    assert type(error) is Unavailable and "503" in str(error)
    assert "search:acme" not in result.cursors


def test_with_a_bearer_token_search_runs_as_the_app(x):
    x.tweet("alice", "acme rocks")

    result = brand_adapter(x, keywords=("acme",), bearer=True).fetch_mentions({}, since())

    assert [m.reason for m in result.mentions] == ["keyword"]
    assert x.requests_to(SEARCH)[0].headers["authorization"] == f"Bearer {x.bearer_token}"
    assert x.requests_to(mentions_path(x))[0].headers["authorization"].startswith("OAuth ")


def test_check_login_names_the_account(x):
    assert brand_adapter(x).check_login() == f"@brand ({x.user('brand').id}) on {x.base_url}"


# --- writing ---------------------------------------------------------------------------------


def test_post_reply_threads_under_the_mention_with_user_context(x):
    mention = x.tweet("alice", "@brand where is the export button?")
    adapter = brand_adapter(x, bearer=True)
    text = adapter.compose_reply({"tweet_id": mention}, "Top right, under Share. Did that help?")
    assert text == "Top right, under Share. Did that help?"  # X adds the @handle of a reply itself

    posted = adapter.post_reply({"tweet_id": mention}, text, idempotency_key="conversant-1")

    [reply] = x.created("brand")
    assert reply.in_reply_to == mention and reply.text == text
    assert posted.external_id == reply.id and posted.url == f"https://x.com/brand/status/{reply.id}"
    [request] = x.requests_to(POST)
    assert request.headers["authorization"].startswith("OAuth ")  # X requires user context to post
    assert request.json() == {"text": text, "reply": {"in_reply_to_tweet_id": mention}}


def test_find_brand_reply_finds_only_a_direct_reply_by_the_brand(x):
    mention = x.tweet("alice", "@brand does sync work offline?")
    other = x.tweet("alice", "@brand and on Android?", reply_to=mention)
    adapter = brand_adapter(x)
    x.tweet("bob", "same question", reply_to=mention)
    x.tweet("brand", "@alice Yes, on Android too!", reply_to=other)
    assert adapter.find_brand_reply({"tweet_id": mention}) is None

    posted = adapter.post_reply({"tweet_id": mention}, "Yes, it syncs when you are back online.", idempotency_key="k")

    assert adapter.find_brand_reply({"tweet_id": mention}) == posted
    assert x.requests_to(SEARCH)[-1].query["query"] == [f"in_reply_to_tweet_id:{mention} from:brand"]


# --- length ----------------------------------------------------------------------------------

CJK_160 = ("故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。朱雀桥边野草花，乌衣巷口夕阳斜。旧时王谢堂前燕，"
           "飞入寻常百姓家。朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。泪湿罗巾梦不成，夜深前殿按歌声。"
           "红颜未老恩先断，斜倚薰笼坐到明。独在异乡为异客，每逢佳节倍思亲。遥知兄弟登高处，遍插茱萸少一人。")


@pytest.mark.parametrize("text, expected", [
    ("Hello, world!", 13),
    ("Привет, мир", 11),  # Cyrillic is in the weight-1 range
    ("A\u0301B", 2),  # NFC first: A + combining acute is one letter
    ("你好，世界", 10),  # CJK weighs 2, full-width punctuation too
    ("Thanks 🙏", 9),
    ("👨\u200d👩\u200d👧\u200d👦 🇯🇵 #\ufe0f\u20e3", 8),  # a ZWJ family, a flag, a keycap: 2 each
    ("Read https://brand.com/help/articles/12345-export?utm_source=x", 28),
    ("Read https://brand.example/help", 31),  # .example is no TLD twitter-text knows: no link
    ("see acme.com/help.", 28),  # a bare domain is a URL too; the final period is not part of it
    ("node.js", 7),  # .js is no TLD
    # from twitter/twitter-text conformance/validate.yml, WeightedTweetsWithDiscountedEmojiCounterTest
    ("Hi http://test.co", 26),
    ("H🐱☺👨\u200d👩\u200d👧\u200d👦", 7),
    ("🙋🏽👨\u200d🎤", 4),
    ("1\u20e3", 2),
    ("Unicode 10.0 emoji: 🤪; 🧕; 🧕🏾; 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", 34),
    (CJK_160, 320),
    ("randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com", 68),  # a 64-letter label is no domain
    ("\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 31),
])
def test_weighted_length_follows_twitter_text(text, expected):
    assert weighted_length(text) == expected


def test_the_limit_is_280_weighted_characters(x):
    adapter = brand_adapter(x)
    assert adapter.text_limit == 280
    assert adapter.text_length("x" * 280) == 280 and adapter.text_length("x" * 281) == 281
    assert adapter.text_length("あ" * 140) == 280 and adapter.text_length("あ" * 140 + "!") == 281
    assert adapter.text_length("y" * 257 + " https://brand.com/a/very/long/path/indeed") == 281


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, expected, hint", [
    (401, None, AuthFailed, "X_ACCESS_TOKEN_SECRET"),
    (402, CREDITS_DEPLETED, Rejected, "your X API plan does not include this endpoint, or its credits are used up"),
    (403, CLIENT_FORBIDDEN, Rejected, "your X API plan does not include this endpoint"),
    (500, None, Unavailable, "tries again"),
    (503, None, Unavailable, "tries again"),
], ids=["401", "402-credits", "403-plan", "500", "503"])
def test_read_errors_map_to_the_error_tree(x, status, body, expected, hint):
    adapter = brand_adapter(x)
    adapter.check_login()
    x.fail_next(MENTIONS, status, body)

    with pytest.raises(PlatformError) as caught:
        adapter.fetch_mentions({}, since())

    assert type(caught.value) is expected and str(status) in caught.value.message
    assert hint in caught.value.hint
    assert_no_secret(caught.value, x)


@pytest.mark.parametrize("status, body, expected, hint", [
    (403, OAUTH1_PERMISSIONS, AuthFailed, "'Read and write'"),
    (403, CLIENT_FORBIDDEN, Rejected, "your X API plan does not include this endpoint"),
    (402, CREDITS_DEPLETED, Rejected, "credits are used up"),
    (404, None, MentionGone, ""),
    (502, None, Unavailable, "tries again"),
], ids=["403-read-only-app", "403-plan", "402-credits", "404", "502"])
def test_write_errors_map_to_the_error_tree(x, status, body, expected, hint):
    mention = x.tweet("alice", "@brand hi")
    adapter = brand_adapter(x)
    adapter.check_login()
    x.fail_next(POST, status, body)

    with pytest.raises(PlatformError) as caught:
        adapter.post_reply({"tweet_id": mention}, "Hello!", idempotency_key="k")

    assert type(caught.value) is expected
    assert hint in (caught.value.hint or "")
    assert x.created("brand") == []
    assert_no_secret(caught.value, x)


def test_429_is_rate_limited_until_x_rate_limit_reset(x):
    mention = x.tweet("alice", "@brand hi")
    adapter = brand_adapter(x)
    adapter.check_login()
    reset = int(time.time()) + 600
    x.fail_next(POST, 429, headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                                    "x-rate-limit-reset": str(reset)})

    with pytest.raises(RateLimited) as caught:
        adapter.post_reply({"tweet_id": mention}, "Hello!", idempotency_key="k")

    assert caught.value.retry_at == datetime.fromtimestamp(reset, timezone.utc)
    assert x.created("brand") == []


def test_a_used_up_search_window_is_reported_without_blocking_the_poll(x):
    x.rate_limits[SEARCH] = 1
    adapter = brand_adapter(x, keywords=("acme",))
    adapter.fetch_mentions({}, since())
    mention = x.tweet("alice", "@brand still there?")

    started = datetime.now(timezone.utc)
    result = adapter.fetch_mentions({}, since())

    assert datetime.now(timezone.utc) - started < timedelta(seconds=2)  # no sleeping until the reset
    assert [m.external_id for m in result.mentions] == [mention]
    [error] = result.errors
    assert type(error) is RateLimited
    assert started < error.retry_at <= started + timedelta(minutes=15, seconds=1)  # the window's x-rate-limit-reset


def test_a_deleted_mention_is_gone(x):
    mention = x.tweet("alice", "@brand nevermind")
    x.delete(mention)

    with pytest.raises(MentionGone):
        brand_adapter(x).post_reply({"tweet_id": mention}, "Glad it worked out!", idempotency_key="k")


def test_a_keyword_hit_that_does_not_summon_the_brand_cannot_be_answered_by_the_api(x):
    hit = x.tweet("alice", "acme lost my notes")

    with pytest.raises(Rejected) as caught:
        brand_adapter(x).post_reply({"tweet_id": hit}, "Sorry! Which device?", idempotency_key="k")

    assert "mentioned or otherwise engaged" in caught.value.message
    assert "@mention or quote the brand" in caught.value.hint


def test_the_same_text_twice_is_refused_as_duplicate(x):
    first = x.tweet("alice", "@brand thanks!")
    second = x.tweet("bob", "@brand thank you!")
    adapter = brand_adapter(x)
    adapter.post_reply({"tweet_id": first}, "You're welcome!", idempotency_key="k1")

    with pytest.raises(Rejected, match="duplicate content"):
        adapter.post_reply({"tweet_id": second}, "You're welcome!", idempotency_key="k2")


def test_a_wrong_secret_fails_the_signature_and_names_the_variables(x):
    with pytest.raises(AuthFailed) as caught:
        brand_adapter(x, api_secret="not-the-secret").check_login()

    assert "401" in caught.value.message and "X_API_SECRET" in caught.value.hint
    assert_no_secret(caught.value, x)


def test_a_timeout_and_a_refused_connection_are_unavailable(x):
    x.set_delay(MENTIONS, 1.0)
    adapter = brand_adapter(x, timeout=0.2)
    adapter.check_login()
    with pytest.raises(Unavailable, match="ReadTimeout"):
        adapter.fetch_mentions({}, since())

    with pytest.raises(Unavailable, match="ConnectionError"):
        brand_adapter(x, base_url="http://127.0.0.1:9").check_login()


# --- end to end ------------------------------------------------------------------------------


def conversation(services) -> Conversation:
    with services.db.session() as session:
        return session.query(Conversation).one()


def test_an_x_mention_becomes_a_card_and_approval_posts_the_reply_once(make_services, slack, model, x):
    services = make_services(platforms={"x": brand_adapter(x)})
    mention = x.tweet("alice", "@brand my export keeps failing since the update, help?")
    draft = "Sorry about the export! Which file type were you exporting? 🙏"
    model.reply_with(triage(draft))

    report = poll_once(services)

    assert report.carded == 1
    [card] = slack.calls_to("chat.postMessage")
    blocks = json.dumps(card["blocks"], ensure_ascii=False)
    assert f"https://x.com/alice/status/{mention}" in blocks and draft in blocks
    assert f"({weighted_length(draft)}/280)" in blocks
    conv = conversation(services)
    assert decision.approve(services.db, services.rules, conv.id, "U_ALICE").done

    assert flows.send(services, conv.id) is State.REPLIED

    [reply] = x.created("brand")
    assert reply.in_reply_to == mention and reply.text == draft
    done = conversation(services)
    assert done.reply_id == reply.id and done.reply_url == f"https://x.com/brand/status/{reply.id}"
    assert flows.send(services, conv.id) is None  # a second send finds nothing to do
    poll_once(services)
    assert len(x.created("brand")) == 1 and len(slack.calls_to("chat.postMessage")) == 1
