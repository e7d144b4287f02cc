"""Stopping on SIGTERM (deploys, `docker stop`, scaling down) or Ctrl-C the same way: the main
thread waits on an event the signal sets, then the command finishes or hands back its work and
returns 0. Nothing happens inside the signal handler itself but setting the event.
SIGUSR1 prints every thread's stack to stderr, for a process that seems stuck."""
from __future__ import annotations

import faulthandler
import signal
import threading


class StopSignal:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.name: str | None = None

    def install(self) -> StopSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._received)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        return self

    def _received(self, signum, frame) -> None:
        self.name = self.name or signal.Signals(signum).name
        self.event.set()

    def wait(self) -> str:
        """Block until a stop signal arrives; returns its name (SIGTERM, SIGINT)."""
        while not self.event.wait(timeout=1):  # a timeout keeps the wait interruptible everywhere
            pass
        return self.name or "stop"
