"""Streams into ingest: mentions pushed by a platform are stored, then carded at once.

One ``StreamRunner`` thread per stream. It holds the stream's own advisory lock
on PostgreSQL, so one process of the deployment consumes each stream, and:

- resumes from the cursor stored with the mentions it produced (one transaction,
  so a crash repeats a few events, never skips one; the unique constraint drops repeats);
- on a gap the stream cannot replay (first start, down longer than its replay
  window) runs one polling pass of that platform first, so nothing is missed;
- reconnects with backoff when the connection fails, tells Slack once when the
  stream is down (polling at POLL_INTERVAL_SECONDS carries on meanwhile) and
  once when it is back;
- keeps its state for Home and ``/conversant status`` (streaming or polling,
  lag, reconnects in the last hour) in ``app_state``.

New mentions wake the ``Carder``, which triages, drafts and cards them with
the poll cycle's own steps and limits, without waiting for the next cycle.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.accounts import Account
from bot.ingest import ingest, insert_mentions, load_cursors, save_cursors
from bot.jobs.leader import LOCK_KEY, Leadership
from bot.models import AppState, get_pause, utcnow
from bot.platforms.base import PlatformError
from bot.platforms.streams.base import MentionStream, StreamBatch
from bot.services import Services

log = logging.getLogger(__name__)

BACKOFF = (1, 2, 5, 10, 30)  # seconds before each reconnect; the last repeats
DOWN_NOTICE_AFTER = 3  # failed connects in a row before Slack hears about it (a blip is not news)
STATUS_EVERY = 5.0  # seconds between two writes of the stream's state while events arrive
HEARTBEAT = 30.0  # and at least this often while it runs, so Home can tell a live consumer from a dead one
STALE_STATE = timedelta(minutes=2)  # a state older than this was left by a consumer that is gone
RECONNECTS_KEPT = timedelta(hours=1)


def feed_name(stream: MentionStream) -> str:
    return f"stream:{stream.source}"


def status_key(account: str) -> str:
    """Where a stream's state is kept: by account id (the platform's name when it has one account)."""
    return f"stream:{account}"


@dataclass
class StreamState:
    """What Home and `/conversant status` show about one platform's stream."""

    source: str
    state: str = "connecting"  # streaming | polling (the stream is down) | standby (another process has it)
    newest_at: str | None = None  # ISO time of the newest event read
    reconnects: list[str] = field(default_factory=list)  # ISO times, the last hour
    error: str | None = None
    updated_at: str | None = None

    def lag_seconds(self, now: datetime) -> float | None:
        return max(0.0, (now - datetime.fromisoformat(self.newest_at)).total_seconds()) if self.newest_at else None

    def reconnects_last_hour(self, now: datetime) -> int:
        return sum(1 for at in self.reconnects if now - datetime.fromisoformat(at) <= RECONNECTS_KEPT)


def read_states(services: Services) -> dict[str, StreamState]:
    """Each stream's state, by account id (the platform's name when it has one account)."""
    from sqlalchemy import select

    with services.db.session() as session:
        rows = session.scalars(select(AppState).where(AppState.key.like("stream:%"))).all()
    states = {}
    for row in rows:
        try:
            states[row.key.split(":", 1)[1]] = StreamState(**json.loads(row.value))
        except (ValueError, TypeError):
            continue
    return states


class Carder:
    """Triage, draft and card what the streams stored, as soon as it arrives, one pass at a time."""

    SETTLE = 0.2  # seconds to wait for the rest of a burst of arrivals before a pass

    def __init__(self, services: Services) -> None:
        self.services = services
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.passes = 0
        self._thread = threading.Thread(target=self._loop, name="carder", daemon=True)

    def start(self) -> "Carder":
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            time.sleep(self.SETTLE)
            self._wake.clear()
            try:
                card_waiting(self.services)
            except Exception:  # noqa: BLE001 - the poll cycle picks up whatever this pass left
                log.exception("carding streamed mentions failed; the next poll cycle carries on")
            self.passes += 1


def card_waiting(services: Services) -> None:
    """The poll cycle's steps after ingest, for mentions already stored: turns, bursts, draft, card."""
    from bot.pipeline import CYCLE_END, CYCLE_SHARE, CycleReport, card_stored

    with services.db.session() as session:
        if get_pause(session) is not None:
            return  # stored; carded by the first cycle after `/conversant resume`
    report = CycleReport()
    started, interval = time.monotonic(), services.settings.poll_interval_seconds
    card_stored(services, report, until=started + interval * CYCLE_SHARE, stop=started + interval * CYCLE_END)
    log.info("streamed mentions: %d drafted, %d without a draft, %d skipped, %d carded",
             report.drafted, report.without_draft, report.skipped, report.carded)


class StreamRunner:
    """Consume one stream for as long as the process runs (see the module's docstring)."""

    def __init__(self, services: Services, stream: MentionStream, *, account: Account | None = None, on_new=None,
                 leadership: Leadership | None = None, backoff: tuple[float, ...] = BACKOFF) -> None:
        self.services, self.stream = services, stream
        self.siblings = services.brand.on(stream.platform)
        self.account = account or next(iter(self.siblings), None)  # whose mentions it reads: the platform's first by default
        self.key = self.account.id if self.account else stream.platform  # its cursors, status and lock
        self.platform = services.brand.adapters.get(self.key) or services.platforms[stream.platform]
        self.label = services.brand.label(self.account) if self.account else self.platform.label
        self.feed = feed_name(stream)
        self.on_new = on_new or (lambda: None)
        self.leadership = leadership or Leadership(services.db, key=stream_lock_key(self.key, stream),
                                                    what=f"consumes the {self.label} {stream.source} stream")
        self.backoff = backoff
        self.state = StreamState(source=stream.source)
        self.gap_polls = 0  # polling passes run for gaps the stream could not replay
        self._stop = threading.Event()
        self._failures = 0
        self._told_down = False
        self._status_written = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"stream-{self.key}-{stream.source}", daemon=True)

    def start(self) -> "StreamRunner":
        self._thread.start()
        threading.Thread(target=self._heartbeat, name=f"stream-{self.key}-{self.stream.source}-state", daemon=True).start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            if self.state.state in ("streaming", "polling"):
                self._write_state()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)
        self.leadership.release()

    def _loop(self) -> None:
        connected_once = False
        while not self._stop.is_set():
            if not self.leadership.held():
                self.state.state = "standby"  # not saved: the process that holds the stream reports it
                self._stop.wait(5)
                continue
            try:
                cursor = self._cursor()
                if connected_once:
                    self.state.reconnects.append(utcnow().isoformat())
                    self._write_state()
                connected_once = True
                self.stream.run(cursor, self._deliver, self._stop)
            except PlatformError as error:
                self._failed(error)
            except Exception as error:  # noqa: BLE001 - a bug in one frame must not end the stream for good
                log.exception("%s: the %s stream stopped on an unexpected error", self.stream.platform, self.stream.source)
                self._failed(error)

    def _cursor(self) -> dict | None:
        """The stored cursor, or None after a gap the stream cannot replay (then one poll fills it)."""
        with self.services.db.session() as session:
            cursor = load_cursors(session, self.key).get(self.feed)
        at = _parse(cursor.get("at")) if cursor else None
        if at is not None and utcnow() - at <= self.stream.replay_window:
            return cursor
        why = "first start" if cursor is None else f"stream last read {at:%Y-%m-%d %H:%M} UTC, beyond its replay window"
        log.info("%s: %s; one polling pass fills the gap before streaming", self.platform.name, why)
        self._poll_gap()
        return None

    def _poll_gap(self) -> None:
        from bot.pipeline import record_platform_status

        try:
            report = ingest(self.services.db, self.platform, first_run_lookback=self.services.settings.first_run_lookback,
                            account=self.account, siblings=self.siblings)
        except PlatformError as error:
            log.warning("%s: the polling pass for the gap failed (%s); the poll cycle tries again", self.platform.name, error)
            record_platform_status(self.services, self.label, self.key, error)
            return
        record_platform_status(self.services, self.label, self.key, report.errors[0] if report.errors else None)
        self.gap_polls += 1
        if report.new:
            self.on_new()

    def _deliver(self, batch: StreamBatch) -> None:
        with self.services.db.session() as session:
            # One transaction: the cursor never moves past a mention that is not stored.
            new = insert_mentions(session, batch.mentions, account=self.account, siblings=self.siblings)
            if batch.cursor is not None:  # None: the stream just connected, nothing read yet
                save_cursors(session, self.key, {self.feed: batch.cursor})
        if self._failures or self.state.state != "streaming":
            self._recovered()
        if batch.gap:
            self._poll_gap()
        if batch.newest_at:
            self.state.newest_at = batch.newest_at.isoformat()
        if new:
            log.info("%s: %d new mentions from %s", self.platform.name, new, self.stream.source)
            self.on_new()
        if time.monotonic() - self._status_written >= STATUS_EVERY:
            self._write_state()

    def _failed(self, error: BaseException) -> None:
        self._failures += 1
        message = str(error) if isinstance(error, PlatformError) else type(error).__name__
        log.warning("%s: %s stream failed (%s); reconnecting", self.platform.name, self.stream.source, message)
        self.state.error = message
        self._set_state("polling")
        if self._failures >= DOWN_NOTICE_AFTER and not self._told_down:
            self._told_down = self._notice(
                f":warning: {self.label}: the {self.stream.source} stream is down ({message}). "
                f"Conversant polls every {self.services.settings.poll_interval_seconds} s meanwhile and reconnects by itself."
            )
        self._stop.wait(self.backoff[min(self._failures, len(self.backoff)) - 1])

    def _recovered(self) -> None:
        if self._told_down:
            self._notice(f":white_check_mark: {self.label}: the {self.stream.source} stream is back; mentions are carded as they arrive.")
        self._failures, self._told_down, self.state.error = 0, False, None
        self._set_state("streaming")

    def _notice(self, text: str) -> bool:
        try:
            self.services.publisher.notice(text)
            return True
        except Exception as error:  # noqa: BLE001 - Slack down too: the log has it, try again next failure
            log.warning("could not tell Slack about the stream (%s)", type(error).__name__)
            return False

    def _set_state(self, state: str) -> None:
        changed = self.state.state != state
        self.state.state = state
        if changed:
            self._write_state()

    def _write_state(self) -> None:
        now = utcnow()
        self.state.reconnects = [at for at in self.state.reconnects if now - datetime.fromisoformat(at) <= RECONNECTS_KEPT]
        self.state.updated_at = now.isoformat()
        value = json.dumps(self.state.__dict__)
        try:
            with self.services.db.session() as session:
                row = session.get(AppState, status_key(self.key))
                if row is None:
                    session.add(AppState(key=status_key(self.key), value=value, updated_at=now))
                else:
                    row.value, row.updated_at = value, now
        except Exception as error:  # noqa: BLE001 - the state is for show; the stream goes on
            log.warning("could not save the stream's state (%s)", type(error).__name__)
        self._status_written = time.monotonic()


def ingest_lines(services: Services, now: datetime) -> dict[str, str]:
    """How each account's mentions arrive, for Home and `/conversant status`; by account id (the
    platform's name when it has one account)."""
    from bot.platforms.streams.registry import streamed_accounts

    states = read_states(services)
    streamed = streamed_accounts(services.settings, services.brand)
    interval = services.settings.poll_interval_seconds
    lines = {}
    for account in services.brand.accounts:
        if account.id not in services.brand.adapters:
            continue
        source, state = streamed.get(account.id), states.get(account.id)
        fresh = state is not None and state.updated_at and now - datetime.fromisoformat(state.updated_at) <= STALE_STATE
        if source is None:
            lines[account.id] = f"polling every {interval} s"
        elif not fresh or state.source != source:
            lines[account.id] = f"polling every {interval} s; no {source} consumer is running (`conversant worker` or `run` starts one)"
        elif state.state == "streaming":
            lag = state.lag_seconds(now)
            lines[account.id] = (f"streaming ({source})" + (f", lag {_seconds(lag)}" if lag is not None else "")
                                 + f", {_reconnects(state.reconnects_last_hour(now))} in the last hour")
        else:
            lines[account.id] = (f"polling every {interval} s: the {source} stream is down ({state.error or 'connecting'}), "
                                 f"{_reconnects(state.reconnects_last_hour(now))} in the last hour")
    return lines


def _seconds(value: float) -> str:
    return "under 1 s" if value < 1 else f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


def _reconnects(count: int) -> str:
    return "1 reconnect" if count == 1 else f"{count} reconnects"


def stream_lock_key(account: str, stream: MentionStream) -> int:
    """An advisory lock of its own per account's stream, beside the scheduler's (one account: as before)."""
    return LOCK_KEY + 1 + zlib.crc32(f"{account}:{stream.source}".encode()) % 1_000_000


def _parse(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass
class Streams:
    """The stream consumers of one process and their carder (``conversant worker`` and ``run``)."""

    runners: list[StreamRunner]
    carder: Carder | None

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop(timeout=5)
        if self.carder is not None:
            self.carder.stop()


def start_streams(services: Services) -> Streams:
    from bot.platforms.streams.registry import account_streams

    streams = account_streams(services.settings, services.brand)
    if not streams:
        return Streams([], None)
    carder = Carder(services).start()
    runners = [StreamRunner(services, stream, account=account, on_new=carder.wake).start() for account, stream in streams]
    for runner in runners:
        log.info("%s: streaming from %s (%s); polling every %ds goes on", runner.label, runner.stream.source,
                 runner.stream.endpoint, services.settings.poll_interval_seconds)
    return Streams(runners, carder)
