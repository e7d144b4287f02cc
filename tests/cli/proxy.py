"""Stands in for `python -m bot ARGS` in a test: asks the zygote (tests/cli/zygote.py) to fork a
`conversant` process on this process's stdin, stdout, stderr, environment and folder, writes the
child's pid to the descriptor PID_FD, and exits as the child did (same code, or the same signal).

Runs with `python -I -S` (standard library only), so it starts in milliseconds.
Usage: proxy.py SOCKET_PATH PID_FD ARGS...
"""
import json
import os
import signal
import socket
import sys


def main() -> None:
    path, pid_fd, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode() + b"\n"
    socket.send_fds(conn, [request], [0, 1, 2])
    answers = conn.makefile("r")
    child = int(answers.readline().split()[1])
    os.write(pid_fd, f"{child}\n".encode())
    os.close(pid_fd)
    for forwarded in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(forwarded, lambda number, _frame: os.kill(child, number))
    ending = answers.readline().split()
    if not ending:  # the zygote itself died
        sys.exit(255)
    if ending[0] == "signal":
        number = int(ending[1])
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    sys.exit(int(ending[1]))


main()
