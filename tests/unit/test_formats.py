"""Per-platform facts: labels, limits, how length is counted, how a reply is composed."""
from bot.platforms.formats import BLUESKY, FORMATS, MASTODON, REDDIT, X, format_for, label, mastodon


def test_each_platform_has_its_label_and_limit():
    assert {name: (f.label, f.limit) for name, f in FORMATS.items()} == {
        "bluesky": ("Bluesky", 300), "mastodon": ("Mastodon", 500), "x": ("X", 280), "reddit": ("Reddit", 10_000),
    }
    assert label("mastodon") == "Mastodon"


def test_an_unknown_platform_counts_graphemes_against_300():
    unknown = format_for("threads")
    assert (unknown.label, unknown.limit, unknown.length("👩‍👩‍👧 hi")) == ("threads", 300, 4)


def test_length_is_counted_as_each_platform_counts_it():
    assert BLUESKY.length("👍🏽 ok") == 4  # graphemes
    assert REDDIT.length("ü" * 10) == 10
    assert X.length("see https://example.com/a/very/long/path") == 4 + 23  # t.co wraps every link
    assert MASTODON.length("see https://example.com/a/very/long/path") == 4 + 23
    assert MASTODON.length("@carol@other.social hi") == len("@carol hi")


def test_a_mastodon_server_sets_its_own_limit_and_link_length():
    server = mastodon(limit=60, url_characters=30)
    assert server.limit == 60 and server.length("see https://example.com") == 4 + 30


def test_only_mastodon_replies_start_with_the_author():
    assert MASTODON.compose("Thanks!", "alice@example.social") == "@alice@example.social Thanks!"
    assert MASTODON.compose("@alice@example.social Thanks!", "@alice@example.social") == "@alice@example.social Thanks!"
    assert MASTODON.compose("@alice@example.socialite hi", "alice@example.social").startswith("@alice@example.social @alice")
    assert BLUESKY.compose("Thanks!", "alice.test") == X.compose("Thanks!", "alice") == "Thanks!"
