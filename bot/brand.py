"""The brand's accounts as they run: each account's adapter (its own login), which account
replies to a conversation, and the brand's other accounts on the same platform."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.accounts import Account
from bot.platforms.base import Platform


@dataclass(frozen=True)
class Brand:
    accounts: tuple[Account, ...]
    adapters: Mapping[str, Platform]  # by account id

    @classmethod
    def one_per_platform(cls, platforms: Mapping[str, Platform]) -> Brand:
        """The single-account configuration: each platform's account is named after it."""
        return cls(tuple(Account(id=name, platform=name) for name in platforms), dict(platforms))

    def first_of_each_platform(self) -> dict[str, Platform]:
        """By platform name: the adapter whose format, stream and Home line speak for the platform."""
        first: dict[str, Platform] = {}
        for account in self.accounts:
            if account.id in self.adapters:
                first.setdefault(account.platform, self.adapters[account.id])
        return first

    def account(self, account_id: str | None) -> Account | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    def on(self, platform: str) -> tuple[Account, ...]:
        """The brand's accounts on ``platform``, in the configured order."""
        return tuple(a for a in self.accounts if a.platform == platform)

    def replying(self, conversation) -> Account | None:
        """The account chosen to reply; for rows from before accounts, the platform's first."""
        chosen = self.account(conversation.account)
        if chosen is not None and chosen.platform == conversation.platform:
            return chosen
        return next(iter(self.on(conversation.platform)), None)

    def adapter(self, conversation) -> Platform | None:
        account = self.replying(conversation)
        return self.adapters.get(account.id) if account else None

    def others(self, conversation) -> list[Platform]:
        """The adapters of the brand's other accounts on the conversation's platform."""
        replying = self.replying(conversation)
        return [self.adapters[a.id] for a in self.on(conversation.platform) if a is not replying and a.id in self.adapters]

    def label(self, account: Account) -> str:
        """``Bluesky``, or ``Bluesky @acmesupport.bsky.social`` when the platform has several accounts."""
        adapter = self.adapters.get(account.id)
        platform = adapter.label if adapter is not None else account.platform
        return f"{platform} {account.label}" if len(self.on(account.platform)) > 1 else platform
