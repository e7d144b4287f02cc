"""Which review channel and on-call group a conversation goes to: rules, first match wins.

Pure: rules in, a route out. A rule names what it matches (account, platform, triage
category, urgency, language, keyword; several values of one key mean any of them, several
keys mean all of them) and where the conversation goes. The default route catches the rest.
A route without a channel leaves it to the account's review channel, then SLACK_REVIEW_CHANNEL;
one without on-call leaves it to SLACK_ONCALL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MATCH_KEYS = ("account", "platform", "category", "urgency", "language", "keyword")
DEFAULT = "default"


@dataclass(frozen=True)
class Route:
    name: str
    channel: str | None = None
    oncall: tuple[str, ...] = ()
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (match key, values), all must hold

    def matches(self, facts: Facts) -> bool:
        return all(_holds(key, values, facts) for key, values in self.when)


@dataclass(frozen=True)
class Facts:
    """What routing looks at, taken from the conversation once it is triaged."""

    account: str | None
    platform: str
    category: str | None = None
    urgency: str | None = None
    language: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Routes:
    rules: tuple[Route, ...] = ()
    default: Route = Route(DEFAULT)

    def route_for(self, facts: Facts) -> Route:
        return next((rule for rule in self.rules if rule.matches(facts)), self.default)

    def named(self, name: str | None) -> Route:
        """The route a conversation was given; the default when the file no longer has it."""
        return next((rule for rule in self.rules if rule.name == name), self.default)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels routes send to, each once, in the file's order."""
        return tuple(dict.fromkeys(r.channel for r in (*self.rules, self.default) if r.channel))


def destination(routes: Routes, facts: Facts, account_channel: str | None) -> tuple[Route, str | None]:
    """The route and the review channel: the route's, else the account's; None leaves it to
    SLACK_REVIEW_CHANNEL."""
    route = routes.route_for(facts)
    return route, route.channel or account_channel


def _holds(key: str, values: tuple[str, ...], facts: Facts) -> bool:
    if key == "keyword":
        return any(_contains_word(facts.text, word) for word in values)
    if key == "language":  # "en" matches "en-GB" too
        language = (facts.language or "").lower()
        return any(language == v or language.startswith(v + "-") for v in values)
    value = getattr(facts, key)
    return value is not None and value.lower() in values


def _contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None
