"""`conversant` processes for the tests, started in milliseconds instead of seconds.

`CliPopen(args, ...)` is `subprocess.Popen([sys.executable, "-m", "bot", *args], ...)` with the
same arguments and behaviour (pipes, text, wait, communicate, return codes, signals), but the
process is forked from a server that has already imported Conversant and its libraries
(tests/cli/zygote.py). Signals go to the `conversant` process itself, so a SIGKILL kills it at
once, as a test of a crash needs. A few tests keep a plain `python -m bot` to prove the real start.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import leftovers

HERE = Path(__file__).parent
_server: subprocess.Popen | None = None
_socket_path = ""


class CliPopen(subprocess.Popen):
    def __init__(self, args: list[str], **kwargs) -> None:
        socket_path = _zygote()
        pid_read, pid_write = os.pipe()
        try:
            super().__init__([sys.executable, "-I", "-S", str(HERE / "proxy.py"), socket_path, str(pid_write), *args],
                             pass_fds=(pid_write,), **kwargs)
        finally:
            os.close(pid_write)
        self.args = ["conversant", *args]  # what a failure or a left-over process is named by
        with os.fdopen(pid_read, "rb") as pid:
            # The forked `conversant` process's pid; None if it never started (no zygote).
            self.conversant_pid = int(pid.read() or 0) or None

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return
        if self.conversant_pid is None:
            super().send_signal(sig)
            return
        try:
            os.kill(self.conversant_pid, sig)
        except ProcessLookupError:
            pass


def run(args: list[str], *, timeout: float | None = None, capture_output: bool = False, check: bool = False,
        **kwargs) -> subprocess.CompletedProcess:
    """`subprocess.run` for `conversant ARGS`."""
    if capture_output:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with CliPopen(args, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    result = subprocess.CompletedProcess(["conversant", *args], process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


def _zygote() -> str:
    global _server, _socket_path
    if _server is None or _server.poll() is not None:
        directory = tempfile.mkdtemp(prefix="conversant-zygote-")
        _socket_path = os.path.join(directory, "socket")
        _server = subprocess.Popen([sys.executable, str(HERE / "zygote.py"), _socket_path], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, cwd=HERE.parent.parent)
        leftovers.expect(_server, stop=lambda: _stop(directory))
        ready = _server.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the test zygote did not start (exit {_server.wait()}); see its error above")
    return _socket_path


def _stop(directory: str) -> None:
    _server.stdin.close()
    _server.wait(timeout=30)
    shutil.rmtree(directory, ignore_errors=True)
