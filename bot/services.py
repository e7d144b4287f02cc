"""Everything a command needs, built once from Settings: the database, Slack, the model, platforms."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.brand import Brand
from bot.config import Settings
from bot.db import Database
from bot.draft import Prompts, load_prompts, with_voice
from bot.llm import Drafter
from bot.platforms.base import Platform
from bot.platforms.registry import account_platforms, enabled_accounts
from bot.redraft import Redrafter
from bot.rulebook import Rulebook


class Publisher(Protocol):
    def post(self, card: dict, *, channel: str | None = None, thread_ts: str | None = None) -> tuple[str, str]: ...
    def update(self, channel: str, ts: str, card: dict) -> None: ...
    def notice(self, text: str) -> None: ...
    def tell(self, channel: str, user: str, text: str) -> None: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    platforms: dict[str, Platform]
    drafter: Drafter | None
    prompts: Prompts
    publisher: Publisher
    slack_client: object | None = None
    brand: Brand | None = None  # the accounts and their adapters; None: one account per platform (``platforms``)
    voices: dict[str, Prompts] = field(default_factory=dict)  # by account id, for accounts with their own voice file

    def __post_init__(self) -> None:
        if self.brand is None:
            self.brand = Brand.one_per_platform(self.platforms)

    def prompts_for(self, conversation) -> Prompts:
        """The prompts in the voice of the account that replies."""
        account = self.brand.replying(conversation)
        return self.voices.get(account.id, self.prompts) if account else self.prompts

    @property
    def rules(self) -> Rulebook:
        return Rulebook(self.db, self.settings.brand_allowed_domains, self.platforms, self.brand,
                        dict(self.settings.slack_signoffs or ()))

    @property
    def redrafter(self) -> Redrafter:
        return Redrafter(self.db, self.drafter, self.rules, self.prompts_for, self.settings)


def build_services(settings: Settings, *, publisher: Publisher | None = None, platforms: dict | None = None) -> Services:
    from bot.slack.publish import ChannelPacer, SlackPublisher, make_client

    client = None
    if publisher is None:
        settings.require("SLACK_BOT_TOKEN", "SLACK_REVIEW_CHANNEL")
        pacer = ChannelPacer(settings.slack_messages_per_second)  # one per process: every message to a channel shares it
        client = make_client(settings.slack_bot_token, settings.slack_api_url, pacer)
        publisher = SlackPublisher(client, settings.slack_review_channel, pacer)
    brand = None
    if platforms is None:
        adapters = account_platforms(settings)
        brand = Brand(enabled_accounts(settings), adapters)
        platforms = brand.first_of_each_platform()
    prompts = load_prompts(settings)
    return Services(
        settings=settings,
        db=Database(settings.database_url),
        platforms=platforms,
        brand=brand,
        drafter=Drafter(settings) if settings.model_configured else None,
        prompts=prompts,
        voices={a.id: with_voice(prompts, a.voice) for a in brand.accounts if a.voice} if brand else {},
        publisher=publisher,
        slack_client=client,
    )
