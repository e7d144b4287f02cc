"""Exactly one process runs the scheduled jobs on PostgreSQL: whoever holds an advisory lock.

The lock lives on a connection of its own; if the process dies, PostgreSQL
drops the connection and another worker takes over at its next tick. On
SQLite (one host) every process may run jobs: state changes are conditional
updates, so a second runner changes nothing twice.
"""
from __future__ import annotations

import logging

from sqlalchemy import text

from bot.db import Database

log = logging.getLogger(__name__)

LOCK_KEY = 0x636F6E76  # "conv"


class Leadership:
    def __init__(self, db: Database, key: int = LOCK_KEY, what: str = "runs the scheduled jobs") -> None:
        self.db = db
        self.key, self.what = key, what  # each stream has a lock of its own (bot/streaming.py)
        self._connection = None

    def held(self) -> bool:
        if not self.db.is_postgres:
            return True
        try:
            if self._connection is not None:
                self._connection.execute(text("SELECT 1"))
                return True
            connection = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar():
                log.info("this process now %s", self.what)
                self._connection = connection
                return True
            connection.close()
            return False
        except Exception as error:  # noqa: BLE001 - a lost connection means we no longer hold the lock
            log.warning("lost the scheduler lock (%s); another process may take over", type(error).__name__)
            self.release()
            return False

    def release(self) -> None:
        """Give the lock up now. The connection is invalidated, not pooled: a pooled
        connection would keep holding the session-level lock."""
        if self._connection is not None:
            try:
                self._connection.invalidate()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._connection = None
