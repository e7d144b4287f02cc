"""What makes mentions one burst: the words they share."""
from bot.bursts import similar, words


def test_words_leave_out_links_handles_numbers_and_small_words():
    assert words("@brand.test The app is DOWN again!! https://status.example/1 since 9:00") == frozenset({"app", "down", "since"})


def test_mentions_saying_the_same_thing_are_similar():
    assert similar(words("the app is down again"), words("app down again?? fix it"))
    assert not similar(words("the app is down again"), words("love the new export feature"))
    assert not similar(frozenset(), frozenset())
