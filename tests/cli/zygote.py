"""Starts `conversant` processes for the tests without paying for Python's imports each time.

A real `python -m bot` spends about 1.5 s of CPU importing the openai, atproto, Slack and
SQLAlchemy packages before it does anything; the suite starts about 150 of them. This server
imports them once, then forks one child per request: the child is a real process with its own
pid, database connections, sockets and signals, and runs `bot.cli.main` exactly as
`bot/__main__.py` would, on the stdin/stdout/stderr, environment and folder the request gives.

Run as `python tests/cli/zygote.py SOCKET_PATH`; `tests/cli/proxy.py` is the other end.
Requests arrive on a Unix socket: one JSON line {argv, env, cwd} with three file descriptors
(stdin, stdout, stderr). Answers: "pid N" at once, then "exit N" or "signal N" when the child ends.
If the requester goes away first, the child is killed: nothing outlives the test that started it;
when the test process closes this server's stdin, the server ends.
"""
from __future__ import annotations

import array
import gc
import io
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time

# What the commands import; a child finds them already loaded.
import alembic.command  # noqa: F401
import alembic.runtime.migration  # noqa: F401
import alembic.script  # noqa: F401
import bot.cli
import bot.jobs.scheduler  # noqa: F401
import bot.platforms.bluesky  # noqa: F401
import bot.platforms.mastodon  # noqa: F401
import bot.platforms.reddit  # noqa: F401
import bot.platforms.x  # noqa: F401
import bot.services  # noqa: F401
import bot.slack.app  # noqa: F401
import bot.slack.web  # noqa: F401
import psycopg  # noqa: F401

STDIN = 0  # a pipe from the test process: its end means the test run is over
MAIN = os.path.join(os.path.dirname(bot.cli.__file__), "__main__.py")


def serve(path: str) -> None:
    # Forking is only safe while this process has one thread and no open connections.
    assert threading.active_count() == 1, "an import started a thread; forking would copy it half-done"
    assert not logging.getLogger().handlers, "an import configured logging; children would log to the wrong place"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_write.fileno())
    gc.freeze()  # the imported modules live for good: no child spends its exit collecting them
    print("ready", flush=True)

    requesters: dict[int, socket.socket] = {}  # child pid -> the connection that asked for it
    while True:
        readable, _, _ = select.select([listener, wake_read, STDIN, *requesters.values()], [], [])
        if STDIN in readable and not os.read(STDIN, 4096):  # the test run is over
            for pid in requesters:
                _kill(pid)
            return
        if wake_read in readable:
            _drain(wake_read)
        _report_ended_children(requesters)
        for pid, conn in list(requesters.items()):
            if conn in readable and not _peek(conn):  # the requester is gone: so is its child
                _kill(pid)
        if listener in readable:
            conn, _ = listener.accept()
            request, fds = _receive(conn)
            pid = os.fork()
            if pid == 0:
                listener.close()
                wake_read.close()
                wake_write.close()
                for other in requesters.values():
                    other.close()
                conn.close()
                _become_conversant(request, fds)  # never returns: raises SystemExit like `python -m bot`
            for fd in fds:
                os.close(fd)
            conn.sendall(f"pid {pid}\n".encode())
            requesters[pid] = conn


def _become_conversant(request: dict, fds: list[int]) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # a fresh process reads TZ at start
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False, buffering=1 if unbuffered or os.isatty(1) else -1)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    sys.argv = [MAIN, *request["argv"]]
    raise SystemExit(bot.cli.main(request["argv"]))


def _report_ended_children(requesters: dict[int, socket.socket]) -> None:
    while requesters:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = requesters.pop(pid, None)
        if conn is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        try:
            conn.sendall((f"signal {-code}\n" if code < 0 else f"exit {code}\n").encode())
        except OSError:
            pass  # the requester went away meanwhile
        conn.close()


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = conn.recvmsg(1 << 20, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            break
        data += more
    return json.loads(data), list(fds)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass


def _peek(conn: socket.socket) -> bool:
    try:
        return bool(conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return True
    except OSError:
        return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    serve(sys.argv[1])
