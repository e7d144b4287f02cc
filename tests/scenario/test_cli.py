"""The `conversant` command as an operator runs it: real processes, real servers, our fakes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from bot.slack.payloads import ActionId
from bot.models import State
from tests.cli import CliPopen, run as run_conversant
from tests.conftest import eventually, triage
from tests.support import carded_mention, click, load


def conversant(*args: str, env: dict | None = None, cwd=None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    return run_conversant(
        args, env={**clean, **(env or {})}, cwd=cwd,
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("SLACK_REVIEW_CHANNEL", "#social", "SLACK_REVIEW_CHANNEL must be a Slack channel ID"),
        ("SLACK_BOT_TOKEN", "abc", "SLACK_BOT_TOKEN must start with 'xoxb-'"),
        ("POLL_INTERVAL_SECONDS", "soon", "POLL_INTERVAL_SECONDS must be a whole number"),
        ("REVIEW_SLA_MINUTES", "-1", "REVIEW_SLA_MINUTES must be at least"),
        ("DIGEST_TIME", "9am", "DIGEST_TIME must be a time of day as HH:MM"),
        ("DIGEST_TIMEZONE", "Mars/Olympus", "DIGEST_TIMEZONE must be an IANA time zone"),
        ("BUSINESS_HOURS", "weekdays", "BUSINESS_HOURS must look like 'Mon-Fri 09:00-18:00'"),
        ("SLACK_APPROVERS", "alice", "SLACK_APPROVERS must list Slack user IDs"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL must be"),
        ("BRAND_NAME", "", "BRAND_NAME is required"),
    ],
)
def test_a_bad_setting_stops_with_one_line_naming_it(tmp_path, variable, value, expected):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_REVIEW_CHANNEL": "C1",
        "BRAND_NAME": "Brand", "BLUESKY_HANDLE": "brand.test", "BLUESKY_APP_PASSWORD": "pw",
    }
    result = conversant("poll", "--once", env={**env, variable: value}, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    from bot.config import load_settings

    (tmp_path / ".env").write_text("BRAND_NAME=FromFile\nPOLL_INTERVAL_SECONDS=90\n")
    settings = load_settings({"BRAND_NAME": "FromEnv"}, dotenv_path=tmp_path / ".env")
    assert settings.brand_name == "FromEnv" and settings.poll_interval_seconds == 90


def test_migrate_then_poll_once_runs_a_whole_cycle(env, tmp_path, slack, model, bluesky):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {**env, "DATABASE_URL": url}
    before = conversant("poll", "--once", env=env, cwd=tmp_path)
    assert before.returncode == 2 and "run `conversant migrate` first" in before.stderr

    assert conversant("migrate", env=env, cwd=tmp_path).returncode == 0
    bluesky.post("alice.test", "@brand.test hi!")
    model.reply_with(triage())
    result = conversant("poll", "--once", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "1 cards posted" in result.stdout
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_poll_once_exits_zero_when_a_platform_fails_and_says_so(env, tmp_path, slack, bluesky):
    bluesky.fail_next("com.atproto.server.createSession", status=401, error="AuthenticationRequired", message="Invalid identifier or password")
    result = conversant("poll", "--once", env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert "BLUESKY_APP_PASSWORD" in result.stderr  # the log line says what to fix
    assert "Bluesky" in slack.last("chat.postMessage")["text"]


def test_no_platform_enabled_is_an_error(env, tmp_path):
    result = conversant("poll", "--once", env={**env, "BLUESKY_HANDLE": "", "BLUESKY_APP_PASSWORD": ""}, cwd=tmp_path)
    assert result.returncode == 2 and "no platform is enabled" in result.stderr


@pytest.mark.parametrize("partial, named", [
    ({"BLUESKY_HANDLE": ""}, "BLUESKY_HANDLE must be set too"),
    ({"MASTODON_ACCESS_TOKEN": "tok"}, "MASTODON_API_BASE_URL must be set too"),
    ({"X_BEARER_TOKEN": "bearer"}, "X_BEARER_TOKEN alone cannot reply"),
    ({"REDDIT_CLIENT_ID": "id", "REDDIT_PASSWORD": "pw"}, "REDDIT_CLIENT_SECRET, REDDIT_USERNAME must be set too"),
])
def test_half_set_platform_credentials_are_named(env, tmp_path, partial, named):
    result = conversant("poll", "--once", env={**env, **partial}, cwd=tmp_path)
    assert result.returncode == 2 and named in result.stderr and "pw" not in result.stderr.replace("password", "")


def test_doctor_reports_each_check_and_how_to_fix_failures(env, tmp_path, slack, model, bluesky):
    model.reply_with(triage())
    good = conversant("doctor", env={**env, "OPENAI_TIMEOUT_SECONDS": ""}, cwd=tmp_path)  # unset: adapts to the measured speed
    assert good.returncode == 0, good.stdout
    assert "drafts a minute" in good.stdout
    for check in ("configuration", "database", "Slack token", "Slack review channel", "model", "model speed", "Bluesky"):
        assert f"ok    {check}" in good.stdout

    bad = conversant("doctor", env={**env, "SLACK_BOT_TOKEN": "xoxb-invalid", "SLACK_REVIEW_CHANNEL": "C_NOPE", "OPENAI_MODEL": "gpt-nope",
                                    "BLUESKY_APP_PASSWORD": "wrong"}, cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAIL  Slack token: Slack refused the token (invalid_auth): check SLACK_BOT_TOKEN" in bad.stdout
    assert "FAIL  model" in bad.stdout and "OPENAI_MODEL" in bad.stdout
    assert "FAIL  Bluesky" in bad.stdout and "BLUESKY_APP_PASSWORD" in bad.stdout
    assert "wrong" not in bad.stdout.replace("what is wrong", "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_web_serves_slack_and_health_with_gunicorn(env, tmp_path, services, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if k != "PORT"}
    server = CliPopen(["web", "--port", str(port)], env={**clean, **env}, cwd=tmp_path,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    return response.status == 200 and json.loads(response.read())["ok"]
            except OSError:
                return False

        eventually(healthy, timeout=30)
        started = time.monotonic()
        status, _ = click(base, ActionId.APPROVE, conv)
        assert status == 200 and time.monotonic() - started < 3  # acked well within Slack's 3 seconds
        eventually(lambda: load(services).state == State.REPLIED.value)
        assert len(bluesky.created("brand.test")) == 1
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert "gunicorn" in output.lower() or "Booting worker" in output or "Listening" in output
    assert env["SLACK_BOT_TOKEN"] not in output and env["OPENAI_API_KEY"] not in output


def test_demo_runs_offline_with_no_configuration(tmp_path):
    result = conversant("demo", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "No model is configured" in out and "card 1 posted" in out
    assert "Dismissed by" in out and "replied" in out and "mentions received" in out
    assert "Traceback" not in result.stderr
