"""Routing rules: first match wins, several values of a key mean any, several keys mean all."""
from __future__ import annotations

from bot.routing import Facts, Route, Routes

SUPPORT = Route("support", "C0SUPPORT", ("S0SUPPORT",), (("category", ("complaint", "question")), ("urgency", ("high",))))
PRESS = Route("press", "C0PRESS", (), (("keyword", ("journalist", "press inquiry")),))
GERMAN = Route("german", "C0DACH", (), (("language", ("de",)),))
MASTODON = Route("mastodon", "C0FEDI", (), (("platform", ("mastodon",)), ("account", ("fedi",))))
ROUTES = Routes((SUPPORT, PRESS, GERMAN, MASTODON), Route("default", "C0SOCIAL", ("U0LEAD",)))


def facts(**values) -> Facts:
    return Facts(**{"account": "main", "platform": "bluesky", **values})


def test_an_urgent_complaint_goes_to_support():
    assert ROUTES.route_for(facts(category="complaint", urgency="high")).name == "support"


def test_every_key_of_a_rule_must_hold():
    assert ROUTES.route_for(facts(category="complaint", urgency="normal")).name == "default"


def test_the_first_matching_rule_wins():
    both = facts(category="question", urgency="high", text="I'm a journalist, is the outage over?")
    assert ROUTES.route_for(both).name == "support"


def test_a_keyword_matches_whole_words_in_any_case():
    assert ROUTES.route_for(facts(text="Press inquiry: your CEO?")).name == "press"
    assert ROUTES.route_for(facts(text="I pressed the button")).name == "default"
    assert ROUTES.route_for(facts(text="journalists love it")).name == "default"


def test_a_language_matches_its_regional_variants():
    assert ROUTES.route_for(facts(language="de-AT")).name == "german"
    assert ROUTES.route_for(facts(language="den")).name == "default"
    assert ROUTES.route_for(facts(language=None)).name == "default"


def test_platform_and_account_together():
    assert ROUTES.route_for(facts(platform="mastodon", account="fedi")).name == "mastodon"
    assert ROUTES.route_for(facts(platform="mastodon", account="other")).name == "default"


def test_unknown_facts_fall_to_the_default_route():
    route = ROUTES.route_for(facts(category=None, urgency=None))
    assert (route.channel, route.oncall) == ("C0SOCIAL", ("U0LEAD",))


def test_a_route_no_longer_in_the_file_is_the_default():
    assert ROUTES.named("support") is SUPPORT
    assert ROUTES.named("gone") is ROUTES.default


def test_channels_lists_each_routed_channel_once():
    assert ROUTES.channels == ("C0SUPPORT", "C0PRESS", "C0DACH", "C0FEDI", "C0SOCIAL")
