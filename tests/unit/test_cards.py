"""Block Kit builders: a card for each state a person sees, as JSON snapshots."""
from datetime import timedelta

from bot.models import State
from bot.slack.cards import CardFacts, as_text, burst_card, dismiss_modal, edit_modal, redraft_modal, review_card
from bot.threads import ThreadSummary
from tests.unit.rows import NOON, conversation

FACTS = CardFacts("Bluesky", 300, 45)


def buttons(card: dict) -> list[str]:
    return [e["text"]["text"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]


def test_a_waiting_card(snapshot):
    card = review_card(conversation(), FACTS)
    assert buttons(card) == ["Approve", "Edit", "Dismiss"]
    snapshot("card_waiting", card)


def test_a_card_whose_draft_breaks_the_policy_cannot_be_approved(snapshot):
    card = review_card(conversation(policy_problems=["Too long for Bluesky: 320/300 characters."]), FACTS)
    assert buttons(card) == ["Edit", "Dismiss"]
    snapshot("card_policy_problem", card)


def test_a_replied_card_says_who_and_links_the_reply(snapshot):
    card = review_card(conversation(state=State.REPLIED.value, reply_text="Happy to help!", decided_by="U_ALICE", decided_at=NOON,
                                    replied_at=NOON + timedelta(minutes=2), reply_url="https://bsky.app/profile/brand.test/post/9"), FACTS)
    assert buttons(card) == [] and "Approved by <@U_ALICE>" in str(card) and "View the reply" in str(card)
    snapshot("card_replied", card)


def test_cards_for_a_failed_post_a_dismissal_and_a_thread(snapshot):
    snapshot("card_post_failed", review_card(conversation(state=State.POST_FAILED.value, reply_text="Hi", post_error="Bluesky said no"), FACTS))
    snapshot("card_dismissed", review_card(conversation(state=State.DISMISSED.value, dismiss_reason="spam", decided_by="U_BOB", decided_at=NOON), FACTS))
    threaded = CardFacts("Bluesky", 300, 45, ThreadSummary(turns=3, latest_state="carded"))
    snapshot("card_thread_head", review_card(conversation(), threaded))


def test_the_text_of_a_post_cannot_ping_or_link():
    card = review_card(conversation(text="<!channel> <@U123> look <https://x.example|here>"), FACTS)
    text = str(card["blocks"])
    assert "<!channel>" not in text and "<@U123>" not in text and "&lt;!channel&gt;" in text


def test_a_burst_card(snapshot):
    members = [conversation(id=i, author_handle=f"user{i}.test", text="the app is down again", state=State.CARDED.value) for i in range(1, 7)]
    card = burst_card(4, members, ready=6, opened=False)
    assert buttons(card) == ["Approve all (6)", "Open one by one", "Dismiss all"]
    snapshot("burst_card", card)


def test_the_modals(snapshot):
    c = conversation()
    snapshot("modal_edit", edit_modal(c, CardFacts("Bluesky", 300, None), c.draft_text))
    snapshot("modal_dismiss", dismiss_modal(c))
    snapshot("modal_redraft", redraft_modal(c))


def test_the_demo_prints_a_card_as_text():
    text = as_text(review_card(conversation(), FACTS))
    assert "[ Approve ]  [ Edit ]  [ Dismiss ]" in text and "Open the post on Bluesky (https://bsky.app/profile/alice.test/post/1)" in text


def test_the_notification_text_is_escaped_like_the_blocks():
    hostile = "<!channel> <https://evil.example|click> <@U123>"
    card = review_card(conversation(author_handle="<!here>", text=hostile), FACTS)
    burst = burst_card(4, [conversation(id=i, text=hostile, state=State.CARDED.value) for i in range(1, 6)], ready=5, opened=False)
    for text in (card["text"], burst["text"]):
        assert "<" not in text and ">" not in text and "&lt;!channel&gt;" in text


def test_invisible_and_direction_changing_characters_show_on_the_card():
    card = review_card(conversation(text="refund\u202e\u200b please", draft_text="Sorry\u2066 to hear it"), FACTS)
    everything = str(card)
    assert "\u202e" not in everything and "\u200b" not in everything and "\u2066" not in everything
    assert "refund[U+202E][U+200B] please" in everything and "Sorry[U+2066] to hear it" in everything


def test_a_short_card_for_a_conversation_whose_full_card_slack_refused(snapshot):
    card = review_card(conversation(card_error="invalid_blocks", card_failures=1), FACTS)
    assert buttons(card) == ["Edit", "Dismiss"] and "Happy to help" not in str(card)  # no draft shown, so no Approve
    snapshot("card_short", card)
    assert buttons(review_card(conversation(card_error="invalid_blocks", card_failures=2), FACTS)) == []


PRIVATE = CardFacts("Bluesky", 300, 45, private="a Bluesky chat message")


def test_a_card_offers_reply_privately_and_shows_why_it_is_suggested(snapshot):
    card = review_card(conversation(private_hint=["has an order or case number", "asks for a private message"]), PRIVATE)
    assert buttons(card) == ["Approve", "Reply privately", "Edit", "Dismiss"]
    assert "Why: has an order or case number · asks for a private message." in as_text(card)
    snapshot("card_private_suggested", card)


def test_where_the_platform_has_no_private_replies_the_card_says_why():
    facts = CardFacts("X", 280, 45, no_private="X direct messages need a paid X API tier")
    card = review_card(conversation(platform="x", private_hint=["has a phone number"]), facts)
    assert "Reply privately" not in buttons(card)
    assert "A private reply is suggested* (why: has a phone number), but X direct messages need a paid X API tier" in as_text(card)


def test_a_private_reply_sent_shows_the_message_the_note_and_who_approved_it():
    card = review_card(conversation(state=State.REPLIED.value, reply_private=True, reply_text="Found order 5512: it ships today.",
                                    notice_text="We've sent you a message in chat.", decided_by="U_ALICE", decided_at=NOON,
                                    private_sent_at=NOON, replied_at=NOON, reply_url="https://bsky.app/profile/brand.test/post/9"), PRIVATE)
    text = as_text(card)
    assert "Private message:" in text and "Found order 5512" in text and "Public note: We've sent you a message in chat." in text
    assert "Approved by @U_ALICE · sent privately" in text and "View the public note" in text and buttons(card) == []


def test_after_the_message_went_only_retry_is_left_for_the_note():
    card = review_card(conversation(state=State.POST_FAILED.value, reply_private=True, reply_text="Hi", private_sent_at=NOON,
                                    notice_text="We've sent you a message in chat.", post_error="Bluesky refused to post the reply"), PRIVATE)
    assert buttons(card) == ["Retry"]
    assert "The private message was sent, but the public note failed" in as_text(card)


def test_a_signoff_that_does_not_fit_is_said_on_the_card():
    facts = CardFacts("Bluesky", 300, 298, signoff_note="With a sign-off such as ^JD this draft is 302/300 characters")
    assert "With a sign-off such as ^JD this draft is 302/300 characters" in as_text(review_card(conversation(), facts))
