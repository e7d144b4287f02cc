"""The harness works: a mention with real facets reaches the brand, and its reply threads under it."""
from atproto import models

from tests.integration.bsky_network import post_mention

LINK = "https://example.com/launch?ref=bsky"
# Emoji and CJK before the link make UTF-8 byte offsets differ from character offsets.
TEXT = f"Hey @brand.test 👋🏽 新しいの見た？ {LINK} 🎉"
LINK_FACET = "app.bsky.richtext.facet#link"
MENTION_FACET = "app.bsky.richtext.facet#mention"


def facet(record: dict, kind: str) -> dict:
    return next(f for f in record["facets"] if f["features"][0]["$type"] == kind)


def test_mention_notifies_brand_and_reply_threads_under_it(bsky_network):
    alice = bsky_network.login("alice.test")
    brand = bsky_network.login("brand.test")
    brand_did = bsky_network.accounts["brand.test"][0]

    post = post_mention(alice, TEXT)
    bsky_network.process_all()

    notifications = brand.app.bsky.notification.list_notifications().notifications
    assert [n.reason for n in notifications if n.uri == post.uri] == ["mention"]

    # Read from the AppView itself: through the PDS, alice's own records show before indexing.
    record = bsky_network.appview_thread(post.uri)["thread"]["post"]["record"]
    encoded = TEXT.encode()
    link = facet(record, LINK_FACET)
    assert link["features"][0]["uri"] == LINK
    assert link["index"]["byteStart"] == encoded.index(LINK.encode())
    assert encoded[link["index"]["byteStart"]:link["index"]["byteEnd"]] == LINK.encode()
    mention = facet(record, MENTION_FACET)
    assert mention["features"][0]["did"] == brand_did
    assert encoded[mention["index"]["byteStart"]:mention["index"]["byteEnd"]] == b"@brand.test"

    ref = models.create_strong_ref(post)
    reply = brand.send_post("Thanks, Alice! 🙏", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
    bsky_network.process_all()

    thread = bsky_network.appview_thread(post.uri)["thread"]
    [child] = thread["replies"]
    assert child["post"]["uri"] == reply.uri
    assert child["post"]["author"]["did"] == brand_did
    refs = child["post"]["record"]["reply"]
    for part in ("root", "parent"):
        assert (refs[part]["uri"], refs[part]["cid"]) == (post.uri, post.cid)
