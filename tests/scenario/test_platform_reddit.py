"""The Reddit adapter through the real praw/prawcore, against a fake Reddit over HTTP."""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone

import pytest
from prawcore.sessions import FiniteRetryStrategy

from bot import decision, flows
from bot.models import Conversation, State
from bot.pipeline import poll_once
from bot.platforms.base import AuthFailed, MentionGone, RateLimited, Rejected, Unavailable
from bot.platforms.reddit import RedditPlatform
from tests.conftest import triage
from tests.fakes.reddit_api import FakeReddit

BRAND_PASSWORD = "brand-reddit-password"
CLIENT_SECRET = "s3cret-of-the-app"
USER_AGENT = "test:conversant:v1 (by /u/BrandCo)"
RATELIMIT = "you are doing that too much. try again in 9 minutes."  # r2/lib/errors.py's wording


@pytest.fixture
def reddit_api():
    with FakeReddit(client_id="app-id", client_secret=CLIENT_SECRET) as fake:
        fake.add_user("BrandCo", password=BRAND_PASSWORD)
        fake.add_user("alice")
        fake.add_user("bob")
        yield fake


@pytest.fixture
def make_adapter(reddit_api):
    def make(**overrides) -> RedditPlatform:
        settings = {"client_id": "app-id", "client_secret": CLIENT_SECRET, "username": "brandco",
                    "password": BRAND_PASSWORD, "user_agent": USER_AGENT, "keywords": ("acme",),
                    "oauth_url": reddit_api.base_url, "reddit_url": reddit_api.base_url, **overrides}
        return RedditPlatform(**settings)

    return make


@pytest.fixture
def adapter(make_adapter):
    return make_adapter()


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=6)


def fetch(adapter: RedditPlatform, cursors: dict | None = None):
    return adapter.fetch_mentions(cursors or {}, since())


def brand_thread(reddit_api: FakeReddit) -> tuple[str, str]:
    """bob asks in r/gadgets, the brand answers; returns (post, brand's comment)."""
    post = reddit_api.submit("bob", "gadgets", "Which note app do you use?", "Mine keeps crashing.")
    return post, reddit_api.comment("BrandCo", post, "Have you tried ours?")


# -- logging in ---------------------------------------------------------------------------


def test_login_is_a_password_grant_with_the_app_in_basic_auth(adapter, reddit_api):
    assert adapter.check_login() == f"u/BrandCo via {reddit_api.base_url}"

    [grant] = reddit_api.requests_to("/api/v1/access_token")
    assert grant.method == "POST"
    assert grant.headers["authorization"] == "Basic " + base64.b64encode(f"app-id:{CLIENT_SECRET}".encode()).decode()
    assert grant.form() == {"grant_type": "password", "username": "brandco", "password": BRAND_PASSWORD}
    [me] = reddit_api.requests_to("/api/v1/me")
    assert me.headers["authorization"].startswith("bearer ")
    assert me.headers["user-agent"].startswith(USER_AGENT)


def test_wrong_password_is_auth_failed_naming_the_variables(make_adapter):
    with pytest.raises(AuthFailed) as failed:
        make_adapter(password="not-it").check_login()

    message = str(failed.value)
    assert "invalid_grant" in message and "REDDIT_USERNAME" in message and "REDDIT_PASSWORD" in message
    assert "not-it" not in message


def test_wrong_app_secret_is_auth_failed_naming_the_variables(make_adapter):
    with pytest.raises(AuthFailed) as failed:
        make_adapter(client_secret="wrong-secret").check_login()

    message = str(failed.value)
    assert "401" in message and "REDDIT_CLIENT_ID" in message and "REDDIT_CLIENT_SECRET" in message
    assert "wrong-secret" not in message


def test_an_expired_token_is_renewed_by_a_new_password_grant(adapter, reddit_api, monkeypatch):
    monkeypatch.setattr(FiniteRetryStrategy, "_sleep_seconds", lambda self: None)  # prawcore's back-off
    adapter.check_login()
    reddit_api.expire_tokens()
    post, _ = brand_thread(reddit_api)
    reddit_api.comment("alice", post, "u/BrandCo does it sync?")

    assert len(fetch(adapter).mentions) == 1
    assert len(reddit_api.requests_to("/api/v1/access_token")) == 2


# -- reading ------------------------------------------------------------------------------


def test_inbox_mentions_and_replies_become_mentions(adapter, reddit_api):
    post, brand_comment = brand_thread(reddit_api)
    reply = reddit_api.comment("alice", brand_comment, "I did, but **sync** is slow:\n\n- phone\n- laptop")
    mention = reddit_api.comment("bob", post, "u/BrandCo can it export to PDF?")
    private = reddit_api.message("alice", "BrandCo", "hello", "a private message stays for people")

    result = fetch(adapter)

    by_id = {m.external_id: m for m in result.mentions}
    assert set(by_id) == {reply, mention}
    answer = by_id[reply]
    assert answer.reason == "reply" and answer.author_handle == "alice"
    assert answer.author_id == reddit_api.accounts["alice"].fullname
    assert answer.text == "I did, but **sync** is slow:\n\n- phone\n- laptop"  # Markdown as written
    assert answer.url == f"https://www.reddit.com{reddit_api.get(reply).permalink}"
    assert answer.thread_key == post
    assert answer.thread_ref["fullname"] == reply
    assert answer.parent_text == "Have you tried ours?"
    named = by_id[mention]
    assert named.reason == "mention" and named.author_handle == "bob" and named.thread_key == post
    assert named.parent_text == "Which note app do you use?\n\nMine keeps crashing."
    assert result.errors == []
    # what was handed over is marked read; the private message is left for a person
    assert reddit_api.unread("BrandCo") == [private]


def test_keyword_search_covers_the_configured_subreddits_and_skips_own_posts(make_adapter, reddit_api):
    adapter = make_adapter(keywords=("Acme Notes",), subreddits=("gadgets", "apps"))
    wanted = reddit_api.submit("alice", "gadgets", "Acme Notes lost my list", "Since the update.")
    reddit_api.submit("bob", "cooking", "Acme Notes for recipes?")  # outside the subreddits
    reddit_api.submit("BrandCo", "apps", "Acme Notes 2.0 is out")  # our own post
    gone = reddit_api.submit("bob", "apps", "Acme Notes ate my homework")
    reddit_api.delete(gone)

    result = fetch(adapter)

    [found] = result.mentions
    assert found.external_id == wanted and found.reason == "keyword" and found.thread_key == wanted
    assert found.text == "Acme Notes lost my list\n\nSince the update."
    assert found.url == f"https://www.reddit.com{reddit_api.get(wanted).permalink}"
    [search] = reddit_api.requests_to("/r/gadgets+apps/search")
    assert search.query["q"] == ['"Acme Notes"'] and search.query["sort"] == ["new"]
    assert search.query["restrict_sr"] == ["True"] and search.query["t"] == ["day"]
    assert set(result.cursors) == {"search:acme notes"}  # an empty inbox has nothing to remember yet


def test_first_run_reads_back_only_to_since(adapter, reddit_api):
    old = datetime.now(timezone.utc) - timedelta(days=2)
    post = reddit_api.submit("bob", "gadgets", "acme?", created=old)
    reddit_api.comment("alice", post, "u/BrandCo hello from the past", created=old)
    recent = reddit_api.comment("alice", post, "u/BrandCo hello from today")

    assert [m.external_id for m in fetch(adapter).mentions] == [recent]


def test_cursors_resume_after_a_restart_without_repeats_or_gaps(make_adapter, reddit_api):
    post, brand_comment = brand_thread(reddit_api)
    first = reddit_api.comment("alice", brand_comment, "first reply")
    found = fetch(make_adapter())
    assert [m.external_id for m in found.mentions] == [first]

    restarted = make_adapter()
    assert fetch(restarted, found.cursors).mentions == []

    later = reddit_api.comment("bob", post, "u/BrandCo later mention")
    # a post that search indexes late: written before the last poll's newest item
    five_minutes_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
    late = reddit_api.submit("alice", "gadgets", "acme late post", created=five_minutes_ago)
    again = fetch(restarted, found.cursors)
    assert {m.external_id for m in again.mentions} == {later, late}
    assert fetch(restarted, again.cursors).mentions == []


def test_a_backlog_is_paged_through(adapter, reddit_api):
    post, _ = brand_thread(reddit_api)
    mentions = {reddit_api.comment("alice", post, f"u/BrandCo question {n}") for n in range(230)}

    result = fetch(adapter)

    assert {m.external_id for m in result.mentions} == mentions
    pages = reddit_api.requests_to("/message/inbox")
    assert len(pages) == 3
    assert "after" not in pages[0].query and all(p.query["after"] for p in pages[1:])


# -- the brand's reply in the thread -------------------------------------------------------


def test_find_brand_reply_looks_directly_under_a_comment(adapter, reddit_api):
    post, _ = brand_thread(reddit_api)
    question = reddit_api.comment("alice", post, "u/BrandCo does it sync?")
    [mention] = fetch(adapter).mentions
    assert adapter.find_brand_reply(mention.thread_ref) is None  # the brand's other comment doesn't count

    answer = reddit_api.comment("BrandCo", question, "It does!")
    reddit_api.comment("bob", question, "same question")

    found = adapter.find_brand_reply(mention.thread_ref)
    assert found.external_id == answer
    assert found.url == f"https://www.reddit.com{reddit_api.get(answer).permalink}"


def test_find_brand_reply_looks_at_top_level_comments_of_a_post(adapter, reddit_api):
    post = reddit_api.submit("alice", "gadgets", "acme keeps logging me out")
    [mention] = fetch(adapter).mentions
    nested = reddit_api.comment("bob", post, "me too")
    reddit_api.comment("BrandCo", nested, "sorry, bob!")
    assert adapter.find_brand_reply(mention.thread_ref) is None

    answer = reddit_api.comment("BrandCo", post, "Which version are you on?")
    assert adapter.find_brand_reply(mention.thread_ref).external_id == answer


@pytest.mark.parametrize("with_reply_under_it", [False, True])
def test_a_deleted_comment_is_mention_gone(adapter, reddit_api, with_reply_under_it):
    post, _ = brand_thread(reddit_api)
    question = reddit_api.comment("alice", post, "u/BrandCo hello?")
    [mention] = fetch(adapter).mentions
    if with_reply_under_it:
        reddit_api.comment("bob", question, "a reply keeps it in the tree as [deleted]")
    reddit_api.delete(question)

    with pytest.raises(MentionGone):
        adapter.find_brand_reply(mention.thread_ref)


def test_a_removed_post_is_mention_gone(adapter, reddit_api):
    post = reddit_api.submit("alice", "gadgets", "acme is great")
    [mention] = fetch(adapter).mentions
    reddit_api.remove(post)

    with pytest.raises(MentionGone):
        adapter.find_brand_reply(mention.thread_ref)


# -- replying -----------------------------------------------------------------------------


def test_post_reply_to_a_comment_in_markdown(adapter, reddit_api):
    _, brand_comment = brand_thread(reddit_api)
    question = reddit_api.comment("alice", brand_comment, "how do I export?")
    [mention] = fetch(adapter).mentions
    text = "Thanks for asking! **Settings → Export**, then pick *PDF*.\n\nDid that work?"
    assert adapter.compose_reply(mention.thread_ref, text) == text

    posted = adapter.post_reply(mention.thread_ref, text, idempotency_key="conversant-1")

    [reply] = reddit_api.created("BrandCo")
    assert reply.parent == question and reply.body == text
    assert posted.external_id == reply.fullname
    assert posted.url == f"https://www.reddit.com{reply.permalink}"
    [sent] = reddit_api.requests_to("/api/comment")
    assert sent.form()["thing_id"] == question and sent.form()["text"] == text
    assert reply.fullname in reddit_api.unread("alice")  # Reddit tells alice, no u/ mention needed


def test_post_reply_to_a_submission(adapter, reddit_api):
    post = reddit_api.submit("alice", "gadgets", "acme or the other one?")
    [mention] = fetch(adapter).mentions

    posted = adapter.post_reply(mention.thread_ref, "Happy to help you choose!", idempotency_key="conversant-2")

    [reply] = reddit_api.created("BrandCo")
    assert reply.parent == post and posted.external_id == reply.fullname
    assert posted.url == f"https://www.reddit.com{reply.permalink}"
    assert adapter.text_limit == 10_000 and adapter.text_length("ü" * 10) == 10


# -- errors ------------------------------------------------------------------------------


def one_mention(adapter, reddit_api):
    post, _ = brand_thread(reddit_api)
    question = reddit_api.comment("alice", post, "u/BrandCo help?")
    [mention] = fetch(adapter).mentions
    return post, question, mention


@pytest.mark.parametrize("spoil, which, expected, words", [
    ("lock", "post", Rejected, "locked"),  # THREAD_LOCKED
    ("archive", "post", Rejected, "archived"),  # TOO_OLD
    ("delete", "question", MentionGone, "deleted"),  # DELETED_COMMENT
])
def test_a_thread_that_takes_no_reply(adapter, reddit_api, spoil, which, expected, words):
    post, question, mention = one_mention(adapter, reddit_api)
    getattr(reddit_api, spoil)({"post": post, "question": question}[which])

    with pytest.raises(expected) as refused:
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")
    assert words in str(refused.value)
    assert reddit_api.created("BrandCo") == []


def test_ratelimit_error_is_rate_limited_with_retry_at_and_no_sleep(adapter, reddit_api):
    *_, mention = one_mention(adapter, reddit_api)
    reddit_api.fail_next("/api/comment", 200, {"json": {"errors": [["RATELIMIT", RATELIMIT, "ratelimit"]]}})

    started = time.monotonic()
    with pytest.raises(RateLimited) as limited:
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")

    assert time.monotonic() - started < 2
    expected = datetime.now(timezone.utc) + timedelta(minutes=9)
    assert abs((limited.value.retry_at - expected).total_seconds()) < 5
    assert len(reddit_api.requests_to("/api/comment")) == 1


def test_429_is_rate_limited_until_retry_after(adapter, reddit_api):
    *_, mention = one_mention(adapter, reddit_api)
    reddit_api.fail_next("/api/comment", 429, headers={"retry-after": "30"})

    with pytest.raises(RateLimited) as limited:
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")

    expected = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert abs((limited.value.retry_at - expected).total_seconds()) < 5


def test_a_spent_quota_stops_calls_instead_of_sleeping_until_the_window_resets(adapter, reddit_api):
    adapter.check_login()
    reddit_api.spend_quota(reset_in=300)

    started = time.monotonic()
    result = fetch(adapter)  # the inbox takes the last request; search must not wait 300 s
    with pytest.raises(RateLimited) as limited:
        fetch(adapter)

    assert time.monotonic() - started < 2
    assert [type(e) for e in result.errors] == [RateLimited]
    expected = datetime.now(timezone.utc) + timedelta(seconds=300)
    assert abs((limited.value.retry_at - expected).total_seconds()) < 5
    assert reddit_api.requests_to("/r/all/search") == []


def test_suspended_account_is_auth_failed_at_login_and_when_posting(make_adapter, reddit_api):
    adapter = make_adapter()
    *_, mention = one_mention(adapter, reddit_api)
    reddit_api.suspend("BrandCo")

    with pytest.raises(AuthFailed) as refused:
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")
    assert "suspended" in str(refused.value)
    with pytest.raises(AuthFailed) as at_login:
        make_adapter().check_login()
    assert "suspended" in str(at_login.value)


def test_banned_from_the_subreddit_is_auth_failed_in_clear_words(adapter, reddit_api):
    *_, mention = one_mention(adapter, reddit_api)
    reddit_api.ban("BrandCo", "gadgets")

    with pytest.raises(AuthFailed) as refused:
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")
    assert "403" in str(refused.value) and "banned from that subreddit" in str(refused.value)


def test_a_server_error_on_posting_is_unavailable_and_never_retried(adapter, reddit_api):
    *_, mention = one_mention(adapter, reddit_api)
    reddit_api.fail_next("/api/comment", 502)

    with pytest.raises(Unavailable) as failed:
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")

    assert not isinstance(failed.value, RateLimited)
    assert "HTTP 502" in str(failed.value) and "may or may not have saved" in str(failed.value)
    assert len(reddit_api.requests_to("/api/comment")) == 1  # a retry could have posted twice


def test_a_timeout_on_posting_is_unavailable_and_the_reply_is_found_later(make_adapter, reddit_api):
    adapter = make_adapter(timeout=0.3)
    *_, mention = one_mention(adapter, reddit_api)
    reddit_api.set_delay("/api/comment", 0.6)  # Reddit saves the reply but answers too late

    with pytest.raises(Unavailable):
        adapter.post_reply(mention.thread_ref, "hello", idempotency_key="k")

    assert len(reddit_api.requests_to("/api/comment")) == 1
    [reply] = reddit_api.created("BrandCo")
    assert adapter.find_brand_reply(mention.thread_ref).external_id == reply.fullname


def test_server_errors_on_reading(adapter, reddit_api, monkeypatch):
    monkeypatch.setattr(FiniteRetryStrategy, "_sleep_seconds", lambda self: None)  # prawcore's back-off
    adapter.check_login()
    reddit_api.fail_next("/r/all/search", 503, times=3)
    post, _ = brand_thread(reddit_api)
    question = reddit_api.comment("alice", post, "u/BrandCo hi")

    result = fetch(adapter)  # the search feed fails; the inbox still moves on
    assert [m.external_id for m in result.mentions] == [question]
    assert [type(e) for e in result.errors] == [Unavailable] and "search:acme" not in result.cursors

    reddit_api.fail_next("/message/inbox", 503, times=3)
    with pytest.raises(Unavailable):
        fetch(adapter, result.cursors)


# -- end to end --------------------------------------------------------------------------


def test_a_reddit_mention_becomes_a_card_and_approve_posts_the_reply(make_services, make_adapter, reddit_api, slack,
                                                                     model):
    adapter = make_adapter()
    services = make_services(platforms={"reddit": adapter})
    _, brand_comment = brand_thread(reddit_api)
    question = reddit_api.comment("alice", brand_comment, "Does it work offline?")
    draft = "Good question! It does: notes sync once you're back online. What do you use it for?"
    model.reply_with(triage(draft))

    report = poll_once(services)

    assert report.carded == 1
    card = str(slack.last("chat.postMessage")["blocks"])
    assert "Reddit" in card and "Does it work offline?" in card and draft in card
    with services.db.session() as session:
        conversation = session.query(Conversation).one()
    assert conversation.external_id == question and conversation.state == State.CARDED.value

    decision.approve(services.db, services.rules, conversation.id, "U_ALICE")
    assert flows.send(services, conversation.id) is State.REPLIED

    [reply] = reddit_api.created("BrandCo")
    assert reply.parent == question and reply.body == draft
    with services.db.session() as session:
        done = session.get(Conversation, conversation.id)
    assert done.reply_url == f"https://www.reddit.com{reply.permalink}"
