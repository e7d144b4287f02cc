"""Logs an operator can read and ship: one format, JSON on request, quiet libraries, no secrets."""
from __future__ import annotations

import io
import json
import logging
import os
import sys
import subprocess

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import configure_logging
from tests.cli import run as run_conversant


def conversant(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "LOG_"))}
    return run_conversant(args, env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_json_logs_one_object_per_line_without_library_noise_or_secrets(env, tmp_path, slack, model, bluesky):
    result = conversant("poll", "--once", env={**env, "LOG_FORMAT": "json", "LOG_LEVEL": "info"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(r["logger"] == "bot.pipeline" and r["message"].startswith("poll cycle:") for r in records)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert not [r for r in records if r["logger"].startswith(("alembic", "httpx", "apscheduler", "atproto"))]
    assert env["SLACK_BOT_TOKEN"] not in result.stderr and env["BLUESKY_APP_PASSWORD"] not in result.stderr


@pytest.mark.parametrize("spelling, level", [("debug", "DEBUG"), ("Info", "INFO"), ("warn", "WARNING"), ("WARNING", "WARNING"),
                                             ("error", "ERROR"), ("fatal", "CRITICAL"), ("30", "WARNING")])
def test_log_level_takes_the_usual_spellings(spelling, level):
    assert load_settings({"LOG_LEVEL": spelling}, dotenv_path="/nonexistent").log_level == level


def test_an_unknown_log_level_or_format_is_named():
    with pytest.raises(ConfigError, match="LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"):
        load_settings({"LOG_LEVEL": "loud"}, dotenv_path="/nonexistent")
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of TEXT, JSON"):
        load_settings({"LOG_FORMAT": "xml"}, dotenv_path="/nonexistent")


def test_a_late_line_after_stderr_was_swapped_and_closed_goes_to_the_new_stderr(monkeypatch):
    """What a background thread did after a test's captured stderr was closed: no
    "ValueError: I/O operation on closed file" any more."""
    configure_logging(None, "INFO")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("bot.test").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("bot.test").info("two")
    assert "bot.test: two" in second.getvalue() and "Logging error" not in second.getvalue()
