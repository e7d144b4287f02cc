"""Grounding in the eval: each brand's help articles, from the links its agents posted.

Every conversation in the data ends with the agent linking the help article that resolved
it. For each brand, the knowledge base is every help link its agents posted anywhere in
the file (links under the brand's domains in ``brands.json``; archive prefixes such as
``https://web.archive.org/web/2019…/`` stripped), titled from the URL's last path segment
(``bot.knowledge.sources.title_from_url``): no page is fetched, so an article is its title.
Each brand gets its own SQLite database in a temporary folder, imported with
``conversant knowledge import``'s code, and drafts are grounded exactly as in production
(``bot.knowledge.grounding.ground``).

Two figures, on the answered customer turns whose agent reply links a help article:

``recall_at_5``
    the agent's article is among the five found for the turn (no model needed; with
    ``OPENAI_EMBEDDING_MODEL`` found by embeddings, else by SQLite's full-text ranking);
``top_1``
    the draft links the agent's article (*n/a* when the model gave no answer).
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine

from bot import links
from bot.db import Database, migrate
from bot.knowledge import store
from bot.knowledge.sources import SourceArticle, title_from_url

ARCHIVE_PREFIX = re.compile(r"^https?://web\.archive\.org/web/[^/]*/", re.I)
K = 5


def help_links(text: str, domains: tuple[str, ...]) -> list[str]:
    """The help links in an agent's reply: archive prefixes stripped, only the brand's domains, each page once."""
    allowed = {links.host_of(domain) for domain in domains}
    found: dict[str, str] = {}
    for link in links.written_links(text):
        url = ARCHIVE_PREFIX.sub("", link.written)
        if not re.match(r"https?://", url, re.I):
            url = "https://" + url
        host = store.host(url)
        if host and any(host == d or host.endswith("." + d) for d in allowed):
            found.setdefault(links.page_key(url), url)
    return list(found.values())


def brand_articles(conversations, brands: dict) -> dict[str, list[SourceArticle]]:
    """Per support account, every help article its agents linked in ``conversations`` (``(n, SampleConversation)``)."""
    articles: dict[str, dict[str, SourceArticle]] = {}
    for _, conversation in conversations:
        domains = brands[conversation.company].domains if conversation.company in brands else ()
        for turn in conversation.turns:
            if turn.role != "agent":
                continue
            for url in help_links(turn.text, domains):
                articles.setdefault(conversation.company, {}).setdefault(
                    links.page_key(url), SourceArticle(url=url, title=title_from_url(url), text=""))
    return {account: list(by_key.values()) for account, by_key in articles.items()}


def same_article(found_urls: list[str], expected: list[str]) -> bool:
    keys = {links.page_key(url) for url in expected}
    return any(links.page_key(url) in keys for url in found_urls)


def linked(draft: str) -> list[str]:
    return [link.href for link in links.find(draft, "x") if link.href]


@dataclass
class KnowledgeBases:
    """One migrated SQLite database per brand in a temporary folder, holding its articles."""

    folder: Path
    databases: dict[str, Database]

    @classmethod
    def build(cls, articles: dict[str, list[SourceArticle]], embedder=None) -> "KnowledgeBases":
        folder = Path(tempfile.mkdtemp(prefix="conversant-eval-kb-"))
        template = folder / "template.db"
        migrate(f"sqlite:///{template}")
        engine = create_engine(f"sqlite:///{template}")
        with engine.connect() as connection:  # fold the WAL into the file, so a copy of the file is the whole database
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
        engine.dispose()
        databases = {}
        for n, (account, brand_articles_) in enumerate(sorted(articles.items())):
            path = folder / f"brand{n}.db"
            shutil.copyfile(template, path)
            databases[account] = Database(f"sqlite:///{path}")
            store.import_articles(databases[account], embedder, brand_articles_, source=f"the links {account}'s agents posted")
        return cls(folder, databases)

    def db(self, account: str) -> Database | None:
        return self.databases.get(account)

    def close(self) -> None:
        for database in self.databases.values():
            database.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)
