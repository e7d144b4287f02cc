"""Fetch mentions from one platform and store the new ones with the platform's cursors."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.models import Conversation, PlatformCursor, State, utcnow
from bot.platforms.base import Mention, Platform, PlatformError
from bot.services import Services

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    platform: str
    fetched: int = 0
    new: int = 0
    errors: list[PlatformError] = field(default_factory=list)


def ingest(services: Services, platform: Platform) -> IngestReport:
    """One platform's new mentions into the database. Raises PlatformError when nothing could be read."""
    report = IngestReport(platform.name)
    with services.db.session() as session:
        cursors = load_cursors(session, platform.name)
    first_run_since = utcnow() - timedelta(hours=services.settings.first_run_lookback_hours)
    result = platform.fetch_mentions(cursors, first_run_since)
    report.fetched = len(result.mentions)
    report.errors = result.errors
    with services.db.session() as session:
        # Mentions and cursors commit together: a crash here repeats the fetch, never skips it.
        report.new = insert_mentions(session, result.mentions)
        save_cursors(session, platform.name, result.cursors)
    log.info("%s: %d fetched, %d new", platform.name, report.fetched, report.new)
    return report


def load_cursors(session: Session, platform: str) -> dict[str, dict]:
    rows = session.scalars(select(PlatformCursor).where(PlatformCursor.platform == platform))
    return {row.feed: row.value for row in rows}


def save_cursors(session: Session, platform: str, cursors: dict[str, dict]) -> None:
    for feed, value in cursors.items():
        session.merge(PlatformCursor(platform=platform, feed=feed, value=value, updated_at=utcnow()))


def insert_mentions(session: Session, mentions: list[Mention]) -> int:
    """Insert the mentions not stored yet; returns how many were new."""
    if not mentions:
        return 0
    now = utcnow()
    rows = [
        {
            "platform": m.platform,
            "external_id": m.external_id,
            "thread_key": m.thread_key,
            "thread_ref": m.thread_ref,
            "reason": m.reason,
            "author_id": m.author_id,
            "author_handle": m.author_handle,
            "author_name": m.author_name,
            "text": m.text,
            "url": m.url,
            "parent_text": m.parent_text,
            "posted_at": m.created_at,
            "received_at": now,
            "updated_at": now,
            "state": State.NEW.value,
            "policy_problems": [],
            "post_attempts": 0,
        }
        for m in mentions
    ]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Conversation).on_conflict_do_nothing(index_elements=["platform", "external_id"])
    result = session.execute(statement.returning(Conversation.id), rows)
    return len(result.all())
