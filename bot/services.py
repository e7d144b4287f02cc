"""Everything a command needs, built once from Settings: the database, Slack, the model, platforms."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import Settings
from bot.db import Database
from bot.draft import Prompts, load_prompts
from bot.llm import Drafter
from bot.platforms.base import Platform
from bot.platforms.registry import enabled_platforms
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

    @property
    def rules(self) -> Rulebook:
        return Rulebook(self.db, self.settings.brand_allowed_domains, self.platforms)


def build_services(settings: Settings, *, publisher: Publisher | None = None, platforms: dict | None = None) -> Services:
    from bot.slack.publish import ChannelPacer, SlackPublisher, make_client

    client = None
    if publisher is None:
        settings.require("SLACK_BOT_TOKEN", "SLACK_REVIEW_CHANNEL")
        pacer = ChannelPacer(settings.slack_messages_per_second)  # one per process: every message to a channel shares it
        client = make_client(settings.slack_bot_token, settings.slack_api_url, pacer)
        publisher = SlackPublisher(client, settings.slack_review_channel, pacer)
    return Services(
        settings=settings,
        db=Database(settings.database_url),
        platforms=enabled_platforms(settings) if platforms is None else platforms,
        drafter=Drafter(settings) if settings.model_configured else None,
        prompts=load_prompts(settings),
        publisher=publisher,
        slack_client=client,
    )
