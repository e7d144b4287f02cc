"""How close two texts are, shared by approved examples and help articles.

Two ways, as ``OPENAI_EMBEDDING_MODEL`` decides: cosine similarity over unit vectors from
the provider's embeddings endpoint, else the database's own full-text ranking (SQLite
FTS5 ``bm25``, PostgreSQL ``ts_rank``). Rows without a vector of the current model
(stored before it was set, or while the endpoint failed) are still found by full text.
"""
from __future__ import annotations

import logging
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.llm import DraftUnavailable

log = logging.getLogger(__name__)

MAX_QUERY_TERMS = 32

_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_HANDLE = re.compile(r"(?<![\w])@[\w.@-]+")
_WORD = re.compile(r"[^\W_]+")
# Words too common to say two texts are about the same thing. PostgreSQL's 'english'
# configuration drops English ones too; SQLite's bm25 weighs them down by itself.
STOPWORDS = frozenset("""
a an and are as at be but by can could did do does for from had has have how i i'm if in is it its just me my no
not of on or our so that the their them there they this to too was we were what when where which who why will
with would you your yours im ive dont cant thanks thank please hi hello hey
der die das und ist ich du sie es ein eine nicht mit auf für von zu den dem bei wie was wir ihr mein meine
le la les et est je tu il elle un une des du de pas pour avec sur que qui mon ma mes vous nous ce
el los las y es yo tú un una por para con que del lo mi se no
o os as e é eu um uma não com para do da em que meu minha
il lo gli e è io un una non per con che di da mio mia
de het een en ik je jij niet met voor op van dat wat
""".split())


def query_terms(query: str, ignore: set[str] = frozenset()) -> list[str]:
    """The words that say what a text is about: no links, handles, stop words or ``ignore``d words."""
    cleaned = _HANDLE.sub(" ", _URL.sub(" ", query))
    terms = []
    for word in _WORD.findall(cleaned.lower()):
        if len(word) > 1 and not word.isdigit() and word not in STOPWORDS and word not in ignore and word not in terms:
            terms.append(word)
    return terms[:MAX_QUERY_TERMS]


def brand_words(settings) -> set[str]:
    """Every mention names the brand, so its name says nothing about what a mention is about."""
    names = [settings.brand_name or "", *settings.brand_keywords]
    return {word for name in names for word in _WORD.findall(name.lower())}


# ---- vectors -------------------------------------------------------------------


def embedding_model(drafter) -> str | None:
    return getattr(drafter, "embedding_model", None) if drafter is not None else None


def embed(drafter, texts: list[str], *, ranking: str) -> list[list[float]]:
    """Unit vectors for ``texts``, or ``[]`` when no embedding model is set or the endpoint fails
    (then ``ranking``, e.g. "approved examples", is ranked by full text, as the warning says)."""
    if not embedding_model(drafter) or not texts:
        return []
    try:
        return [unit(vector) for vector in drafter.embed(texts)]
    except DraftUnavailable as error:
        log.warning("embeddings unavailable (%s); %s are ranked by full text instead", error, ranking)
        return []


def rank_by_vector(candidates: Iterable[tuple[int, bytes, tuple]], query: list[float], minimum: float) -> list[tuple[int, float]]:
    """``(id, stored vector, tie-break)`` rows by cosine similarity to ``query`` (unit vectors, so a
    dot product), closest first; below ``minimum`` is not similar, whatever the rank."""
    scored = []
    for row_id, blob, tiebreak in candidates:
        vector = unpack(blob)
        if len(vector) != len(query):
            continue
        score = sum(a * b for a, b in zip(query, vector))
        if score >= minimum:
            scored.append((score, tiebreak, row_id))
    scored.sort(reverse=True)
    return [(row_id, score) for score, _, row_id in scored]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def pack(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def unpack(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(blob) // 4}f", blob)


# ---- full text -----------------------------------------------------------------


@dataclass(frozen=True)
class TextIndex:
    """Where a table's text is indexed: a SQLite FTS5 table over it (``content_rowid='id'``), and
    on PostgreSQL a GIN index on ``to_tsvector('english', column)``; see the migrations."""

    table: str
    column: str
    fts_table: str


def rank_by_text(session: Session, index: TextIndex, terms: list[str], *, where: str = "", order: str = "",
                 params: dict | None = None, limit: int = 50) -> list[tuple[int, float]]:
    """Rows of ``index.table`` (alias ``t``) holding any of ``terms``, best ranked first.

    ``where`` (``AND …``) and ``order`` (``, …``) are SQL written by the caller, never user text;
    user text only reaches the query as the bound ``:query``."""
    if not terms:
        return []
    params = {**(params or {}), "limit": limit}
    if session.get_bind().dialect.name == "postgresql":
        params["query"] = " | ".join(terms)
        sql = f"""
            SELECT t.id, ts_rank(to_tsvector('english', t.{index.column}), q) AS score
            FROM {index.table} t, to_tsquery('english', :query) q
            WHERE to_tsvector('english', t.{index.column}) @@ q {where}
            ORDER BY score DESC{order}
            LIMIT :limit"""
    else:
        params["query"] = " OR ".join(f'"{term}"' for term in terms)
        sql = f"""
            SELECT t.id, -bm25({index.fts_table}) AS score
            FROM {index.fts_table} JOIN {index.table} t ON t.id = {index.fts_table}.rowid
            WHERE {index.fts_table} MATCH :query {where}
            ORDER BY score DESC{order}
            LIMIT :limit"""
    return [(row.id, float(row.score)) for row in session.execute(text(sql), params)]
