"""`conversant doctor` catches, in one run, what the commands would trip on, each in one line saying what to do."""
from __future__ import annotations

from bot.config import load_settings
from bot.doctor import run_doctor
from tests.conftest import DATABASE_PLAYS_NO_PART, triage


def doctor(env: dict) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run_doctor(load_settings(env, dotenv_path="/nonexistent/.env"), out=lines.append)
    return code, lines


def test_a_good_setup_passes_every_check(env, slack, model, bluesky):
    model.reply_with(triage())  # doctor times real drafts
    code, lines = doctor({**env, "SLACK_APP_TOKEN": "xapp-1-test", "OPENAI_EMBEDDING_MODEL": "text-embedding-3-small"})
    assert code == 0, "\n".join(lines)
    assert lines[-1] == "All checks passed."
    for check in ("configuration", "database", "prompts", "Slack token", "Slack review channel", "Slack clicks",
                  "model", "model speed", "Bluesky", "embedding model"):
        assert any(line.startswith(f"  ok    {check}:") for line in lines), check
    assert "every scope it needs" in "\n".join(lines)


def test_a_broken_setup_gets_every_problem_in_one_run_one_line_each(env, slack, model, bluesky, tmp_path):
    model.reply_with(triage())
    slack.bot_scopes.remove("files:write")
    (tmp_path / "system.md").write_text("Be kind.")
    (tmp_path / "voice.md").write_text("   \n")
    broken = {**env, "SLACK_SIGNING_SECRET": "", "SLACK_APP_TOKEN": "", "PROMPTS_DIR": str(tmp_path),
              "OPENAI_EMBEDDING_MODEL": "no-such-embedder", "BLUESKY_APP_PASSWORD": "wrong-password"}
    code, lines = doctor(broken)
    text = "\n".join(lines)
    assert code == 1
    fails = [line for line in lines if line.startswith("  FAIL")]
    assert len(fails) == 5, text
    assert "FAIL  Slack token: the bot lacks the scope(s) files:write" in text
    assert "FAIL  Slack clicks: neither SLACK_SIGNING_SECRET (for `conversant web`) nor SLACK_APP_TOKEN" in text
    assert f"FAIL  prompts: PROMPTS_DIR={tmp_path}: voice.md, examples.md are missing or empty" in text
    assert "FAIL  embedding model:" in text and "OPENAI_EMBEDDING_MODEL" in text
    assert "FAIL  Bluesky:" in text and "BLUESKY_APP_PASSWORD" in text and "next poll" not in text
    assert lines[-1] == "5 check(s) failed; fix them and run `conversant doctor` again."
    assert "wrong-password" not in text


@DATABASE_PLAYS_NO_PART
def test_unreachable_servers_are_said_plainly(env, tmp_path):
    code, lines = doctor({**env, "DATABASE_URL": "postgresql://conversant:hunter22@127.0.0.1:9/nowhere",
                          "SLACK_API_URL": "http://127.0.0.1:9/api/", "SLACK_APP_TOKEN": "xapp-1-test"})
    text = "\n".join(lines)
    assert code == 1
    assert "FAIL  database: cannot connect to PostgreSQL postgresql://conversant:***@127.0.0.1:9/nowhere" in text
    assert "FAIL  Slack token: cannot reach Slack at http://127.0.0.1:9/api/ (Connection refused)" in text
    for raw in ("urlopen", "sqlalche.me", "Background on this error", "Traceback", "hunter22"):
        assert raw not in text


def test_a_web_only_setup_says_what_run_would_need(env, slack, model, bluesky):
    model.reply_with(triage())
    code, lines = doctor(env)
    assert code == 0
    assert any("ok    Slack clicks: `conversant web` (signing secret set); `conversant run` needs SLACK_APP_TOKEN" in line for line in lines)


def test_a_model_server_that_refuses_or_is_missing_is_said_plainly(env, slack, model, bluesky):
    _, refused = doctor({**env, "OPENAI_API_KEY": "sk-bad"})
    refused_line = next(line for line in refused if line.startswith("  FAIL  model:"))
    assert "refused OPENAI_API_KEY (HTTP 401)" in refused_line
    assert "sk-bad" not in "\n".join(refused) and "AuthenticationError" not in refused_line

    _, missing = doctor({**env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    missing_line = next(line for line in missing if line.startswith("  FAIL  model:"))
    assert "http://127.0.0.1:9/v1/ cannot be reached: is it running, and is OPENAI_BASE_URL right?" in missing_line
    assert "APIConnectionError" not in missing_line


def test_bluesky_private_replies_are_checked_and_an_app_password_without_them_is_a_note(env, slack, model, bluesky):
    model.reply_with(triage())
    code, lines = doctor(env)
    assert "  ok    Bluesky private replies: chat messages can be sent" in lines

    bluesky.accounts["brand.test"].dm_access = False
    code, lines = doctor(env)
    note = next(line for line in lines if "Bluesky private replies" in line)
    assert note.startswith("  note  Bluesky private replies: unavailable") and "Allow access to your direct messages" in note
    assert code == 0  # public replies work without it
