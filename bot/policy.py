"""The output policy every reply passes before it can be approved. Pure functions.

A draft that breaks it is flagged on the card and cannot be approved as it
stands; an edited reply is checked again before it is posted.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot import links
from bot.text import HIDDEN_CHARACTERS

if TYPE_CHECKING:
    from bot.models import Conversation
    from bot.platforms.formats import PlatformFormat, PrivateChannel

MASS_PINGS = re.compile(r"(?<![\w])@(everyone|here|channel|all)\b|<!(everyone|here|channel)>", re.I)
MENTION = re.compile(r"(?<![\w@/])@([A-Za-z0-9_][\w.-]*(?:@[\w-]+(?:\.[\w-]+)+)?)")


@dataclass(frozen=True)
class ReplyRules:
    platform_label: str
    limit: int
    length: Callable[[str], int]
    author_handle: str
    allowed_domains: tuple[str, ...]
    platform: str | None = None  # which bare domains and Markdown become links (bot.links.find)
    # A draft grounded in help articles may link one of these and nothing else; None: the domain rule.
    article_urls: tuple[str, ...] | None = None


def reply_rules(platform_format: PlatformFormat, conversation: Conversation, allowed_domains: tuple[str, ...]) -> ReplyRules:
    """The rules a reply to ``conversation`` must meet on its platform."""
    return ReplyRules(
        platform_label=platform_format.label,
        limit=platform_format.limit,
        length=platform_format.length,
        author_handle=conversation.author_handle,
        allowed_domains=allowed_domains,
        platform=platform_format.name,
    )


def private_rules(channel: PrivateChannel, public: ReplyRules) -> ReplyRules:
    """The rules of a private reply: the channel's own limit, the same link and mention rules."""
    return replace(public, platform_label=channel.label, limit=channel.limit, length=channel.length)


def check(text: str, rules: ReplyRules) -> list[str]:
    """Every way ``text`` breaks the policy, as sentences for the card; empty when fine."""
    if not text.strip():
        return ["The reply is empty."]
    problems = []
    length = rules.length(text)
    if length > rules.limit:
        problems.append(f"Too long for {rules.platform_label}: {length}/{rules.limit} characters.")
    found = links.find(text, rules.platform)
    for written in sorted({link.written for link in found if link.host is None}):
        problems.append(f"Has a link that opens no web page on an allowed domain ({written[:80]}).")
    problems += _article_link_problems(found, rules.article_urls) if rules.article_urls is not None else _domain_problems(found, rules)
    pings = sorted({(m.group(1) or m.group(2)).lower() for m in MASS_PINGS.finditer(text)})
    if pings:
        problems.append(f"Pings everyone (@{', @'.join(pings)}).")
    hidden = sorted({f"U+{ord(ch):04X}" for ch in HIDDEN_CHARACTERS.findall(text)})
    if hidden:
        problems.append(f"Has invisible or direction-changing characters ({', '.join(hidden)}); retype the reply without them.")
    author = rules.author_handle.lower().lstrip("@")
    others = sorted({m for m in mentions(text) if m != author and m not in pings})
    if others:
        problems.append(f"Mentions @{', @'.join(others)}; only the author (@{author}) may be mentioned.")
    return problems


def _domain_problems(found: list[links.Link], rules: ReplyRules) -> list[str]:
    allowed = {links.host_of(domain) for domain in rules.allowed_domains}
    return [f"Links to {domain}, which is not in BRAND_ALLOWED_DOMAINS." for domain in
            sorted({link.shown_host.removeprefix("www.") for link in found if link.host and not _allowed(link.host, allowed)})]


def _article_link_problems(found: list[links.Link], article_urls: tuple[str, ...]) -> list[str]:
    """A grounded draft links one of the articles it was given, or nothing: any other page may be invented."""
    given = {links.page_key(url) for url in article_urls}
    pages = {links.page_key(link.href): link.written for link in found if link.host and link.href}
    problems = [f"Links to {written[:80]}, which is not one of the help articles found for this mention."
                for key, written in sorted(pages.items()) if key not in given]
    if len(pages) > 1:
        problems.append(f"Links {len(pages)} pages; a draft may link one help article at most.")
    return problems


def with_article_links(rules: ReplyRules, article_urls: tuple[str, ...] | None) -> ReplyRules:
    """The rules for a model's draft: when it was grounded, only the articles it was given may be linked."""
    return rules if article_urls is None else replace(rules, article_urls=article_urls)


def mentions(text: str) -> list[str]:
    return [m.group(1).rstrip(".").lower() for m in MENTION.finditer(text)]


def _allowed(domain: str, allowed: set[str]) -> bool:
    return any(domain == a or domain.endswith("." + a) for a in allowed)
