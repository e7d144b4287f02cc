"""The output policy: pure checks against the rules of a reply on its platform."""
from types import SimpleNamespace

from bot.platforms.formats import BLUESKY, X
from bot.policy import check, reply_rules

ALICE = SimpleNamespace(author_handle="alice.test")


def rules(platform=BLUESKY, domains=("brand.example",)):
    return reply_rules(platform, ALICE, domains)


def test_reply_rules_take_the_platform_facts_and_the_author():
    r = rules(X)
    assert (r.platform_label, r.limit, r.author_handle, r.allowed_domains) == ("X", 280, "alice.test", ("brand.example",))


def test_a_good_reply_passes():
    assert check("Thanks @alice.test! See https://help.brand.example/export", rules()) == []


def test_each_break_of_the_policy_is_named():
    assert check("  ", rules()) == ["The reply is empty."]
    assert check("x" * 301, rules()) == ["Too long for Bluesky: 301/300 characters."]
    assert check("see www.evil.example/x.", rules()) == ["Links to evil.example, which is not in BRAND_ALLOWED_DOMAINS."]
    assert check("hey @everyone", rules()) == ["Pings everyone (@everyone)."]
    assert check("ask @bob.test", rules()) == ["Mentions @bob.test; only the author (@alice.test) may be mentioned."]


def test_the_limit_is_the_platforms():
    assert check("x" * 281, rules(X)) == ["Too long for X: 281/280 characters."]
    assert check("x" * 281, rules(BLUESKY)) == []


def test_a_draft_with_hidden_characters_is_flagged_but_emoji_and_persian_joiners_are_not():
    assert check("Thanks\u202e for writing", rules()) == [
        "Has invisible or direction-changing characters (U+202E); retype the reply without them."]
    assert check("Sorry\u200b\u2066 about that", rules())[0].startswith("Has invisible or direction-changing characters (U+200B, U+2066)")
    assert check("Welcome, family 👩\u200d👩\u200d👧 and می\u200cخواهم", rules()) == []
