"""X's weighted length agrees with twitter-text, checked against the twitter-text-parser package.

That package (a port of twitter/twitter-text's JS, passing its conformance suite) is the
oracle here only: its regexps backtrack for minutes on some long texts, so the bot counts
with its own linear port (bot/platforms/x_text.py) and these tests hold the two together.
"""
from __future__ import annotations

import random

import pytest

twitter_text = pytest.importorskip("twitter_text")
from twitter_text.extract_urls import extract_urls_with_indices  # noqa: E402
from twitter_text.regexp.valid_cctld import valid_cctld  # noqa: E402
from twitter_text.regexp.valid_gtld import valid_gtld  # noqa: E402

from bot.platforms.x_text import LIMIT, url_spans, weighted_length  # noqa: E402
from bot.platforms.x_tlds import COUNTRY_TLDS, GENERIC_TLDS  # noqa: E402


def oracle(text: str) -> int:
    return twitter_text.parse_tweet(text).weightedLength


def _names(pattern) -> list[str]:
    inner = pattern.pattern
    return inner[inner.index("(?:(?:") + 6:inner.index(")(?=")].split("|")


def test_the_tld_list_is_twitter_texts_in_its_order():
    assert GENERIC_TLDS == _names(valid_gtld)
    assert COUNTRY_TLDS == _names(valid_cctld)


def test_every_tld_counts_as_x_counts_it():
    texts = [text for tld in GENERIC_TLDS + COUNTRY_TLDS
             for text in (f"acme.{tld}", f"See https://acme.{tld}/help, thanks", f"Acme.{tld.upper()}/x?y=1.",
                          f"write to a@b.{tld}", f"shop.acme.{tld}中文", f"node.{tld}x")]
    assert [t for t in texts if weighted_length(t) != oracle(t)] == []


@pytest.mark.parametrize("text", [
    "acme.museum", "acme.community rocks", "example.photography",  # bare domains are 23-character links
    "https://brand.example/help",  # a TLD twitter-text does not know is no link, even with https://
    "café.com ok", "日本語 acme.com中国語", "http://日本語.jp/", "a.b_c.com", "a_b.com", "-a.com", "a-.com",
    "x/acme.com y", "acme.com:8080 z", "acme.com:8080/x?y=1", "acme.com?q=1 z", "xn--p1ai.xn--p1ai",
    "https://evil.example\\a@acme.example/login", "https://t.co/" + "a" * 41, "https://t.co/abc?x=1 hi",
    "İt.com", "a.İt ok", "www.acme.com/path(foo)", "see acme.com.", "©®™ 👍🏽 👨‍👩‍👧 🇫🇷 1️⃣",
    "randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com",
])
def test_tricky_texts_count_as_x_counts_them(text):
    assert weighted_length(text) == oracle(text)


def test_links_are_found_where_twitter_text_finds_them():
    fragments = ["a", "acme", ".", "com", "museum", "https://", "http://", "/", "?", "x=1", "-", "_", "@", "#",
                 "(", ")", "日本", "é", " ", "\u200f", "😀", ":80", "t.co", "xn--p1ai", "www.", "co", "..",
                 "\\", "ß", "İ", "К", "ſ", "ı", "рф", "ＣＯＭ", "&", "%2e", "'", ",", "!", "\ufeff", "\u2066",
                 "(a)", "@a/", "org", "uk"]
    rng = random.Random(13)
    for _ in range(5000):
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(1, 12)))
        assert url_spans(text) == [tuple(u["indices"]) for u in extract_urls_with_indices(text)], text


def test_a_reply_x_would_refuse_for_a_bare_domain_is_over_the_limit():
    text = "a" * 262 + " acme.community"  # 263 + 23 = 286 for X; 277 counted as plain text
    assert weighted_length(text) == oracle(text) > LIMIT


def test_long_runs_of_labels_count_in_linear_time():
    # twitter-text's own regexps take minutes on these; a draft or an edit may be that long.
    for text in ("a." * 2500, "a-" * 2500 + ".com", "é." * 2500, "中" * 5000 + ".com"):
        assert weighted_length(text) > 0
