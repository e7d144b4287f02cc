"""The core promise, end to end: a Bluesky mention becomes a card; a click posts the reply once."""
from __future__ import annotations

from bot.slack.payloads import ActionId
from bot.models import AuditEvent, State
from bot.pipeline import poll_once
from tests.conftest import eventually, triage
from tests.support import card_buttons, card_text, click
from tests.support import load as conversation


def test_mention_becomes_one_card_with_author_text_link_draft_and_buttons(services, slack, model, bluesky):
    mention = bluesky.post("alice.test", "@brand.test my export keeps failing since the update, help?")
    draft = "Sorry about the export! Which file type were you exporting? 🙏"
    model.reply_with(triage(draft, category="complaint", urgency="high"))

    report = poll_once(services)

    assert report.carded == 1
    [posted] = slack.calls_to("chat.postMessage")
    assert posted["channel"] == "C_REVIEW"
    text = card_text(posted)
    assert "Alice" in text and "@alice.test" in text and "Bluesky" in text
    assert "my export keeps failing" in text
    assert "https://bsky.app/profile/alice.test/post/" + mention.rsplit("/", 1)[1] in text
    assert draft in text
    assert "complaint" in text and "high urgency" in text
    assert f"({len(draft)}/300)" in text  # graphemes, against Bluesky's limit
    assert card_buttons(posted) == ["Approve", "Reply privately", "Edit", "Dismiss"]
    assert conversation(services).state == State.CARDED.value

    # a second cycle finds nothing new and posts nothing more
    poll_once(services)
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_approve_posts_threaded_reply_once_and_rewrites_the_card(services, web, slack, model, bluesky):
    root = bluesky.post("bob.test", "What's everyone's favourite note app?")
    mention = bluesky.post("alice.test", "@brand.test is the one I use, but sync is slow", reply_to=root)
    model.reply_with(triage("Thanks for the shout! How slow is it for you, seconds or minutes?"))
    poll_once(services)
    conv = conversation(services)

    status, _ = click(web, ActionId.APPROVE, conv)
    assert status == 200

    reply = eventually(lambda: bluesky.created("brand.test"))[0]
    assert reply.value["text"] == "Thanks for the shout! How slow is it for you, seconds or minutes?"
    assert reply.value["reply"]["parent"]["uri"] == mention
    assert reply.value["reply"]["root"]["uri"] == root
    assert reply.value["reply"]["parent"]["cid"] == bluesky.get(mention).cid
    assert reply.value["reply"]["root"]["cid"] == bluesky.get(root).cid

    done = eventually(lambda: conversation(services).state == State.REPLIED.value and conversation(services))
    assert done.decided_by == "U_ALICE" and done.reply_url.endswith(reply.uri.rsplit("/", 1)[1])
    final = eventually(lambda: "View the reply" in card_text(slack.last("chat.update")) and slack.last("chat.update"))
    assert final["ts"] == conv.slack_ts
    assert "Approve" not in card_buttons(final) and card_buttons(final) == []
    assert "<@U_ALICE>" in card_text(final)

    # a double click and a Slack retry change nothing
    click(web, ActionId.APPROVE, conv)
    click(web, ActionId.APPROVE, conv)
    eventually(lambda: len(slack.calls_to("chat.postEphemeral")) >= 2)
    assert len(bluesky.created("brand.test")) == 1
    assert "already handled" in slack.last("chat.postEphemeral")["text"]

    with services.db.session() as session:
        actions = [e.action for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions == ["carded", "approved", "posted"]
