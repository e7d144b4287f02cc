"""Which posts of the whole network concern the brand (bot/platforms/streams/brand_filter.py)."""
from __future__ import annotations

import json

import pytest

from bot.platforms.streams.brand_filter import BrandFilter

BRAND = "did:plc:brandbrandbrandbrandbran"
ALICE = "did:plc:alicealicealicealicealic"
BRAND_POST = f"at://{BRAND}/app.bsky.feed.post/3kabc"
OTHER_POST = f"at://{ALICE}/app.bsky.feed.post/3kxyz"


@pytest.fixture
def brand():
    return BrandFilter(BRAND, keywords=("Acme", "Acme Cloud", "アクメ"), domains=("acme.example",))


def post(text="hello", **fields) -> dict:
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-12-03T10:00:00.000Z", **fields}


def facet(feature: dict) -> dict:
    return {"index": {"byteStart": 0, "byteEnd": 5}, "features": [feature]}


def ref(uri: str) -> dict:
    return {"uri": uri, "cid": "bafyreib"}


@pytest.mark.parametrize("record, reason", [
    (post("@brand hi", facets=[facet({"$type": "app.bsky.richtext.facet#mention", "did": BRAND})]), "mention"),
    (post("so true", reply={"root": ref(BRAND_POST), "parent": ref(BRAND_POST)}), "reply"),
    (post("deep in the thread", reply={"root": ref(BRAND_POST), "parent": ref(OTHER_POST)}), "reply"),
    (post("look", embed={"$type": "app.bsky.embed.record", "record": ref(BRAND_POST)}), "quote"),
    (post("look", embed={"$type": "app.bsky.embed.recordWithMedia", "record": {"record": ref(BRAND_POST)}, "media": {}}), "quote"),
    (post("see this", facets=[facet({"$type": "app.bsky.richtext.facet#link", "uri": "https://help.acme.example/x"})]), "keyword"),
    (post("card", embed={"$type": "app.bsky.embed.external", "external": {"uri": "https://acme.example/", "title": "t"}}), "keyword"),
    (post("I love ACME!"), "keyword"),
    (post("acme's new app"), "keyword"),
    (post("#acme rocks"), "keyword"),
    (post("moved to acme cloud today"), "keyword"),
    (post("アクメのアプリが好き"), "keyword"),  # no spaces between Japanese words: matched inside the text
])
def test_posts_about_the_brand_are_kept_with_their_reason(brand, record, reason):
    assert brand.reason(ALICE, record) == reason
    assert brand.might_match(json.dumps({"did": ALICE, "commit": {"record": record}}, ensure_ascii=False))


@pytest.mark.parametrize("record", [
    post("acmeville is a town"),
    post("the acmes of mountains"),
    post("nothing to see"),
    post("link", facets=[facet({"$type": "app.bsky.richtext.facet#link", "uri": "https://notacme.example/"})]),
    post("link", facets=[facet({"$type": "app.bsky.richtext.facet#link", "uri": "https://acme.example.evil.test/"})]),
    post("reply elsewhere", reply={"root": ref(OTHER_POST), "parent": ref(OTHER_POST)}),
    post("@someone", facets=[facet({"$type": "app.bsky.richtext.facet#mention", "did": ALICE})]),
])
def test_other_posts_are_dropped(brand, record):
    assert brand.reason(ALICE, record) is None


def test_the_brands_own_posts_and_malformed_records_are_dropped(brand):
    assert brand.reason(BRAND, post("Acme here")) is None
    for record in (None, [], "text", post(None), post(facets="x", reply=[], embed=3), post(facets=[None, {"features": [None, 1]}])):
        assert brand.reason(ALICE, record) is None


def test_the_raw_precheck_skips_frames_that_cannot_match(brand):
    assert not brand.might_match('{"did":"did:plc:x","commit":{"record":{"text":"good morning"}}}')
    assert brand.might_match('{"commit":{"record":{"text":"GOOD MORNING ACME"}}}')
    assert brand.might_match('{"commit":{"record":{"text":"\\u30a2\\u30af\\u30e1"}}}')  # escaped: parsed to be sure
