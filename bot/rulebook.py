"""The reply rules in force: each platform's format as its adapter knows it (no network), the
allowed link domains (the replying account's, else the brand's) and those of its imported help
articles; and which account's adapter posts a conversation's reply."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot import policy, signoffs
from bot.brand import Brand
from bot.db import Database
from bot.knowledge import store as knowledge
from bot.models import Conversation
from bot.platforms.base import Platform
from bot.platforms.formats import PlatformFormat, format_for


@dataclass(frozen=True)
class Rulebook:
    db: Database
    allowed_domains: tuple[str, ...]  # BRAND_ALLOWED_DOMAINS
    platforms: Mapping[str, Platform]  # the enabled ones; a platform's format may change after it logs in
    brand: Brand | None = None  # the accounts; None: one per platform, the adapters above
    signoffs: Mapping[str, str] = field(default_factory=dict)  # SLACK_SIGNOFFS: approver's user ID → initials

    @property
    def accounts(self) -> Brand:
        return self.brand or Brand.one_per_platform(self.platforms)

    def adapter(self, conversation: Conversation) -> Platform | None:
        """The adapter of the account that replies to ``conversation``."""
        return self.accounts.adapter(conversation)

    def format(self, name: str) -> PlatformFormat:
        platform = self.platforms.get(name)
        return platform.format if platform is not None else format_for(name)

    def reply(self, conversation: Conversation) -> policy.ReplyRules:
        """What any reply to ``conversation`` must meet: links only to the allowed domains and
        those of the imported help articles."""
        account = self.accounts.replying(conversation)
        own = account.allowed_domains if account and account.allowed_domains else self.allowed_domains
        allowed = tuple(dict.fromkeys(own + knowledge.domains(self.db)))
        return policy.reply_rules(self.format(conversation.platform), conversation, allowed)

    def draft(self, conversation: Conversation, article_urls: tuple[str, ...] | None) -> policy.ReplyRules:
        """What the model's draft must meet: grounded in help articles, it may link only those it was given."""
        return policy.with_article_links(self.reply(conversation), article_urls)

    def private(self, conversation: Conversation) -> policy.ReplyRules | None:
        """What a private reply to ``conversation`` must meet; None where the platform has none."""
        channel = self.format(conversation.platform).private
        return policy.private_rules(channel, self.reply(conversation)) if channel else None

    def compose(self, conversation: Conversation, text: str) -> str:
        """The reply as it will be posted (Mastodon's starts with the author's @acct)."""
        platform = self.adapter(conversation)
        return platform.compose_reply(conversation.thread_ref, text) if platform is not None else text

    def signed(self, text: str, user: str) -> str:
        """The reply as ``user`` sends it: with their sign-off, when they have one."""
        return signoffs.sign(text, self.signoffs.get(user))
