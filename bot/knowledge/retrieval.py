"""The help articles that best match a mention, found as approved examples are (``bot.similarity``).

Chunks with a vector of the current embedding model are ranked by cosine similarity; the
others by the database's full-text ranking. An article counts once, by its best chunk.
A match is *good* when its cosine is at least ``GOOD_COSINE``, or, ranked by full text,
when its chunk holds at least two of the query's words (the only one, for a one-word query;
words compared by their first letters, a rough stemming). Only good matches are offered to
the model; when there is none, the prompt asks it to say the team will look into it.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db import Database
from bot.knowledge.models import Article, Chunk
from bot.similarity import (
    TextIndex,
    brand_words,
    embed,
    embedding_model,
    query_terms,
    rank_by_text,
    rank_by_vector,
)

log = logging.getLogger(__name__)

RETRIEVED = 5  # the articles found for a mention: offered to the model when good, and on the card's menu
MIN_COSINE = 0.1  # below this an article is not found at all
GOOD_COSINE = 0.35
MIN_SHARED_TERMS = 2
EXCERPT_CHARS = 700
QUERY_CHARS = 2000
RANKING = "help articles"
TEXT_INDEX = TextIndex(table="article_chunks", column="text", fts_table="article_chunks_fts")
_SUFFIX = re.compile(r"(?:ing|ed|es|s|ions?|ers?|ly)$")
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Match:
    article_id: int
    title: str
    url: str
    excerpt: str  # the best matching chunk, clipped
    score: float  # cosine, or the full-text rank
    good: bool


def find(db: Database, drafter, settings, query: str, k: int = RETRIEVED) -> list[Match]:
    """The ``k`` articles closest to ``query``, best first; ``[]`` when there are none. Never raises:
    a draft without articles is better than no draft."""
    try:
        return _find(db, drafter, settings, query[:QUERY_CHARS], k)
    except Exception:
        log.exception("could not look up help articles; drafting without them")
        return []


def _find(db: Database, drafter, settings, query: str, k: int) -> list[Match]:
    with db.session() as session:
        if not session.scalar(select(func.count(Chunk.id))):
            return []
    model = embedding_model(drafter)
    vectors = embed(drafter, [query], ranking=RANKING) if model else []  # before any transaction: a network call
    terms = query_terms(query, brand_words(settings))
    with db.session() as session:
        ranked = []
        if vectors:
            rows = session.execute(select(Chunk.id, Chunk.embedding).where(Chunk.embedding_model == model, Chunk.embedding.is_not(None))).all()
            ranked = [(chunk_id, score, score >= GOOD_COSINE) for chunk_id, score in
                      rank_by_vector(((r.id, r.embedding, ()) for r in rows), vectors[0], MIN_COSINE)]
        skip_vectors = "AND (t.embedding_model IS NULL OR t.embedding_model != :model)" if vectors else ""
        ranked += [(chunk_id, score, None) for chunk_id, score in
                   rank_by_text(session, TEXT_INDEX, terms, where=skip_vectors, params={"model": model or ""}, limit=100)]
        return _articles(session, ranked, terms, k)


def _articles(session: Session, ranked: list[tuple[int, float, bool | None]], terms: list[str], k: int) -> list[Match]:
    """Each article once, by its best chunk; ``good`` decided by the words shared where no cosine did."""
    if not ranked:
        return []
    chunks = {c.id: c for c in session.scalars(select(Chunk).where(Chunk.id.in_([chunk_id for chunk_id, _, _ in ranked])))}
    best: dict[int, tuple[Chunk, float, bool | None]] = {}
    for chunk_id, score, good in ranked:
        chunk = chunks.get(chunk_id)
        if chunk is not None and chunk.article_id not in best:
            best[chunk.article_id] = (chunk, score, good)
        if len(best) == k:
            break
    articles = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(list(best))))}
    return [
        Match(article_id=article_id, title=articles[article_id].title, url=articles[article_id].url,
              excerpt=_clip(chunk.text), score=round(score, 4),
              good=good if good is not None else shares_enough(terms, chunk.text))
        for article_id, (chunk, score, good) in best.items() if article_id in articles
    ]


def shares_enough(terms: list[str], text: str) -> bool:
    """Whether ``text`` holds at least ``MIN_SHARED_TERMS`` of the query's ``terms`` (all of them when fewer)."""
    stems = {_stem(word) for word in _WORD.findall(text.lower())}
    shared = sum(_stem(term) in stems for term in terms)
    return bool(terms) and shared >= min(MIN_SHARED_TERMS, len(terms))


def _stem(word: str) -> str:
    return _SUFFIX.sub("", word)[:5] if len(word) > 4 else word


def article(db: Database, article_id: int) -> Match | None:
    """One article by its id, as a match a person chose (its beginning as the excerpt)."""
    with db.session() as session:
        found = session.get(Article, article_id)
        if found is None:
            return None
        first = session.scalar(select(Chunk.text).where(Chunk.article_id == article_id).order_by(Chunk.position).limit(1))
        return Match(article_id=found.id, title=found.title, url=found.url, excerpt=_clip(first or found.title), score=0.0, good=True)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"

