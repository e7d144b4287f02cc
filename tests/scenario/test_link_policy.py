"""The link policy sees URLs as browsers follow them and as each platform links them.

Allowed: brand.example (tests/conftest.py). Each row: the text, the platform, and the hosts
the policy must refuse (empty: the reply passes).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import ada_url
import pytest

from bot import links, policy
from bot.slack.payloads import REPLY_BLOCK, REPLY_INPUT, ActionId, ModalId
from bot.models import State
from bot.platforms.bluesky import BlueskyPlatform
from bot.text import grapheme_count
from tests.conftest import eventually
from tests.fakes.slack_requests import plain_text_value
from tests.support import card_text, carded_mention, click, load, submit

TRICKY = [
    # (text, platform, refused hosts)
    ("Log in at https://evil.example\\a@brand.example/login", None, {"evil.example"}),
    ("https://brand.example@evil.example/", None, {"evil.example"}),
    ("https://brand.example:secret@evil.example/x", None, {"evil.example"}),
    ("HTTPS:\\\\evil.example\\help", None, {"evil.example"}),
    ("https:evil.example/help", None, {"evil.example"}),
    ("https:/evil.example", None, {"evil.example"}),
    ("https://evil。example/", None, {"evil.example"}),  # an ideographic full stop is a dot
    ("https://brand.example%2eevil.example/", None, {"brand.example.evil.example"}),
    ("https://brand.example.evil.example/", None, {"brand.example.evil.example"}),
    ("https://evilbrand.example/", None, {"evilbrand.example"}),
    ("https://brаnd.example/", None, {"xn--brnd-63d.example (shown as brаnd.example)"}),  # Cyrillic а
    ("http://0x7f.1/admin", None, {"127.0.0.1"}),
    ("see www.evil.example/x", None, {"evil.example"}),
    ("(https://brand.example)@evil.example", None, {"evil.example"}),
    ("ftp://evil.example/file", None, {"evil.example"}),
    # bare domains: links on X, plain text on Mastodon and Bluesky (we build no facet for them)
    ("see evil.museum for more", "x", {"evil.museum"}),
    ("see evil.museum for more", "mastodon", set()),
    ("see evil.museum for more", "bluesky", set()),
    ("https://brand.example\\evil.community", "x", {"evil.community"}),
    ("Visit EVIL.PHOTOGRAPHY.", "x", {"evil.photography"}),
    # Reddit's Markdown
    ("[brand.example](https://evil.example/login)", "reddit", {"evil.example"}),
    ("[the docs](//evil.example/docs)", "reddit", {"evil.example"}),
    ("[the docs][1]\n\n[1]: https://evil.example/docs", "reddit", {"evil.example"}),
    ("[our subreddit](/r/brand)", "reddit", {"reddit.com"}),
    # allowed, however written
    ("https://BRAND.example./help", None, set()),
    ("https://brand%2Eexample/help", None, set()),
    ("https://help.brand.example/a?b=c#d", None, set()),
    ("(see https://brand.example/help).", None, set()),
    ("https://brand.example\\help@evil.example", None, set()),  # the backslash ends the host: brand.example
    ("brand.example/help", "x", set()),
    ("[brand.example](https://brand.example/help)", "reddit", set()),
]


def rules(platform):
    return policy.ReplyRules(platform_label="P", limit=10_000, length=len, author_handle="alice.test",
                             allowed_domains=("brand.example",), platform=platform)


def refused(problems):
    return {p.removeprefix("Links to ").removesuffix(", which is not in BRAND_ALLOWED_DOMAINS.")
            for p in problems if p.startswith("Links to ")}


@pytest.mark.parametrize("text, platform, hosts", TRICKY)
def test_the_policy_refuses_exactly_the_hosts_a_browser_would_reach(text, platform, hosts):
    assert refused(policy.check(text, rules(platform))) == hosts


def test_allowed_domains_match_in_any_case_and_in_unicode_or_punycode():
    idn = policy.ReplyRules(platform_label="P", limit=999, length=len, author_handle="a",
                            allowed_domains=("BÜCHER.example.",))
    assert policy.check("https://xn--bcher-kva.example/ and https://bücher.EXAMPLE/x", idn) == []


def test_an_address_no_browser_can_open_is_refused():
    assert policy.check("https://brand.example:99999/x", rules(None)) == [
        "Has a link that opens no web page on an allowed domain (https://brand.example:99999/x)."]


@pytest.mark.parametrize("text, platform, hosts", [row for row in TRICKY if row[1] in (None, "bluesky")])
def test_every_bluesky_facet_points_where_the_policy_looked(bluesky, text, platform, hosts):
    adapter = BlueskyPlatform("brand.test", "brand-app-password", bluesky.base_url)
    checked = {(len(text[:link.start].encode()), len(text[:link.end].encode())): link.host
               for link in links.find(text, "bluesky")}
    for facet in adapter._facets(text):
        host = ada_url.URL(facet.features[0].uri).hostname.rstrip(".")
        assert checked[facet.index.byte_start, facet.index.byte_end] == host  # the same text, the same host
        if host != "brand.example" and not host.endswith(".brand.example"):
            assert refused(policy.check(text, rules("bluesky")))  # a facet elsewhere only on a refused reply


def test_a_draft_linking_evil_behind_a_backslash_is_flagged_and_an_edit_with_it_refused(services, web, slack, model, bluesky):
    sneaky = "Sorry! Log in at https://evil.example\\a@brand.example/login and try again?"
    conv = carded_mention(services, bluesky, model, reply=sneaky)

    assert "evil.example" in card_text(slack.last("chat.postMessage"))
    click(web, ActionId.APPROVE, conv)
    assert "can't be approved as written" in eventually(lambda: slack.calls_to("chat.postEphemeral"))[0]["text"]

    status, body = submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, sneaky))
    assert status == 200 and "evil.example" in json.loads(body)["errors"][REPLY_BLOCK]
    assert load(services).state == State.CARDED.value

    # The refused text never goes out: the next, clean edit is the one and only reply.
    clean = "Sorry! Log in at https://brand.example/login and try again?"
    submit(web, ModalId.EDIT, conv, plain_text_value(REPLY_BLOCK, REPLY_INPUT, clean))
    eventually(lambda: load(services).state == State.REPLIED.value)
    assert [record.value["text"] for record in bluesky.created("brand.test")] == [clean]
