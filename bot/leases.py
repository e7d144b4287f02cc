"""Claims carry a lease the live process renews, so a dead process's work comes back quickly.

A conversation claimed for drafting (``drafting``) or for its card (``carded`` without a
Slack ts yet) belongs to the process that claimed it while that process renews it: every
third of a lease a daemon thread touches the rows it holds (``updated_at``,
``carding_since``). A process that dies stops renewing, and the next poll cycle of any
process hands its claims back once the lease has run out: within a poll interval or two,
where a fixed ten minutes had to cover the slowest draft. A post of unknown outcome is not
leased here: it keeps its longer wait (``RECONCILE_AFTER``) before the thread check.
"""
from __future__ import annotations

import logging
import threading
import weakref
from datetime import timedelta

from sqlalchemy import update

from bot.models import Conversation, State, utcnow

log = logging.getLogger(__name__)

MINIMUM = timedelta(seconds=10)
MAXIMUM = timedelta(minutes=10)
_ALL: "weakref.WeakKeyDictionary[object, Leases]" = weakref.WeakKeyDictionary()
_ALL_LOCK = threading.Lock()


def lease_length(settings) -> timedelta:
    """Two poll intervals: a claim older than that, not renewed, has lost its process."""
    return min(MAXIMUM, max(MINIMUM, timedelta(seconds=2 * settings.poll_interval_seconds)))


def for_services(services) -> "Leases":
    with _ALL_LOCK:
        leases = _ALL.get(services.db)
        if leases is None:
            leases = _ALL[services.db] = Leases(services.db, lease_length(services.settings))
        return leases


class Leases:
    def __init__(self, db, length: timedelta) -> None:
        self.db, self.length = db, length
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, conversation_ids) -> None:
        with self._lock:
            self._held.update(conversation_ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew_forever, name="leases", daemon=True)
                self._thread.start()

    def drop(self, conversation_id: int) -> None:
        with self._lock:
            self._held.discard(conversation_id)

    def renew(self) -> None:
        with self._lock:
            held = sorted(self._held)  # in one order, as every process locks rows
        if not held:
            return
        now = utcnow()
        with self.db.session() as session:
            session.execute(update(Conversation).where(Conversation.id.in_(held), Conversation.state == State.DRAFTING.value)
                            .values(updated_at=now).execution_options(synchronize_session=False))
            session.execute(update(Conversation).where(Conversation.id.in_(held), Conversation.state == State.CARDED.value,
                                                       Conversation.slack_ts.is_(None))
                            .values(carding_since=now).execution_options(synchronize_session=False))

    def _renew_forever(self) -> None:
        while True:
            self._wake.wait(self.length.total_seconds() / 3)
            try:
                self.renew()
            except Exception as error:  # noqa: BLE001 - a missed renewal is retried; the lease has slack for two
                log.warning("could not renew the claims of this process: %s", type(error).__name__)
