"""The knowledge base in the database: import (add, update, remove), and what it holds.

An import is the whole knowledge base: articles in it are added or, when their title or
text changed, updated; articles not in it are removed. It runs in one transaction, so a
failed import leaves the knowledge base as it was. With ``OPENAI_EMBEDDING_MODEL`` set,
new chunks (and older ones without a vector of that model) are embedded; when the
endpoint fails the import still completes and those chunks are found by full text.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update

from bot import links
from bot.db import Database
from bot.knowledge.models import IMPORT_STATE_KEY, Article, Chunk
from bot.knowledge.sources import SourceArticle
from bot.models import AppState, utcnow
from bot.similarity import embed, embedding_model, pack

CHUNK_CHARS = 1200
EMBED_BATCH = 64
RANKING = "help articles"


@dataclass(frozen=True)
class ImportSummary:
    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int = 0  # chunks given a vector in this import

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged

    def line(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.removed} removed, {self.unchanged} unchanged; "
                f"{self.total} article{'s' if self.total != 1 else ''} in the knowledge base")


@dataclass(frozen=True)
class Status:
    articles: int
    last_import: datetime | None
    source: str | None


def import_articles(db: Database, drafter, articles: list[SourceArticle], *, source: str, now: datetime | None = None) -> ImportSummary:
    """Make the knowledge base hold exactly ``articles`` (by URL); see the module docstring."""
    now = now or utcnow()
    wanted = {links.page_key(a.url): a for a in articles}
    counts = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
    with db.session() as session:
        stored = {links.page_key(a.url): a for a in session.scalars(select(Article))}
        gone = [article.id for key, article in stored.items() if key not in wanted]
        if gone:
            session.execute(delete(Chunk).where(Chunk.article_id.in_(gone)))
            session.execute(delete(Article).where(Article.id.in_(gone)))
        counts["removed"] = len(gone)
        for key, incoming in wanted.items():
            digest = content_hash(incoming)
            article = stored.get(key)
            if article is not None and article.content_hash == digest and article.url == incoming.url:
                counts["unchanged"] += 1
                continue
            if article is None:
                article = Article(url=incoming.url)
                session.add(article)
                counts["added"] += 1
            else:
                session.execute(delete(Chunk).where(Chunk.article_id == article.id))
                counts["updated"] += 1
            article.url, article.host = incoming.url, host(incoming.url)
            article.title, article.text, article.content_hash, article.imported_at = incoming.title, incoming.text, digest, now
            session.flush()
            session.add_all(Chunk(article_id=article.id, position=n, text=piece) for n, piece in enumerate(chunks(incoming)))
        session.merge(AppState(key=IMPORT_STATE_KEY, value=json.dumps({"at": now.isoformat(), "source": source, **counts}), updated_at=now))
    embedded = _embed_chunks(db, drafter)
    return ImportSummary(**counts, embedded=embedded)


def host(url: str) -> str:
    """The domain a browser opens for ``url`` (punycode, lower case), without ``www.``."""
    found = links.find(url)
    return (found[0].host or "").removeprefix("www.") if found else ""


def content_hash(article: SourceArticle) -> str:
    return hashlib.sha256(f"{article.title}\n{article.text}".encode("utf-8")).hexdigest()


def chunks(article: SourceArticle, size: int = CHUNK_CHARS) -> list[str]:
    """The article in pieces of about ``size`` characters, split between paragraphs (or words),
    each starting with the title so that a piece is understood, and matched, on its own."""
    pieces, current = [], ""
    for paragraph in re.split(r"\n\s*\n", article.text.strip()):
        paragraph = " ".join(paragraph.split())
        while len(paragraph) > size:
            cut = paragraph.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            pieces.append(paragraph[:cut])
            paragraph = paragraph[cut:].strip()
        if current and len(current) + len(paragraph) + 2 > size:
            pieces.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return [f"{article.title}\n\n{piece}" for piece in pieces] or [article.title]


def _embed_chunks(db: Database, drafter) -> int:
    """Vectors for every chunk without one of the current embedding model, in batches; never raises."""
    model = embedding_model(drafter)
    if not model:
        return 0
    done = 0
    while True:
        with db.session() as session:
            batch = session.execute(
                select(Chunk.id, Chunk.text).where(or_(Chunk.embedding_model.is_(None), Chunk.embedding_model != model))
                .order_by(Chunk.id).limit(EMBED_BATCH)
            ).all()
        vectors = embed(drafter, [row.text for row in batch], ranking=RANKING) if batch else []
        if not vectors:
            return done
        with db.session() as session:
            for row, vector in zip(batch, vectors):
                session.execute(update(Chunk).where(Chunk.id == row.id).values(embedding=pack(vector), embedding_model=model))
        done += len(batch)


def status(db: Database) -> Status:
    """How many articles there are, and when and from where they were last imported."""
    with db.session() as session:
        count = session.scalar(select(func.count(Article.id))) or 0
        row = session.get(AppState, IMPORT_STATE_KEY)
    if row is None:
        return Status(count, None, None)
    value = json.loads(row.value)
    return Status(count, datetime.fromisoformat(value["at"]), value.get("source"))


def domains(db: Database) -> tuple[str, ...]:
    """The domains of the imported articles: a draft may link to them."""
    with db.session() as session:
        return tuple(sorted(session.scalars(select(Article.host).distinct())))
