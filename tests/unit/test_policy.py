"""The output policy: pure checks against the rules of a reply on its platform."""
from types import SimpleNamespace

from bot.platforms.formats import BLUESKY, X
from bot.policy import check, reply_rules, with_article_links

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


def test_a_grounded_draft_may_link_one_of_its_articles_as_a_browser_reads_it_and_nothing_else():
    grounded = with_article_links(rules(), ("https://help.brand.example/Export-PDF?utm_source=x",))
    assert check("See https://www.help.brand.example/export-pdf/ for the steps", grounded) == []
    assert check("No link at all", grounded) == []
    assert check("See https://help.brand.example/export-pdf.evil.example/a", grounded) == [
        "Links to https://help.brand.example/export-pdf.evil.example/a, which is not one of the help articles found for this mention."]
    on_x = with_article_links(rules(X), ("https://help.brand.com/export-pdf",))
    assert check("See help.brand.com/other and https://help.brand.com/export-pdf", on_x) == [  # X links bare domains
        "Links to help.brand.com/other, which is not one of the help articles found for this mention.",
        "Links 2 pages; a draft may link one help article at most."]
    assert check("See https://help.brand.example/export-pdf", with_article_links(rules(), ())) != []  # nothing matched: no link
    assert with_article_links(rules(), None) == rules()  # not grounded: the domain rule
