"""The knowledge base's tables: one row per help article, its text split into chunks."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.models import Base, UTCDateTime

IMPORT_STATE_KEY = "knowledge_import"  # app_state: JSON {"at", "source", "added", "updated", "removed", "unchanged"}


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)  # as a browser reads it (links.page_key)
    host: Mapped[str] = mapped_column(String(255), index=True)  # its domain, allowed in links
    title: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))  # sha256 of title and text: unchanged ones are left alone
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when this version arrived


class Chunk(Base):
    """A piece of an article (with its title), the unit that is matched against mentions."""

    __tablename__ = "article_chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # unit vector, little-endian float32
    embedding_model: Mapped[str | None] = mapped_column(String(200))
