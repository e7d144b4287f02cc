"""Reply privately: the card suggests it, the modal sends a direct message once, then a short public note.

Bluesky through the atproto SDK's chat namespace (the chat.bsky service behind the PDS's proxy)
against the fake PDS, with signed Slack requests and both databases.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot import flows
from bot.models import Conversation, State, utcnow
from bot.privacy import ORDER_REASON
from bot.slack.payloads import PRIVATE_BLOCK, PRIVATE_INPUT, ActionId, ModalId
from tests.conftest import eventually
from tests.fakes.slack_requests import plain_text_value
from tests.support import card_buttons, card_text, carded_mention, click, load, submit

ORDER_MENTION = "@brand.test my order #558812 never arrived, what now?"
DM = "So sorry! I've found order 558812: it left our warehouse Monday. Could you confirm your postcode?"


@pytest.fixture
def chat_open(bluesky):
    bluesky.accounts["alice.test"].allow_incoming = "all"
    return bluesky


def send_privately(web, conversation, text=DM, user="U_ALICE"):
    return submit(web, ModalId.PRIVATE, conversation, plain_text_value(PRIVATE_BLOCK, PRIVATE_INPUT, text), user=user)


def test_the_card_suggests_a_private_reply_and_sends_a_chat_message_then_a_public_note(services, web, slack, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM, private=True)

    card = slack.last("chat.postMessage")
    assert card_buttons(card)[:2] == ["Approve", "Reply privately"]
    assert "Reply privately?" in card_text(card) and ORDER_REASON in card_text(card)
    assert conv.private_hint == [ORDER_REASON]

    assert click(web, ActionId.REPLY_PRIVATELY, conv)[0] == 200
    view = eventually(lambda: slack.calls_to("views.open"))[0]["view"]
    assert view["blocks"][1]["element"]["initial_value"] == DM
    assert "We've sent you a message in chat." in card_text(view)

    assert send_privately(web, conv)[0] == 200
    done = eventually(lambda: load(services).state == State.REPLIED.value and load(services))
    messages = chat_open.messages_to("alice.test")
    assert [m["text"] for m in messages] == [DM]
    assert messages[0]["sender"]["did"] == chat_open.accounts["brand.test"].did
    note = chat_open.created("brand.test")
    assert [p.value["text"] for p in note] == ["We've sent you a message in chat."]
    assert note[0].parent_uri == conv.external_id  # threaded under the mention
    assert done.reply_private and done.private_sent_at and done.decided_by == "U_ALICE"
    final = eventually(lambda: "View the public note" in card_text(slack.last("chat.update")) and slack.last("chat.update"))
    assert "Private message" in card_text(final) and "<@U_ALICE>" in card_text(final)
    assert card_buttons(final) == []


def test_double_submits_and_concurrent_sends_send_one_message_and_one_note(services, web, slack, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = [f.result()[0] for f in [pool.submit(send_privately, web, conv) for _ in range(6)]]

    assert statuses == [200] * 6
    eventually(lambda: load(services).state == State.REPLIED.value)
    assert flows.send_approved(services) == 0 and flows.reconcile(services) == 0
    assert len(chat_open.messages_to("alice.test")) == 1
    assert len(chat_open.created("brand.test")) == 1


def test_a_recipient_who_does_not_accept_messages_is_named_and_nothing_public_is_posted(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model, text=ORDER_MENTION, reply=DM)  # alice accepts only people she follows

    send_privately(web, conv)

    failed = eventually(lambda: load(services).state == State.POST_FAILED.value and load(services))
    assert "only accepts chat messages from accounts they follow" in failed.post_error
    assert failed.private_sent_at is None
    assert bluesky.messages_to("alice.test") == [] and bluesky.created("brand.test") == []
    eventually(lambda: "Sending privately failed" in card_text(slack.last("chat.update")))


def test_an_app_password_without_direct_messages_says_how_to_fix_it(services, web, slack, model, chat_open):
    chat_open.accounts["brand.test"].dm_access = False
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)

    send_privately(web, conv)

    failed = eventually(lambda: load(services).state == State.POST_FAILED.value and load(services))
    assert "Allow access to your direct messages" in failed.post_error
    assert chat_open.created("brand.test") == []


def test_a_lost_answer_never_sends_a_second_message(services, web, slack, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)
    chat_open.fail_next("chat.bsky.convo.sendMessage", status=502)  # the chat service may or may not have sent it

    send_privately(web, conv)

    failed = eventually(lambda: load(services).state == State.POST_FAILED.value and load(services))
    assert "never sends one twice" in failed.post_error and "@alice.test" in failed.post_error
    assert flows.send_approved(services) == 0 and flows.reconcile(services) == 0
    assert chat_open.created("brand.test") == []  # no note about a message that may not exist
    assert len(chat_open.requests_to("/xrpc/chat.bsky.convo.sendMessage")) == 1


def test_a_crash_while_sending_leaves_it_to_a_person_not_to_a_second_message(services, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)
    with services.db.session() as session:  # approved privately, claimed, then the process died mid-send
        session.execute(update(Conversation).where(Conversation.id == conv.id).values(
            state=State.POSTING.value, reply_private=True, reply_text=DM, notice_text="We've sent you a message in chat.",
            decided_by="U_ALICE", posting_since=utcnow() - timedelta(minutes=5)))

    assert flows.reconcile(services) == 1

    stuck = load(services)
    assert stuck.state == State.POST_FAILED.value and "press Retry only if it is not there" in stuck.post_error
    assert chat_open.messages_to("alice.test") == [] and chat_open.created("brand.test") == []


def test_a_note_whose_answer_was_lost_is_reconciled_from_the_thread_and_the_message_is_not_sent_again(services, web, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)
    chat_open.fail_next("com.atproto.repo.createRecord", status=502)

    send_privately(web, conv)

    posting = eventually(lambda: load(services).post_error and load(services))
    assert posting.state == State.POSTING.value and posting.private_sent_at is not None
    with services.db.session() as session:
        session.execute(update(Conversation).values(posting_since=utcnow() - timedelta(minutes=5)))
    flows.reconcile(services)  # the note is not in the thread: posted again, the message is not
    assert load(services).state == State.REPLIED.value
    assert len(chat_open.messages_to("alice.test")) == 1
    assert len(chat_open.created("brand.test")) == 1


# -- Mastodon (a direct status) and Reddit (a private message), through Mastodon.py and praw -------

NO_BLUESKY = {"BLUESKY_HANDLE": "", "BLUESKY_APP_PASSWORD": ""}


@pytest.fixture
def mastodon_api():
    from tests.fakes.mastodon_api import FakeMastodon
    with FakeMastodon() as fake:
        fake.add_account("brand", display_name="Brand", token="mastodon-token")
        fake.add_account("alice", display_name="Alice")
        yield fake


@pytest.fixture
def reddit_api():
    from tests.fakes.reddit_api import FakeReddit
    with FakeReddit(client_id="app-id", client_secret="app-secret") as fake:
        fake.add_user("BrandCo", password="reddit-password")
        fake.add_user("alice")
        yield fake


def mastodon_services(make_services, fake):
    return make_services(**NO_BLUESKY, MASTODON_API_BASE_URL=fake.base_url, MASTODON_ACCESS_TOKEN="mastodon-token")


def reddit_services(make_services, fake):
    return make_services(**NO_BLUESKY, REDDIT_CLIENT_ID="app-id", REDDIT_CLIENT_SECRET="app-secret", REDDIT_USERNAME="BrandCo",
                         REDDIT_PASSWORD="reddit-password", REDDIT_USER_AGENT="test:conversant:v1 (by /u/BrandCo)",
                         REDDIT_API_BASE_URL=fake.base_url, REDDIT_AUTH_BASE_URL=fake.base_url)


def card_and_send(services, model, slack, text=DM):
    from bot.pipeline import poll_once
    from tests.conftest import serve_web, triage
    model.reply_with(triage(DM))
    poll_once(services)
    conv = load(services)
    assert "Reply privately" in card_buttons(slack.last("chat.postMessage"))
    with serve_web(services) as web:
        assert send_privately(web, conv, text)[0] == 200
        return eventually(lambda: load(services).state in (State.REPLIED.value, State.POST_FAILED.value) and load(services))


def test_mastodon_sends_a_direct_status_that_mentions_the_author_then_a_public_note(make_services, mastodon_api, model, slack):
    mention = mastodon_api.post("alice", "@brand my order #558812 never arrived")
    services = mastodon_services(make_services, mastodon_api)

    done = card_and_send(services, model, slack)

    assert done.state == State.REPLIED.value, done.post_error
    direct, note = mastodon_api.created("brand")
    assert direct.visibility == "direct" and direct.text == f"@alice {DM}"
    assert direct.mention_ids == [mastodon_api.account("alice").id]  # only she can read it
    # In reply to her mention: Mastodon does not file it under "unsolicited private mentions".
    assert direct.in_reply_to_id == mention
    assert note.text == "@alice We've sent you a private message." and note.in_reply_to_id == mention
    assert note.visibility == "public"


def test_on_mastodon_the_thread_check_does_not_take_the_direct_message_for_the_public_note(mastodon_api):
    """What reconciling a lost note relies on: the brand's direct message in the thread is not the answer."""
    from bot.platforms.mastodon import MastodonPlatform
    adapter = MastodonPlatform(mastodon_api.base_url, "mastodon-token")
    mastodon_api.post("alice", "@brand my order #558812 never arrived")
    [mention] = adapter.fetch_mentions({}, utcnow() - timedelta(hours=1)).mentions

    adapter.send_private(mention.thread_ref, mention.author_id, "alice", f"@alice {DM}", idempotency_key="k-private")
    assert adapter.find_brand_reply(mention.thread_ref) is None

    note = adapter.post_reply(mention.thread_ref, "@alice We've sent you a private message.", idempotency_key="k")
    assert adapter.find_brand_reply(mention.thread_ref).external_id == note.external_id


def test_reddit_sends_a_private_message_then_a_public_note(make_services, reddit_api, model, slack):
    post = reddit_api.submit("alice", "gadgets", "Order lost", "It never arrived.")
    mention = reddit_api.comment("alice", post, "u/BrandCo order #558812 never arrived")
    services = reddit_services(make_services, reddit_api)

    done = card_and_send(services, model, slack)

    assert done.state == State.REPLIED.value, done.post_error
    assert reddit_api.messages == [{"from": "BrandCo", "to": "alice", "subject": "About your post", "text": DM}]
    [note] = reddit_api.created("BrandCo")
    assert note.body == "We've sent you a private message." and note.parent == mention


def test_a_reddit_user_who_takes_no_messages_is_named_and_nothing_public_is_posted(make_services, reddit_api, model, slack):
    reddit_api.accounts["alice"].accepts_messages = False
    post = reddit_api.submit("alice", "gadgets", "Order lost", "It never arrived.")
    reddit_api.comment("alice", post, "u/BrandCo order #558812 never arrived")
    services = reddit_services(make_services, reddit_api)

    failed = card_and_send(services, model, slack)

    assert failed.state == State.POST_FAILED.value
    assert "u/alice does not accept private messages" in failed.post_error
    assert reddit_api.messages == [] and reddit_api.created("BrandCo") == []


def test_x_offers_no_private_reply_and_the_card_says_why(make_services, model, slack):
    from bot.pipeline import poll_once
    from tests.conftest import triage
    from tests.fakes.x_api import FakeX
    with FakeX() as fake:
        brand = fake.add_user("brand", "Brand")
        fake.add_user("alice", "Alice")
        fake.tweet("alice", "@brand my order #558812 never arrived, DM me")
        services = make_services(**NO_BLUESKY, X_API_KEY=fake.consumer_key, X_API_SECRET=fake.consumer_secret,
                                 X_ACCESS_TOKEN=brand.access_token, X_ACCESS_TOKEN_SECRET=brand.access_token_secret,
                                 X_API_BASE_URL=fake.base_url)
        model.reply_with(triage("Sorry! Could you send us a DM with the details?", private=True))
        poll_once(services)

    card = slack.last("chat.postMessage")
    assert "Reply privately" not in card_buttons(card)
    assert "A private reply is suggested" in card_text(card) and "paid X API tier" in card_text(card)


def test_the_model_is_asked_whether_to_reply_privately_and_its_word_alone_shows_on_the_card(services, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model, text="@brand.test the parcel never came, so annoying", reply="So sorry!", private=True)

    schema = model.chat_requests()[0]["response_format"]["json_schema"]["schema"]
    assert "private" in schema["required"] and schema["properties"]["private"]["type"] == "boolean"
    assert conv.private_hint == ["the model suggests it"]
    assert "Why: the model suggests it." in card_text(slack.last("chat.postMessage"))


def test_when_the_note_is_refused_retry_posts_only_the_note(services, web, slack, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)
    chat_open.fail_next("com.atproto.repo.createRecord", status=400, error="InvalidRequest", message="Bad record")

    send_privately(web, conv)

    failed = eventually(lambda: load(services).state == State.POST_FAILED.value and load(services))
    assert failed.private_sent_at is not None and len(chat_open.messages_to("alice.test")) == 1
    card = eventually(lambda: "public note failed" in card_text(slack.last("chat.update")) and slack.last("chat.update"))
    assert card_buttons(card) == ["Retry"]

    click(web, ActionId.RETRY, conv)

    eventually(lambda: load(services).state == State.REPLIED.value)
    assert len(chat_open.messages_to("alice.test")) == 1
    assert [p.value["text"] for p in chat_open.created("brand.test")] == ["We've sent you a message in chat."]


def test_a_redraft_that_asks_for_personal_details_brings_the_suggestion(services, web, slack, model, chat_open):
    from tests.conftest import triage
    from tests.scenario.test_redraft import choose
    conv = carded_mention(services, chat_open, model, text="@brand.test my parcel never came", reply="So sorry! Let us look into it.")
    assert load(services).private_hint == []
    model.reply_with(triage("So sorry! Could you send us your order number and e-mail in a DM?"))

    choose(web, conv, "direct")

    eventually(lambda: load(services).private_hint == ["asks for a private message"])
    eventually(lambda: any("Reply privately?" in card_text(update) for update in slack.calls_to("chat.update")))


def test_a_chat_message_whose_answer_was_lost_is_found_in_the_conversation_and_the_note_follows(services, web, model, chat_open):
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)
    chat_open.lose_answer_next("chat.bsky.convo.sendMessage")  # sent, but the answer never came back

    send_privately(web, conv)

    done = eventually(lambda: load(services).state == State.REPLIED.value and load(services))
    assert done.private_sent_at is not None
    assert len(chat_open.messages_to("alice.test")) == 1 and len(chat_open.requests_to("/xrpc/chat.bsky.convo.sendMessage")) == 1
    assert [p.value["text"] for p in chat_open.created("brand.test")] == ["We've sent you a message in chat."]


def test_after_a_crash_mid_send_a_message_that_is_there_is_kept_and_only_the_note_is_posted(services, model, chat_open):
    from bot.platforms.bluesky import BlueskyPlatform
    conv = carded_mention(services, chat_open, model, text=ORDER_MENTION, reply=DM)
    with services.db.session() as session:
        session.execute(update(Conversation).where(Conversation.id == conv.id).values(
            state=State.POSTING.value, reply_private=True, reply_text=DM, notice_text="We've sent you a message in chat.",
            decided_by="U_ALICE", posting_since=utcnow() - timedelta(minutes=5)))
    brand = BlueskyPlatform("brand.test", "brand-app-password", chat_open.base_url)
    brand.send_private(conv.thread_ref, conv.author_id, "alice.test", DM, idempotency_key="k")  # sent just before the crash

    assert flows.reconcile(services) == 1

    assert load(services).state == State.REPLIED.value
    assert len(chat_open.messages_to("alice.test")) == 1
    assert [p.value["text"] for p in chat_open.created("brand.test")] == ["We've sent you a message in chat."]
