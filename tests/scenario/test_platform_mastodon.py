"""The Mastodon adapter through the real Mastodon.py SDK, against a fake Mastodon over HTTP."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest

from bot import decision, flows
from bot.models import Conversation, State
from bot.pipeline import poll_once
from bot.platforms import mastodon as mastodon_module
from bot.platforms.base import (
    AuthFailed,
    MentionGone,
    RateLimited,
    Rejected,
    Unavailable,
)
from bot.platforms.mastodon import MastodonPlatform
from tests.conftest import triage
from tests.fakes.mastodon_api import FakeMastodon

TOKEN = "brand-secret-token-5f3a9c"
NOTIFICATIONS = "/api/v1/notifications"


@pytest.fixture
def fake():
    with FakeMastodon() as server:
        server.add_account("brand", display_name="Brand", token=TOKEN)
        server.add_account("alice", display_name="Alice")
        server.add_account("carol", "other.social", display_name="Carol")
        yield server


@pytest.fixture
def adapter(fake):
    return new_adapter(fake)


def new_adapter(fake: FakeMastodon, token: str = TOKEN, **kwargs) -> MastodonPlatform:
    return MastodonPlatform(fake.base_url, token, timeout=kwargs.pop("timeout", 2.0), **kwargs)


def an_hour_ago() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


def ids(result) -> list[str]:
    return [m.external_id for m in result.mentions]


# ---- reading ------------------------------------------------------------------------------


def test_a_mention_arrives_as_plain_text_with_author_link_and_thread_ref(fake, adapter):
    long_url = "https://docs.example.com/guides/export/troubleshooting-large-files"
    status = fake.post("carol@other.social", f"@brand export fails & stops <here>\nsee {long_url}\n\nany idea?",
                       visibility="unlisted")

    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions

    assert mention.text == f"@brand export fails & stops <here>\nsee {long_url}\n\nany idea?"
    assert (mention.author_handle, mention.author_name, mention.author_id) == ("carol@other.social", "Carol", fake.account("carol@other.social").id)
    assert mention.url == f"https://other.social/@carol/{status}"
    assert mention.reason == "mention" and mention.external_id == status and mention.thread_key == status
    assert mention.thread_ref == {"id": status, "acct": "carol@other.social", "visibility": "unlisted", "in_reply_to_id": None}
    assert abs(mention.created_at - fake.get(status).created_at) < timedelta(milliseconds=1)


def test_a_reply_to_the_brand_carries_its_thread_root_and_the_post_it_answers(fake, adapter):
    root = fake.post("alice", "Which note app do you use?")
    brand_post = fake.post("brand", "@alice ours, of course!", in_reply_to=root)
    reply = fake.post("alice", "@brand sync is slow though", in_reply_to=brand_post)

    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions

    assert mention.external_id == reply and mention.reason == "reply"
    assert mention.thread_key == root
    assert mention.parent_text == "@alice ours, of course!"
    assert mention.thread_ref["in_reply_to_id"] == brand_post


def test_a_restart_with_saved_cursors_neither_repeats_nor_misses(fake, adapter):
    first = fake.post("alice", "@brand one")
    before = adapter.fetch_mentions({}, an_hour_ago())
    assert ids(before) == [first]
    second, third = fake.post("alice", "@brand two"), fake.post("carol@other.social", "@brand three")

    restarted = new_adapter(fake)  # a new process: only the saved cursors survive
    after = restarted.fetch_mentions(before.cursors, an_hour_ago())

    assert ids(after) == [second, third]
    assert fake.requests_to(NOTIFICATIONS)[-1].query["min_id"] == [before.cursors["notifications"]["min_id"]]
    assert restarted.fetch_mentions(after.cursors, an_hour_ago()).mentions == []


def test_a_backlog_of_120_notifications_is_paged_through_in_order(fake, adapter):
    fake.post("alice", "@brand warm-up")
    cursors = adapter.fetch_mentions({}, an_hour_ago()).cursors
    posted = [fake.post("alice", f"@brand backlog {n}") for n in range(120)]
    fake.requests.clear()

    result = adapter.fetch_mentions(cursors, an_hour_ago())

    assert ids(result) == posted
    pages = fake.requests_to(NOTIFICATIONS)
    assert [p.query["types[]"] for p in pages] == [["mention"], ["mention"]] and len(pages) == 2
    assert result.cursors["notifications"]["min_id"] == fake.notifications[-1].id


def test_a_backlog_longer_than_one_poll_comes_in_the_next_poll(fake, adapter, monkeypatch):
    monkeypatch.setattr(mastodon_module, "MAX_PAGES", 1)
    cursors = {"notifications": {"min_id": "0"}}
    posted = [fake.post("alice", f"@brand backlog {n}") for n in range(100)]

    first = adapter.fetch_mentions(cursors, an_hour_ago())
    second = adapter.fetch_mentions(first.cursors, an_hour_ago())

    assert ids(first) == posted[:80] and ids(second) == posted[80:]


def test_the_first_run_only_goes_back_to_since(fake, adapter):
    old = fake.post("alice", "@brand from last week")
    fake.notifications[-1].created_at -= timedelta(days=7)
    recent = fake.post("alice", "@brand from today")

    result = adapter.fetch_mentions({}, an_hour_ago())

    assert ids(result) == [recent] and old not in ids(result)
    assert result.cursors["notifications"] == {"min_id": fake.notifications[-1].id}


def test_keyword_search_finds_posts_that_do_not_tag_the_brand_and_skips_its_own(fake):
    adapter = new_adapter(fake, keywords=("Acme Cloud",))
    tagged = fake.post("alice", "@brand acme cloud is down")
    untagged = fake.post("carol@other.social", "anyone else on Acme Cloud seeing errors?")
    fake.post("alice", "my acme anvil and my cloud storage")  # both words, not the phrase
    fake.post("brand", "Acme Cloud status: all good")  # the brand's own

    result = adapter.fetch_mentions({}, an_hour_ago())

    assert ids(result) == [tagged, untagged]
    assert [m.reason for m in result.mentions] == ["mention", "keyword"]
    assert fake.requests_to("/api/v2/search")[0].query["q"] == ['"Acme Cloud"']
    assert "search:acme cloud" in result.cursors


def test_keyword_search_resumes_without_repeats_and_catches_posts_that_federate_late(fake):
    adapter = new_adapter(fake, keywords=("acme",))
    first = fake.post("alice", "acme rocks")
    before = adapter.fetch_mentions({}, an_hour_ago())
    # A remote post published a minute before the one already read, delivered only now.
    late = fake.post("carol@other.social", "acme support was quick", created_at=fake.get(first).created_at - timedelta(minutes=1))
    newer = fake.post("alice", "acme again")

    after = new_adapter(fake, keywords=("acme",)).fetch_mentions(before.cursors, an_hour_ago())

    assert ids(before) == [first]
    assert sorted(ids(after)) == sorted([late, newer])


def test_without_full_text_search_the_keyword_feed_finds_nothing_and_reports_no_error(fake):
    fake.full_text_search = False  # an instance without Elasticsearch answers no statuses
    fake.post("alice", "acme rocks")

    result = new_adapter(fake, keywords=("acme",)).fetch_mentions({}, an_hour_ago())

    assert result.mentions == [] and result.errors == []


def test_a_failing_search_keeps_its_cursor_while_notifications_move_on(fake):
    adapter = new_adapter(fake, keywords=("acme",))
    mention = fake.post("alice", "@brand hello")
    fake.fail_next("/api/v2/search", 503)

    result = adapter.fetch_mentions({}, an_hour_ago())

    assert ids(result) == [mention]
    assert "notifications" in result.cursors and "search:acme" not in result.cursors
    [error] = result.errors
    assert isinstance(error, Unavailable) and not isinstance(error, RateLimited)


def test_the_adapter_talks_only_to_the_endpoints_it_uses(fake):
    adapter = new_adapter(fake, keywords=("acme",))
    assert fake.requests == []  # constructing asks nothing (no version check)

    fake.post("alice", "@brand hi")
    adapter.fetch_mentions({}, an_hour_ago())

    # the server's limits are read while polling, once, so rendering a card never asks
    assert {r.path for r in fake.requests} == {"/api/v1/accounts/verify_credentials", NOTIFICATIONS, "/api/v2/search", "/api/v2/instance/"}


def test_the_format_cards_use_never_asks_the_server(fake):
    fake.set_instance(max_characters=1000, characters_reserved_per_url=30)
    adapter = new_adapter(fake)
    assert adapter.format.limit == 500 and fake.requests == []  # not read yet: the defaults, without a call

    adapter.fetch_mentions({}, an_hour_ago())
    calls = len(fake.requests)
    assert adapter.format.limit == 1000 and adapter.format.length("see https://example.com") == 4 + 30
    assert len(fake.requests) == calls


# ---- writing ------------------------------------------------------------------------------


def test_compose_reply_starts_with_the_authors_acct(adapter):
    local = {"id": "1", "acct": "alice", "visibility": "public", "in_reply_to_id": None}
    remote = {**local, "acct": "carol@other.social"}

    assert adapter.compose_reply(local, "Thanks!") == "@alice Thanks!"
    assert adapter.compose_reply(remote, "Thanks!") == "@carol@other.social Thanks!"
    assert adapter.compose_reply(local, "@Alice thanks!") == "@Alice thanks!"
    assert adapter.compose_reply(remote, "@carol@other.social thanks!") == "@carol@other.social thanks!"
    assert adapter.compose_reply(local, "@alicebob thanks") == "@alice @alicebob thanks"
    assert adapter.compose_reply(remote, "@carol thanks") == "@carol@other.social @carol thanks"


@pytest.mark.parametrize("visibility", ["public", "unlisted", "private", "direct"])
def test_a_reply_is_threaded_under_the_mention_with_the_same_visibility(fake, adapter, visibility):
    mention_id = fake.post("carol@other.social", "@brand where is my order?", visibility=visibility)
    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions
    text = adapter.compose_reply(mention.thread_ref, "Sorry! Which order number?")

    posted = adapter.post_reply(mention.thread_ref, text, idempotency_key="conversant-7")

    [reply] = fake.created("brand")
    assert (reply.id, reply.in_reply_to_id, reply.visibility) == (posted.external_id, mention_id, visibility)
    assert reply.text == "@carol@other.social Sorry! Which order number?"
    assert posted.url == f"https://mastodon.test/@brand/{reply.id}"
    assert reply.mention_ids == [fake.account("carol@other.social").id]  # what makes her server notify her


def test_the_idempotency_key_is_sent_and_a_second_post_with_it_gives_the_same_status(fake, adapter):
    fake.post("alice", "@brand hi")
    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions

    first = adapter.post_reply(mention.thread_ref, "@alice Hello!", idempotency_key="conversant-42")
    again = adapter.post_reply(mention.thread_ref, "@alice Hello!", idempotency_key="conversant-42")

    assert first == again and len(fake.created("brand")) == 1
    assert [r.headers["idempotency-key"] for r in fake.requests_to("/api/v1/statuses")] == ["conversant-42"] * 2


def test_find_brand_reply_sees_only_the_brands_direct_reply(fake, adapter):
    mention = fake.post("alice", "@brand hi")
    thread_ref = adapter.fetch_mentions({}, an_hour_ago()).mentions[0].thread_ref
    others = fake.post("carol@other.social", "@alice me too", in_reply_to=mention)
    fake.post("brand", "@carol welcome", in_reply_to=others)  # the brand, but deeper in the thread
    assert adapter.find_brand_reply(thread_ref) is None

    fake.post("brand", "@alice details in private", in_reply_to=mention, visibility="direct")
    assert adapter.find_brand_reply(thread_ref) is None  # a private reply to a public mention is not the answer in the thread

    reply = fake.post("brand", "@alice hello!", in_reply_to=mention)

    found = adapter.find_brand_reply(thread_ref)
    assert found.external_id == reply and found.url.endswith(f"/@brand/{reply}")


def test_a_deleted_mention_is_gone_for_the_thread_check_and_for_the_reply(fake, adapter):
    mention = fake.post("alice", "@brand hi")
    thread_ref = adapter.fetch_mentions({}, an_hour_ago()).mentions[0].thread_ref
    fake.delete(mention)

    with pytest.raises(MentionGone):
        adapter.find_brand_reply(thread_ref)
    with pytest.raises(MentionGone):
        adapter.post_reply(thread_ref, "@alice hello", idempotency_key="conversant-1")
    assert fake.created("brand") == []


# ---- length -------------------------------------------------------------------------------


def test_length_follows_the_servers_limits_urls_and_remote_mentions(fake, adapter):
    fake.set_instance(max_characters=60, characters_reserved_per_url=30)
    url = "https://brand.example/a/very/long/path/to/the/help/page?topic=export"

    assert adapter.text_limit == 60
    assert adapter.text_length(f"see {url}") == 4 + 30
    assert adapter.text_length("@carol@other.social hi") == len("@carol hi")
    assert adapter.text_length("👍🏽 ok") == 4  # graphemes, not code points


def test_a_reply_exactly_at_the_limit_posts_and_one_more_character_is_rejected(fake, adapter):
    fake.set_instance(max_characters=60)
    fake.post("carol@other.social", "@brand hi")
    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions
    text = adapter.compose_reply(mention.thread_ref, "see https://brand.example/a/very/long/help/page ")
    text += "x" * (60 - adapter.text_length(text))
    assert adapter.text_length(text) == 60 and len(text) > 60

    adapter.post_reply(mention.thread_ref, text, idempotency_key="conversant-1")
    with pytest.raises(Rejected, match="character limit of 60 exceeded"):
        adapter.post_reply(mention.thread_ref, text + "x", idempotency_key="conversant-2")


def test_limits_come_from_v1_before_mastodon_4_and_default_when_unreadable(fake):
    fake.set_instance(max_characters=1000, v2=False)
    assert new_adapter(fake).text_limit == 1000

    fake.fail_next("/api/v1/instance", 503)
    adapter = new_adapter(fake)
    assert adapter.text_limit == 500  # the default, for now
    assert adapter.text_limit == 1000  # read again once the server answers


# ---- errors -------------------------------------------------------------------------------


def test_a_wrong_token_is_auth_failed_with_a_hint_and_never_shows_the_token(fake):
    with pytest.raises(AuthFailed) as caught:
        new_adapter(fake, token="wrong-token-123").fetch_mentions({}, an_hour_ago())

    message = str(caught.value)
    assert "MASTODON_ACCESS_TOKEN" in message and "read:notifications" in message and "write:statuses" in message
    assert "wrong-token-123" not in message


def test_a_token_without_a_scope_is_auth_failed(fake):
    fake.add_account("readonly", token="read-only-token", scopes=("read",))
    fake.post("alice", "@readonly hi")
    adapter = new_adapter(fake, token="read-only-token")
    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions

    with pytest.raises(AuthFailed, match="outside the authorized scopes"):
        adapter.post_reply(mention.thread_ref, "@alice hi", idempotency_key="conversant-1")


@pytest.mark.parametrize(
    ("status", "body", "expected", "text"),
    [
        (401, {"error": "The access token was revoked"}, AuthFailed, "revoked"),
        (403, {"error": "Your login is currently disabled"}, AuthFailed, "disabled"),
        (404, {"error": "Record not found"}, MentionGone, "gone"),
        (422, {"error": "Validation failed: Text can't be blank"}, Rejected, "Text can't be blank"),
        (500, {"error": "We're sorry, but something went wrong"}, Unavailable, "500"),
        (502, None, Unavailable, "502"),
        (503, {"error": "Remote data could not be fetched"}, Unavailable, "Remote data"),
    ],
)
def test_http_errors_on_a_reply_map_to_the_error_tree(fake, adapter, status, body, expected, text):
    fake.post("alice", "@brand hi")
    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions
    fake.fail_next("/api/v1/statuses", status, body)

    with pytest.raises(expected, match=text) as caught:
        adapter.post_reply(mention.thread_ref, "@alice hi", idempotency_key="conversant-1")

    assert not isinstance(caught.value, RateLimited) and TOKEN not in str(caught.value)


def test_a_404_while_reading_notifications_is_a_configuration_problem_not_a_gone_post(fake, adapter):
    fake.fail_next(NOTIFICATIONS, 404, {"error": "Not Found"})

    with pytest.raises(Rejected, match="MASTODON_API_BASE_URL"):
        adapter.fetch_mentions({}, an_hour_ago())


def test_a_rate_limit_is_rate_limited_until_the_reset_header(fake, adapter):
    reset = (datetime.now(timezone.utc) + timedelta(minutes=3)).replace(microsecond=0)
    fake.fail_next(NOTIFICATIONS, 429, {"error": "Too many requests"},
                   headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset.isoformat().replace("+00:00", "Z")})

    with pytest.raises(RateLimited) as caught:
        adapter.fetch_mentions({}, an_hour_ago())

    assert abs(caught.value.retry_at - reset) < timedelta(seconds=2)


def test_using_up_the_rate_limit_refuses_the_post_before_writing_it(fake, adapter):
    fake.post("alice", "@brand hi")
    [mention] = adapter.fetch_mentions({}, an_hour_ago()).mentions
    fake.rate_limit = 0  # the budget of this five-minute window is spent

    with pytest.raises(RateLimited) as caught:
        adapter.post_reply(mention.thread_ref, "@alice hi", idempotency_key="conversant-1")

    assert caught.value.retry_at is not None and fake.created("brand") == []


def test_a_timeout_or_a_closed_port_is_unavailable(fake):
    fake.set_delay(NOTIFICATIONS, 0.6)
    with pytest.raises(Unavailable):
        new_adapter(fake, timeout=0.3).fetch_mentions({}, an_hour_ago())

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(Unavailable) as caught:
        MastodonPlatform(closed, TOKEN, timeout=1.0).check_login()
    assert TOKEN not in str(caught.value)


# ---- through the pipeline -----------------------------------------------------------------


def test_a_mention_becomes_a_card_and_approval_posts_the_reply_once(make_services, slack, model, fake):
    adapter = new_adapter(fake)
    services = make_services(platforms={"mastodon": adapter})
    mention = fake.post("carol@other.social", "@brand my export keeps failing", visibility="private")
    model.reply_with(triage("Sorry about that! Which file type?"))

    report = poll_once(services)

    assert report.carded == 1
    [card] = slack.calls_to("chat.postMessage")
    assert "Mastodon" in str(card["blocks"]) and "@carol@other.social Sorry about that!" in str(card["blocks"])
    with services.db.session() as session:
        conversation = session.query(Conversation).one()
    assert conversation.draft_text == "@carol@other.social Sorry about that! Which file type?"
    assert conversation.policy_problems == []

    assert decision.approve(services.db, services.rules, conversation.id, "U_ALICE").done
    assert flows.send(services, conversation.id) is State.REPLIED
    assert flows.send(services, conversation.id) is None  # already sent: nothing happens

    [reply] = fake.created("brand")
    assert (reply.in_reply_to_id, reply.visibility) == (mention, "private")
    assert reply.text == "@carol@other.social Sorry about that! Which file type?"
    with services.db.session() as session:
        assert session.get(Conversation, conversation.id).reply_id == reply.id



# ---- the fake itself --------------------------------------------------------------------


def test_the_fake_pages_filters_and_deletes_as_mastodon_does_for_the_sdk(fake):
    from mastodon import Mastodon
    from mastodon.errors import MastodonNotFoundError

    api = Mastodon(access_token=TOKEN, api_base_url=fake.base_url, ratelimit_method="throw")
    posted = [fake.post("alice", f"@brand {n}") for n in range(5)]

    newest_two = api.notifications(limit=2)
    older = api.fetch_next(newest_two)  # follows the Link header's max_id
    assert [n.status.id for n in newest_two + older] == posted[::-1][:4]
    assert [n.status.id for n in api.notifications(since_id=newest_two[1].id)] == [posted[4]]
    assert api.notifications(exclude_types=["mention"]) == []

    api.status_delete(api.status_post("@alice hi", in_reply_to_id=posted[0]))
    with pytest.raises(MastodonNotFoundError):
        api.status(fake.created("brand")[0].id)
