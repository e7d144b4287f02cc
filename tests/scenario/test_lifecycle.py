"""SIGTERM, as a deploy or `docker stop` sends it, to real `worker`, `web` and `run` processes: the
work under way finishes, one line says so, and the process exits 0."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request

from tests.cli import CliPopen
from tests.conftest import eventually, triage
from tests.scenario.test_socket_mode import FakeSocketMode


def _start(args: list[str], env: dict, tmp_path) -> tuple[subprocess.Popen, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PORT", "LOG_"))}
    log = tmp_path / f"{args[0]}.log"
    process = CliPopen(args, env={**clean, **env}, cwd=tmp_path,
                       stdout=log.open("w"), stderr=subprocess.STDOUT)
    return process, log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


def _stop(process: subprocess.Popen, log) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # every thread's stack into the log, to see what held it
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
        raise AssertionError(f"still running 60 s after SIGTERM:\n{log.read_text()}") from None
    return log.read_text()


def _stop_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "stopped" in line or "signal" in line.lower() or "exiting" in line.lower()]


def test_worker_finishes_its_cycle_and_exits_zero_on_sigterm(env, tmp_path, slack, model, bluesky):
    bluesky.post("alice.test", "@brand.test is the worker up?")
    model.reply_with(triage())
    port = _free_port()
    process, log = _start(["worker"], {**env, "POLL_INTERVAL_SECONDS": "3600", "METRICS_PORT": str(port)}, tmp_path)
    try:
        eventually(lambda: "poll cycle:" in log.read_text(), timeout=60)
        # its own port: ready once a poll cycle has ended (the heartbeat), with its figures
        eventually(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=30)
        assert 'conversant_conversations{state="carded"} 1.0' in _get(f"http://127.0.0.1:{port}/metrics")[1]
    finally:
        output = _stop(process, log)
    assert process.returncode == 0, output
    assert _stop_lines(output) == [line for line in output.splitlines() if "worker stopped on SIGTERM" in line]
    assert len(_stop_lines(output)) == 1 and "Traceback" not in output
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_web_exits_zero_on_sigterm_with_one_line(env, tmp_path):
    port = _free_port()
    process, log = _start(["web", "--port", str(port)], env, tmp_path)
    try:
        eventually(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, timeout=60)
    finally:
        output = _stop(process, log)
    assert process.returncode == 0, output
    assert _stop_lines(output) == [line for line in output.splitlines() if "web stopped" in line]
    assert len(_stop_lines(output)) == 1 and "Traceback" not in output


def test_run_says_connected_only_once_connected_and_exits_zero_on_sigterm(env, tmp_path, slack):
    socket_mode = FakeSocketMode()
    slack.socket_url = socket_mode.url
    process, log = _start(["run"], {**env, "SLACK_APP_TOKEN": "xapp-1-test", "POLL_INTERVAL_SECONDS": "3600"}, tmp_path)
    try:
        assert socket_mode.connected.wait(60), "the app never opened the socket"
        eventually(lambda: "connected over Socket Mode" in log.read_text(), timeout=30)
    finally:
        output = _stop(process, log)
        socket_mode.close()
    assert process.returncode == 0, output
    assert len(_stop_lines(output)) == 1 and "stopped on SIGTERM" in output and "Traceback" not in output


def test_run_with_a_refused_app_token_says_so_and_never_says_connected(env, tmp_path, slack):
    slack.fail_next("apps.connections.open", "invalid_auth")
    process, log = _start(["run"], {**env, "SLACK_APP_TOKEN": "xapp-1-test"}, tmp_path)
    process.wait(timeout=60)
    output = log.read_text()
    assert process.returncode == 2
    assert "Slack refused the Socket Mode connection (invalid_auth): check SLACK_APP_TOKEN" in output
    assert "connected over" not in output and "Traceback" not in output
