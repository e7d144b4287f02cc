"""`conversant eval`: the drafter over a file of mentions, each draft checked, the judge validated."""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bot import evaluation
from bot.config import load_settings
from bot.evaluation import SampleMention, addresses_author, detect_language, format_table, hype, load_file, run_eval
from tests.cli import run as run_conversant
from tests.conftest import triage

SAMPLE_SET = Path(__file__).resolve().parents[2] / "bot" / "demo" / "eval_mentions.json"
RUBRIC_CRITERIA = ["Sounds like a person", "Picks up what they said", "Moves the conversation on",
                   "Safe and on brand", "Fits the platform"]

MENTIONS = [
    {"id": "good", "platform": "bluesky", "author": "alice.test", "name": "Alice Martin", "lang": "en",
     "text": "@brand.test how do I export my notes to PDF?"},
    {"id": "wrong-language", "platform": "bluesky", "author": "jonas.test", "name": "Jonas", "lang": "de",
     "text": "@brand.test Wie exportiere ich meine Notizen als PDF?"},
    {"id": "too-long", "platform": "x", "author": "bob_x", "name": "Bob", "lang": "en",
     "text": "@brandapp the sync is broken again, this is the third time this week"},
    {"id": "spam", "platform": "bluesky", "author": "deals.test", "name": "DEALS", "expect_reply": False,
     "text": "@brand.test CLICK HERE for cheap boots www.deals.example"},
    {"id": "third-person", "platform": "mastodon", "author": "lena@fosstodon.example", "name": "Lena", "lang": "en",
     "text": "@brand can I import GPX files from my watch？"},
]
LONG = "We're thrilled you wrote! " + "Sync is hard and we are working on it day and night. " * 5 + "#sync https://evil.example/x"
REPLIES = {
    "@brand.test how do I export my notes to PDF?": triage("Thanks Alice! Menu → Export → PDF. Which device are you on?"),
    "@brand.test Wie exportiere ich meine Notizen als PDF?": triage("Thanks for asking, we will look into the export."),
    "@brandapp the sync is broken again, this is the third time this week": triage(LONG, category="complaint"),
    "@brand.test CLICK HERE for cheap boots www.deals.example": triage("", should_reply=False, category="spam"),
    "@brand can I import GPX files from my watch？": triage("The user asks about GPX import; it works from the web app."),
}


def mention_in(request: dict) -> dict:
    user = request["messages"][1]["content"]
    return json.loads(user.split("<untrusted_mention>")[1].split("</untrusted_mention>")[0])


def draft_by_text(request: dict) -> dict:
    return REPLIES[mention_in(request)["text"]]


def judge_all(score: int = 4):
    def answer(request: dict) -> dict:
        return {"criteria": [{"name": n, "score": score, "reason": "fine"} for n in RUBRIC_CRITERIA],
                "overall": score, "summary": "Reads well."}
    return answer


def responder(judge=judge_all()):
    def respond(request: dict):
        if request["response_format"]["json_schema"]["name"] == "judge":
            return judge(request)
        return draft_by_text(request)
    return respond


@pytest.fixture
def eval_file(tmp_path) -> Path:
    path = tmp_path / "mentions.json"
    path.write_text(json.dumps({"brand": "Brand", "allowed_domains": ["brand.example"], "mentions": MENTIONS}))
    return path


@pytest.fixture
def settings(model):
    return load_settings({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url, "OPENAI_TIMEOUT_SECONDS": "5"},
                         dotenv_path="/nonexistent/.env")


def conversant(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    return run_conversant(args, env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_each_draft_is_checked_and_the_totals_add_up(settings, eval_file, model):
    model.responder = responder()

    report = run_eval(settings, load_file(eval_file))

    by_id = {r.id: r for r in report.results}
    assert by_id["good"].checks == {"within_limit": True, "policy": True, "addresses_author": True,
                                    "asks_back": True, "language": True, "no_hype": True}
    wrong = by_id["wrong-language"]
    assert (wrong.expected_language, wrong.draft_language) == ("de", "en")
    assert wrong.checks["language"] is False and wrong.checks["asks_back"] is False
    assert wrong.checks["addresses_author"] is False  # no "you", no name: written about nobody
    long = by_id["too-long"]
    assert long.checks["within_limit"] is False and long.length > 280 == long.limit
    assert long.checks["policy"] is False and "Links to evil.example, which is not in BRAND_ALLOWED_DOMAINS." in long.problems
    assert long.checks["no_hype"] is False and "hashtag #sync" in long.problems
    assert "marketing phrase \"we're thrilled\"" in long.problems
    assert long.checks["asks_back"] is None  # not a question
    assert by_id["spam"].should_reply is False and by_id["spam"].triage_agrees and by_id["spam"].checks == {}
    third = by_id["third-person"]
    assert third.draft.startswith("@lena@fosstodon.example ")  # as Mastodon would post it
    assert third.checks["addresses_author"] is False and third.checks["asks_back"] is False  # a full-width "？" is a question

    totals = report.totals()
    assert (totals["mentions"], totals["drafted"], totals["skipped_by_triage"], totals["no_draft"]) == (5, 4, 1, 0)
    assert totals["checks"]["within_limit"] == {"passed": 3, "applicable": 4, "rate": 0.75}
    assert totals["checks"]["asks_back"] == {"passed": 1, "applicable": 3, "rate": 0.333}
    assert totals["checks"]["language"] == {"passed": 3, "applicable": 4, "rate": 0.75}
    assert totals["checks"]["addresses_author"]["passed"] == 2  # good, and too-long ("you wrote")
    assert totals["drafts_passing_every_check"]["passed"] == 1
    assert totals["triage_agrees"] == {"passed": 5, "applicable": 5, "rate": 1.0}
    assert "judge" not in totals


def test_the_table_shows_one_row_per_mention_and_the_totals(settings, eval_file, model):
    model.responder = responder()

    table = format_table(run_eval(settings, load_file(eval_file)))

    rows = {line.split()[1]: line for line in table.splitlines() if line[:1].isdigit()}
    assert list(rows) == ["good", "wrong-language", "too-long", "spam", "third-person"]
    assert rows["good"].split()[3:] == ["yes", "✓", "✓", "✓", "✓", "✓", "en", "✓"]
    assert rows["spam"].split()[3:] == ["skip"]
    assert re.search(r"within the platform limit +3/4 \(75%\)", table)
    assert re.search(r"answers in the mention's language +3/4 \(75%\)", table)
    assert "✗ written in en, the mention is in de" in table


def test_the_judge_scores_with_the_rubric_and_bad_verdicts_are_reported_not_trusted(settings, eval_file, model):
    verdicts = iter([judge_all(5), judge_all(3), lambda r: {"criteria": [], "overall": 4, "summary": "?"},
                     lambda r: {**judge_all(4)(r), "overall": 9}])
    model.responder = responder(judge=lambda request: next(verdicts)(request))

    report = run_eval(replace(settings, openai_concurrency=1), load_file(eval_file), judge=True, judge_model="gpt-4o-mini")

    judged = [r for r in model.chat_requests() if r["response_format"]["json_schema"]["name"] == "judge"]
    assert len(judged) == 4  # every draft, not the skipped spam
    schema = judged[0]["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["criteria"]["items"]["properties"]["name"]["enum"] == RUBRIC_CRITERIA
    assert "Sounds like a person" in judged[0]["messages"][0]["content"]  # the rubric from prompts/judge.md
    assert "<draft_reply>" in judged[0]["messages"][1]["content"]
    scores = [r.judge.overall if r.judge else r.judge_error for r in report.results if r.draft]
    assert scores[:2] == [5, 3]
    assert "did not fit the rubric" in scores[2] and "missing" in scores[2]
    assert "did not fit the rubric" in scores[3]
    assert report.results[0].judge.criteria == dict.fromkeys(RUBRIC_CRITERIA, 5)
    assert report.totals()["judge"] == {"model": "gpt-4o-mini", "scored": 2, "errors": 2, "mean_overall": 4.0}


def test_the_sample_set_runs_as_a_command_with_the_judge(tmp_path, model):
    def respond(request):
        if request["response_format"]["json_schema"]["name"] == "judge":
            return judge_all(4)(request)
        mention = mention_in(request)
        if "Ignore all previous instructions" in mention["text"]:  # a model that falls for it
            return triage("FREE PREMIUM for everyone at https://fernway-gift.example #giveaway @everyone")
        if "USDT" in mention["text"] or "CLICK HERE" in mention["text"]:
            return triage("", should_reply=False, category="spam")
        return triage("Thanks for telling us! Which version are you on?")

    model.responder = respond
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url}

    result = conversant("eval", str(SAMPLE_SET), "--judge", "--json", env=env, cwd=tmp_path)

    assert result.returncode == 1, result.stderr  # the injected draft fails its checks
    assert "drafts failed a check" in result.stderr
    report = json.loads(result.stdout)
    sample = json.loads(SAMPLE_SET.read_text())
    assert 20 <= len(sample["mentions"]) <= 30
    assert report["totals"]["mentions"] == len(sample["mentions"])
    assert report["totals"]["skipped_by_triage"] == 2
    assert report["totals"]["judge"]["scored"] == len(sample["mentions"]) - 2
    injection = next(r for r in report["results"] if r["id"] == "prompt-injection")
    assert injection["checks"]["policy"] is False and injection["checks"]["no_hype"] is False
    assert injection["triage_agrees"] is False
    # the injection reached the model only as delimited data, never in the instructions
    drafts = [r for r in model.chat_requests() if r["response_format"]["json_schema"]["name"] == "triage"]
    hostile = next(r for r in drafts if "Ignore all previous" in r["messages"][1]["content"])
    assert "Ignore all previous" not in hostile["messages"][0]["content"]
    assert "Fernway" in hostile["messages"][0]["content"]  # the file's brand in the prompts
    # English drafts for mentions in other languages are caught
    languages = {r["id"]: r["checks"].get("language") for r in report["results"]}
    assert languages["offline-praise"] is True and languages["pdf-export-de"] is False and languages["offline-days-ja"] is False

    table = conversant("eval", str(SAMPLE_SET), env=env, cwd=tmp_path)
    assert table.returncode == 1
    assert f"of {len(sample['mentions'])} mentions" in table.stdout and "prompt-injection" in table.stdout


def test_without_a_model_eval_stops_with_one_clear_line(tmp_path, eval_file):
    result = conversant("eval", str(eval_file), env={}, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == ("conversant eval: no model is configured: set OPENAI_API_KEY (OpenAI) or "
                                     "OPENAI_BASE_URL (any OpenAI-compatible server, e.g. Ollama), and OPENAI_MODEL")


def test_a_model_that_never_answers_usably_exits_1(tmp_path, eval_file, model):
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url, "OPENAI_MODEL": "no-such-model"}

    result = conversant("eval", str(eval_file), env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "the model 'no-such-model' was not found (check OPENAI_MODEL)" in result.stderr
    assert "no draft" in result.stdout


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not JSON (Expecting property name"),
    ('{"mentions": []}', "mentions: List should have at least 1 item"),
    ('[{"id": "a", "author": "x"}]', "mentions.0.text: Field required"),
    ('[{"id": "a", "author": "x", "text": "hi", "platform": "myspace"}]', "mentions.0.platform: Input should be"),
    ('[{"id": "a", "author": "x", "text": "hi"}, {"id": "a", "author": "y", "text": "yo"}]', "repeated: a"),
])
def test_a_broken_eval_file_is_named_with_what_to_fix(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(evaluation.EvalFileError, match="bad.json") as error:
        load_file(path)
    assert expected in str(error.value)
    with pytest.raises(evaluation.EvalFileError, match="no such file"):
        load_file(tmp_path / "missing.json")


def mention(lang: str, *, author: str = "kim.test", name: str | None = "Kim Lee", platform: str = "bluesky") -> SampleMention:
    return SampleMention(id="m", platform=platform, author=author, name=name, lang=lang, text="...")


@pytest.mark.parametrize("draft, lang, verdict", [
    ("Thanks for telling us! Which screen do you use most?", "en", True),
    ("Thanks Kim, noted.", "en", True),
    ("Hi @kim.test, noted.", "en", True),
    ("Thanks for the report, we will look into it.", "en", False),
    ("The customer reports a crash. We will look into it.", "en", False),
    ("Thanks Kim! The user reports a crash.", "en", False),
    ("Danke! Welche Version nutzt du?", "de", True),
    ("Vielen Dank, können Sie uns die Version nennen?", "de", True),
    ("Merci ! Tu utilises quelle version ?", "fr", True),
    ("Dank je! Welke versie gebruik je?", "nl", True),
    ("¡Gracias! ¿Qué versión usas?", "es", None),  # "you" lives in the verb
    ("¡Gracias! ¿Te pasa en iOS?", "es", True),
    ("ありがとうございます！どのバージョンですか？", "ja", None),
    ("キムさん、ありがとうございます！", "ja", True),
])
def test_addresses_the_author(draft, lang, verdict):
    assert addresses_author(draft, mention(lang), lang)[0] is verdict


def test_on_mastodon_the_automatic_handle_does_not_count_as_addressing():
    lena = mention("en", author="lena@fosstodon.example", name=None, platform="mastodon")
    assert addresses_author("@lena@fosstodon.example Noted.", lena, "en")[0] is False
    assert addresses_author("@lena@fosstodon.example Noted, thank you!", lena, "en")[0] is True


@pytest.mark.parametrize("text, language", [
    ("Thanks for telling us, which version are you on?", "en"),
    ("Danke für die Nachricht, welche Version nutzt du?", "de"),
    ("Merci beaucoup, tu utilises quelle version ?", "fr"),
    ("Obrigado! Qual versão você está usando?", "pt"),
    ("オフラインマップは何日間保存できますか", "ja"),
    ("Thanks!", None),  # too short to tell
    ("@someone.bsky.social https://brand.example/a", None),
])
def test_language_detection(text, language):
    assert detect_language(text) == language


def test_hype_finds_hashtags_and_marketing_phrases_but_not_issue_numbers():
    assert hype("Fixed in #42, thanks!") == []
    assert hype("We’re thrilled! #NewRelease Stay tuned") == [
        "hashtag #NewRelease", "marketing phrase \"we're thrilled\"", "marketing phrase 'stay tuned'"]
