"""Fetch mentions for one brand account and store the new ones with the account's cursors.

A post that mentions two of the brand's accounts reaches both; it is stored once (the first
fetch wins), as one conversation, replied to by the account it mentions first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.accounts import Account, first_mentioned
from bot.db import Database
from bot.models import Conversation, PlatformCursor, State, utcnow
from bot.platforms.base import Mention, Platform, PlatformError

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    platform: str  # the account's id: the platform's name in the single-account configuration
    fetched: int = 0
    new: int = 0
    errors: list[PlatformError] = field(default_factory=list)


def ingest(db: Database, platform: Platform, *, first_run_lookback: timedelta, account: Account | None = None,
           siblings: tuple[Account, ...] = ()) -> IngestReport:
    """One account's new mentions into the database; a feed read for the first time goes back
    ``first_run_lookback``. ``siblings``: the brand's accounts on the same platform, to tell
    which one a mention names first. Raises PlatformError when nothing could be read."""
    key = account.id if account else platform.name
    report = IngestReport(key)
    with db.session() as session:
        cursors = load_cursors(session, key)
    first_run_since = utcnow() - first_run_lookback
    result = platform.fetch_mentions(cursors, first_run_since)
    report.fetched = len(result.mentions)
    report.errors = result.errors

    def store() -> int:
        with db.session() as session:
            # Mentions and cursors commit together: a crash here repeats the fetch, never skips it.
            new = insert_mentions(session, result.mentions, account=account, siblings=siblings)
            save_cursors(session, key, result.cursors)
        return new

    report.new = db.retry(store, what=f"storing {key} mentions")
    log.info("%s: %d fetched, %d new", key, report.fetched, report.new)
    return report


def replying_account(mention: Mention, fetched_by: Account | None, siblings: tuple[Account, ...]) -> str | None:
    """The account named first in the post; else (a keyword, a reply in a thread) the one that found it."""
    named = first_mentioned(siblings, mention.text) if len(siblings) > 1 else None
    chosen = named or fetched_by
    return chosen.id if chosen else None


def load_cursors(session: Session, account: str) -> dict[str, dict]:
    rows = session.scalars(select(PlatformCursor).where(PlatformCursor.account == account))
    return {row.feed: row.value for row in rows}


def save_cursors(session: Session, account: str, cursors: dict[str, dict]) -> None:
    """Upsert each feed's cursor: one statement, no read first."""
    if not cursors:
        return
    now = utcnow()
    statement = _insert(session, PlatformCursor)
    statement = statement.on_conflict_do_update(
        index_elements=["account", "feed"], set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at}
    )
    # In one order (by feed), as every process writes them: rows locked in different orders deadlock.
    session.execute(statement, [{"account": account, "feed": feed, "value": cursors[feed], "updated_at": now} for feed in sorted(cursors)])


def insert_mentions(session: Session, mentions: list[Mention], *, account: Account | None = None,
                    siblings: tuple[Account, ...] = ()) -> int:
    """Insert the mentions not stored yet; returns how many were new.

    Most of a page was stored by an earlier poll (adapters re-read behind their
    watermark), so the stored ones are looked up first with one query and only
    the rest are inserted. The insert keeps ON CONFLICT DO NOTHING: another
    process may store the same mention in between, and the unique constraint
    decides who did.
    """
    fresh = _not_stored(session, mentions)
    if not fresh:
        return 0
    now = utcnow()
    new = State.NEW.value
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
            "language": m.language,
            "account": replying_account(m, account, siblings),
            "posted_at": m.created_at,
            "received_at": now,
            "updated_at": now,
            "state": new,
            "policy_problems": [],
            "post_attempts": 0,
        }
        # In one order, as every process inserts them: two pollers inserting the same burst in
        # different orders wait on each other's unique-index entries (PostgreSQL: deadlock).
        for m in sorted(fresh, key=lambda m: (m.platform, m.external_id))
    ]
    statement = _insert(session, Conversation).on_conflict_do_nothing(index_elements=["platform", "external_id"])
    result = session.execute(statement.returning(Conversation.id), rows)
    return len(result.all())


LOOKUP_CHUNK = 500  # ids per lookup query (SQLite allows 32,766 bound parameters; PostgreSQL gets one array)


def _not_stored(session: Session, mentions: list[Mention]) -> list[Mention]:
    """The mentions whose (platform, external_id) is not in the database, each once."""
    unique: dict[tuple[str, str], Mention] = {}
    for mention in mentions:
        unique.setdefault((mention.platform, mention.external_id), mention)
    postgres = session.get_bind().dialect.name == "postgresql"
    stored: set[tuple[str, str]] = set()
    for platform in {key[0] for key in unique}:
        ids = [external_id for p, external_id in unique if p == platform]
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start:start + LOOKUP_CHUNK]
            # One array parameter on PostgreSQL: a short statement the driver parses (and caches) cheaply.
            matches = Conversation.external_id == any_(bindparam("ids", chunk, type_=ARRAY(String))) if postgres \
                else Conversation.external_id.in_(chunk)
            found = session.scalars(select(Conversation.external_id).where(Conversation.platform == platform, matches))
            stored.update((platform, external_id) for external_id in found)
    return [mention for key, mention in unique.items() if key not in stored]


def _insert(session: Session, table):
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)
