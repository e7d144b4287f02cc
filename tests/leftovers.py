"""`make test` leaves nothing running: a process a test started and never stopped (say, after a
timeout) is stopped when the test process ends, and named, so it cannot linger unseen."""
from __future__ import annotations

import subprocess
import sys

_started: list[subprocess.Popen] = []
_expected: list = []  # how to stop each process meant to run as long as the tests (tests/cli's zygote)
_original_init = subprocess.Popen.__init__


def _tracking_init(self, *args, **kwargs) -> None:
    _original_init(self, *args, **kwargs)
    _started.append(self)


def expect(process: subprocess.Popen, stop) -> None:
    """``process`` serves the whole test run; ``stop()`` ends it when the run ends."""
    if process in _started:
        _started.remove(process)
    _expected.append(stop)


def pytest_configure(config) -> None:
    subprocess.Popen.__init__ = _tracking_init


def pytest_unconfigure(config) -> None:
    subprocess.Popen.__init__ = _original_init
    left = [p for p in _started if p.poll() is None]
    for process in left:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if left:
        names = "; ".join(" ".join(map(str, p.args if isinstance(p.args, list) else [p.args]))[:120] for p in left)
        print(f"\ntests left {len(left)} process(es) running; stopped them: {names}", file=sys.stderr)
    for stop in _expected:  # after the check above, so a process a test left behind is still named
        stop()
