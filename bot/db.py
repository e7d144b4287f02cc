"""Engine and sessions for SQLite (one host) and PostgreSQL (many processes)."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


log = logging.getLogger(__name__)
T = TypeVar("T")
# PostgreSQL aborts one of two transactions that wait on each other (deadlock_detected) or that
# cannot be serialised (serialization_failure); running the loser again is the documented remedy.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
ATTEMPTS = 5


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def one_at_a_time(session, key: int) -> None:
    """Hold PostgreSQL advisory lock ``key`` until this transaction ends, so that processes
    recomputing shared rows (bursts, turns) take turns instead of locking rows in different
    orders. SQLite needs none: BEGIN IMMEDIATE already lets one writer in at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever scheme the operator wrote."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy, not pysqlite, issue BEGIN, so a write lock is taken
        # up front (BEGIN IMMEDIATE) and conditional updates never deadlock.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # autocommit at driver level; see the begin hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class Database:
    """One engine and its session factory, shared by a process."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return is_postgres(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def retry(self, work: Callable[[], T], *, what: str = "a transaction") -> T:
        """Run ``work`` (which opens its own sessions) again when PostgreSQL aborts it for a
        deadlock or a serialization failure; a short random pause lets the winner finish."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return work()
            except DBAPIError as error:
                if not is_retryable(error) or attempt == ATTEMPTS:
                    raise
                log.info("%s was aborted by the database (%s); trying again", what, error.orig.sqlstate)
                time.sleep(random.uniform(0.02, 0.1) * attempt)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("bot.migrations")))
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = url
    return config


def migrate(url: str, to: str = "head") -> None:
    """Bring the schema to revision ``to`` (the newest by default), up or down."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(url)
    if to == "head":
        command.upgrade(config, "head")
        return
    script = ScriptDirectory.from_config(config)
    script.get_revision(to)  # an unknown revision raises here, before anything changes
    below_current = {r.revision for r in script.walk_revisions("base", current_revision(url) or "base")}
    (command.downgrade if to in below_current else command.upgrade)(config, to)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def describe_url(url: str) -> str:
    """Where the data lives, for people: SQLite's absolute file path, or the server without its password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {Path(parsed.database).resolve()}" if parsed.database not in (None, "", ":memory:") else "SQLite in memory"
    return f"PostgreSQL {parsed.set(drivername='postgresql').render_as_string(hide_password=True)}"


class SchemaOutOfDate(Exception):
    """The database is not at the newest migration; ``conversant migrate`` fixes it."""


def check_schema(db: Database, url: str) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        state = "has no tables yet" if current is None else f"is at revision {current}, the newest is {head}"
        raise SchemaOutOfDate(f"the database {state}: run `conversant migrate` first")
