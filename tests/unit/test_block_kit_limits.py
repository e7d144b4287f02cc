"""Every Block Kit limit holds after all formatting, whatever people post: one test per limit,
each fed what would break it (a long Reddit post, a long draft, long links, many lines).

The limits are checked by the fake Slack's own validator (tests/fakes/slack_api.py), the one
that refuses a card with ``invalid_blocks`` in the scenario tests.
"""
from __future__ import annotations

from types import SimpleNamespace

from bot.models import State
from bot.slack import views
from bot.slack.cards import CardFacts, burst_card, dismiss_modal, edit_modal, redraft_modal, review_card
from bot.slack.format import field, header
from bot.slack.limits import CONTEXT_TEXT, fit, fit_blocks, units
from bot.stats import Figures, Missed, Row
from bot.threads import ThreadSummary
from tests.fakes.slack_api import block_problems, view_problems
from tests.unit.rows import NOON, conversation

REDDIT = CardFacts("Reddit", 10_000, 9_000)
# A long Reddit post: short lines (each gains a "> " when quoted), ampersands (each "&amp;" once
# escaped), emoji (two UTF-16 units each) and a link-like text (escaped to "&lt;…&gt;").
LONG_POST = "\n".join(f"line {i}: Q&A <b> 🙂 fish & chips" for i in range(400))
LONG_DRAFT = "Thanks & sorry! " * 700  # 11,200 characters, 12,600 once escaped


def texts(blocks: list[dict], kind: str) -> list[str]:
    out = []
    for b in blocks:
        if b["type"] == kind == "section":
            out.append(b["text"]["text"])
        elif b["type"] == kind == "context":
            out += [e["text"] for e in b["elements"]]
    return out


def test_a_long_reddit_post_and_draft_fit_their_sections_and_end_cleanly():
    card = review_card(conversation(platform="reddit", text=LONG_POST, draft_text=LONG_DRAFT), REDDIT)
    assert block_problems(card["blocks"]) == []
    for text in texts(card["blocks"], "section"):
        assert units(text) <= 3000
        assert not text.rstrip("…").endswith(("&", "&a", "&am", "&amp", "&l", "&lt", "&g", "&gt"))  # no half entity
    quoted = [t for t in texts(card["blocks"], "section") if t.startswith("> line 0")][0]
    assert quoted.endswith("…") and "&amp;" in quoted and "&lt;b&gt;" in quoted
    assert "all 11,200 characters of it are what gets posted" in str(card["blocks"])  # the cut draft says so


def test_a_long_parent_post_fits_its_context_line():
    card = review_card(conversation(platform="reddit", reason="reply", parent_text=LONG_POST), REDDIT)
    assert block_problems(card["blocks"]) == []
    parent = [t for t in texts(card["blocks"], "context") if t.startswith("In reply to")][0]
    assert units(parent) <= CONTEXT_TEXT and parent.endswith("…")


def test_a_burst_of_long_posts_fits_and_keeps_its_buttons():
    members = [conversation(id=i, platform="reddit", text=LONG_POST, draft_text=LONG_DRAFT, state=State.CARDED.value)
               for i in range(1, 9)]
    card = burst_card(3, members, ready=8, opened=False)
    assert block_problems(card["blocks"]) == []
    assert all(units(t) <= CONTEXT_TEXT for t in texts(card["blocks"], "context"))
    assert card["blocks"][-1]["type"] == "actions"


def test_the_edit_box_holds_at_most_3000_and_says_so_for_a_longer_reddit_draft():
    modal = edit_modal(conversation(platform="reddit", text=LONG_POST), REDDIT, LONG_DRAFT)
    assert view_problems(modal) == []
    box = modal["blocks"][-1]
    assert box["element"]["max_length"] == 3000 and units(box["element"]["initial_value"]) <= 3000
    assert box["label"]["text"] == "Reply (at most 3,000 characters here)"
    assert any("Slack's text box holds 3,000" in t for t in texts(modal["blocks"], "context"))
    bluesky = edit_modal(conversation(), CardFacts("Bluesky", 300, None), "Hi!")
    assert bluesky["blocks"][-1]["label"]["text"] == "Reply (at most 300 characters)"


def test_the_other_modals_fit_with_a_long_post_and_draft():
    c = conversation(platform="reddit", text=LONG_POST, draft_text=LONG_DRAFT, author_handle="h" * 255)
    for modal in (dismiss_modal(c), redraft_modal(c)):
        assert view_problems(modal) == []


def test_buttons_options_and_menus_fit_on_every_card_state():
    biggest = 2**31 - 1  # the largest id the database hands out; the values carry it as JSON
    for state in State:
        c = conversation(id=biggest, state=state.value, text=LONG_POST, draft_text=LONG_DRAFT, reply_text=LONG_DRAFT,
                         post_error="x" * 5000, author_name="A" * 255, author_handle="h" * 255)
        card = review_card(c, CardFacts("Reddit", 10_000, 9_000, ThreadSummary(turns=10_000, latest_state="carded")))
        assert block_problems(card["blocks"]) == [], state


def test_a_header_and_a_field_are_cut_to_their_limits():
    assert units(header("Conversant daily digest · " + "x" * 500)["text"]["text"]) == 150
    assert units(field("*Dismissed*\n" + "spam 1, " * 500)["text"]) == 2000


def test_cuts_count_emoji_as_two_and_never_split_them_or_an_entity_or_a_link():
    assert units(fit("🙂" * 2000, 3000)) <= 3000
    assert fit("a" * 2990 + " &amp; more text", 2995).endswith("aaa …")
    assert fit("a" * 2990 + " <https://example.com/a|the post>", 2995).endswith(" …")
    assert fit("short", 3000) == "short"


def test_a_message_keeps_at_most_50_blocks_and_its_buttons():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"part {i}"}} for i in range(70)]
    blocks.append({"type": "actions", "elements": []})
    kept = fit_blocks(blocks, 50)
    assert len(kept) == 50 and kept[-1]["type"] == "actions" and "22 more not shown" in kept[-2]["elements"][0]["text"]
    assert len(fit_blocks(blocks, 100)) == 71


def _waiting(i: int):
    return conversation(id=i, url="https://www.reddit.com/r/x/comments/" + "a" * 1000, slack_channel="C1", slack_ts=f"1.{i}")


def test_home_lists_as_many_waiting_cards_as_fit_even_with_long_links():
    waiting = [_waiting(i) for i in range(1, 40)]
    blocks = views._queue_blocks(waiting, NOON, views.no_link)
    assert block_problems(blocks, 100) == []
    assert blocks[0]["text"]["text"].endswith("more.") and "…and 37 more." in blocks[0]["text"]["text"]


def test_the_digest_lists_as_many_missed_as_fit_even_with_long_links():
    rows = [Row(i, "reddit", "carded", NOON, None, None, None, "high", "https://www.reddit.com/" + "a" * 1000, "bob", "C1", f"1.{i}")
            for i in range(1, 15)]
    figures = Figures(start=NOON, end=NOON, received=14, missed=[Missed(r, "nobody was on it", 3600) for r in rows])
    text = views._missed_text(SimpleNamespace(review_sla_minutes=30), figures, views.no_link)
    assert units(text) <= 3000 and text.endswith("…and 12 more.")
