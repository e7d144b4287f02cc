"""A total deadline for a call out (a platform, Slack), whatever the server does.

The client libraries take a timeout per read: a server that sends one byte a second, or
trickles its headers, never trips it, and the call, and the poll cycle or click waiting on
it, hangs. ``call`` runs the work on a helper thread and stops waiting at the deadline; the
caller gets ``DeadlineExceeded`` and its slot is free. The helper thread ends when the
server gives up or its per-read timeout fires; it is a daemon, so it never keeps a
``poll --once`` from exiting. A write that timed out this way has an unknown outcome, which
the outbox already reconciles (the thread check) before it posts again.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CALL_SECONDS = 60.0  # one call out, reads (20 s each) and the SDK's own retries included


class DeadlineExceeded(TimeoutError):
    """No complete answer within the deadline (a TimeoutError, so an OSError, as a network failure is)."""


def call(work: Callable[[], T], seconds: float, what: str) -> T:
    """``work()``, or DeadlineExceeded after ``seconds``."""
    outcome: dict = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(work)
        except BaseException as error:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name=f"call: {what}"[:60], daemon=True).start()
    if not done.wait(seconds):
        raise DeadlineExceeded(f"{what}: no complete answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
