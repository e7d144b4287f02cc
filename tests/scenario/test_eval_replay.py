"""`conversant eval` over real customer-care conversations: the replay, its checks and its figures,
against the fake OpenAI API over HTTP."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections import Counter

import pytest

from bot.config import load_settings
from bot.evaluation.replay import (
    cases_of,
    compare,
    data_dir,
    default_conversations,
    format_replay_table,
    load_brands,
    load_conversations,
    load_report,
    run_replay,
    select,
)
from tests.cli import run as run_conversant
from tests.conftest import triage

CONVERSATIONS = load_conversations(default_conversations())
BY_NUMBER = dict(CONVERSATIONS)
ADOBE_FOLLOW_UP = 71  # AdobeCare: an export crash, the agent asks, the customer answers, the agent answers again


def sent(request: dict) -> dict:
    user = request["messages"][1]["content"]
    return json.loads(user.split("<untrusted_mention>")[1].split("</untrusted_mention>")[0])


def kind(request: dict) -> str:
    return request["response_format"]["json_schema"]["name"]


@pytest.fixture
def settings(model):
    return load_settings({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url, "OPENAI_TIMEOUT_SECONDS": "5",
                          "OPENAI_MAX_RETRIES": "0"}, dotenv_path="/nonexistent/.env")


def conversant(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    return run_conversant(args, env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_conversations_ship_with_their_attribution_and_every_brand_is_known():
    assert len(CONVERSATIONS) == 500
    brands = load_brands()
    assert {c.company for _, c in CONVERSATIONS} == set(brands)  # 25 support accounts, each with a name and domains
    assert brands["HPSupport"].domains == ("hp.com",)
    notice = (data_dir() / "NOTICE.md").read_text()
    assert "IBM" in notice and "Apache License, Version 2.0" in notice and "customerNxM" in notice
    assert "Apache License" in (data_dir() / "LICENSE-customer-care.txt").read_text()


def test_the_sample_is_fixed_by_its_seed():
    first = select(CONVERSATIONS, limit=100)
    assert [n for n, _ in first] == [n for n, _ in select(CONVERSATIONS, limit=100)]
    assert [n for n, _ in first] != [n for n, _ in select(CONVERSATIONS, seed=12, limit=100)]
    assert len({c.company for _, c in first}) > 10  # a shuffle, not the file's first brand
    adobe = select(CONVERSATIONS, brands=["adobecare", "HPSupport"])
    assert {c.company for _, c in adobe} == {"AdobeCare", "HPSupport"} and len(adobe) == 27 + 57
    # a brand's sample is the whole sample's order restricted to it: the same turns in both runs
    assert [n for n, c in select(CONVERSATIONS) if c.company in ("AdobeCare", "HPSupport")] == [n for n, _ in adobe]


def test_each_answered_customer_turn_is_one_case_with_the_thread_so_far():
    cases = cases_of(ADOBE_FOLLOW_UP, BY_NUMBER[ADOBE_FOLLOW_UP])
    assert [c.turn for c in cases] == [0, 2]
    first, follow_up = cases
    assert first.context.thread == [] and first.conversation.reason == "mention"
    assert follow_up.conversation.reason == "reply"
    assert follow_up.conversation.text.startswith("@AdobeCare No...media export went on as usual")
    assert follow_up.conversation.parent_text.startswith("@customer71x0 Hi there, sorry to hear that.")
    [earlier] = follow_up.context.thread
    assert earlier.author == "customer71x0" and earlier.said.startswith("EP4 video @AdobePremiere export just crashed")
    assert earlier.we_replied.startswith("@customer71x0 Hi there, sorry to hear that.")
    assert follow_up.agent_reply.startswith("@customer71x0 Thanks, our expert will be back")
    # two customer posts before one answer: only the second is answered, the first is its thread
    number, conversation = next((n, c) for n, c in CONVERSATIONS if [t.role for t in c.turns] == ["customer", "customer", "agent"])
    [case] = cases_of(number, conversation)
    assert case.turn == 1 and [t.said for t in case.context.thread] == [conversation.turns[0].text]


def test_the_drafter_sees_the_conversation_as_production_shows_it(settings, model):
    model.reply_with(triage("Sorry the file vanished after a 56 hour export! Which version of Premiere Pro are you on?"))

    report = run_replay(settings, [(ADOBE_FOLLOW_UP, BY_NUMBER[ADOBE_FOLLOW_UP])])

    first, follow_up = sorted(model.chat_requests(), key=lambda r: "thread_so_far" in r["messages"][1]["content"])
    assert "Adobe" in first["messages"][0]["content"]  # the brand's name from brands.json in the prompts
    assert "thread_so_far" not in sent(first) and sent(first)["kind"] == "mention" and sent(first)["platform"] == "X"
    mention = sent(follow_up)
    assert mention["kind"] == "reply" and mention["in_reply_to"].startswith("@customer71x0 Hi there")
    assert mention["thread_so_far"][0]["we_replied"].startswith("@customer71x0 Hi there, sorry to hear that.")
    assert "our expert will be back" not in json.dumps(follow_up)  # the answer being compared is never shown
    assert "Draft a reply on X; it must be at most 280 characters." in follow_up["messages"][1]["content"]
    assert [r.outcome for r in report.results] == ["drafted", "drafted"]


def test_each_draft_is_checked_against_the_conversation_and_the_agent(settings, model):
    hp = next(n for n, c in CONVERSATIONS if c.company == "HPSupport" and len(c.turns) == 2 and "?" not in c.turns[1].text)
    asking = next(n for n, c in CONVERSATIONS if c.company == "DropboxSupport" and len(c.turns) == 2 and "?" in c.turns[1].text)
    cases = {n: BY_NUMBER[n] for n in (hp, asking, ADOBE_FOLLOW_UP)}
    customer_link = "https://www.patreon.com:443/bmblfck"  # in the AdobeCare customer's first post
    drafts = {
        hp: triage("Sorry about the cartridge! See https://support.hp.com/us-en/help or https://hp-deals.example/x"),
        asking: triage("Désolé pour ce problème, nous allons vérifier votre compte très rapidement."),
        ADOBE_FOLLOW_UP: [triage(f"Thanks! Is this the episode at {customer_link} ? " + "So sorry. " * 30),
                          {"should_reply": True}],  # the follow-up: an answer that does not fit the schema
    }

    def respond(request):
        text = sent(request)["text"]
        for number, conversation in cases.items():
            if text == conversation.turns[0].text:
                answer = drafts[number]
                return answer[0] if isinstance(answer, list) else answer
        return drafts[ADOBE_FOLLOW_UP][1]

    model.responder = respond
    report = run_replay(settings, list(cases.items()))

    by_id = {r.id: r for r in report.results}
    links = by_id[f"{hp}.0"]
    assert links.invented_links == ["https://hp-deals.example/x"]  # support.hp.com is the brand's own
    assert links.checks["no_invented_link"] is False and links.checks["policy"] is False
    assert links.checks["asks_back"] is None  # the agent asked nothing
    french = by_id[f"{asking}.0"]
    assert (french.expected_language, french.draft_language, french.checks["language"]) == ("en", "fr", False)
    assert french.checks["asks_back"] is False  # the agent asked, the draft does not
    long = by_id[f"{ADOBE_FOLLOW_UP}.0"]
    assert long.checks["no_invented_link"] is True  # the customer posted that link
    assert long.checks["within_limit"] is False and long.draft_length > 280
    assert long.checks["asks_back"] is True
    invalid = by_id[f"{ADOBE_FOLLOW_UP}.2"]
    assert invalid.outcome == "invalid" and invalid.checks == {"schema_valid": False}

    overall = report.summary()
    assert overall["cases"] == 4 and overall["outcomes"]["drafted"] == 3 and overall["outcomes"]["invalid"] == 1
    assert overall["checks"]["schema_valid"] == {"passed": 3, "applicable": 4, "rate": 0.75}
    assert overall["checks"]["no_invented_link"] == {"passed": 2, "applicable": 3, "rate": 0.667}
    assert overall["checks"]["asks_back"] == {"passed": 1, "applicable": 2, "rate": 0.5}
    assert overall["length"]["longer_than_agent"]["passed"] >= 1
    assert set(report.by_brand()) == {"AdobeCare", "DropboxSupport", "HPSupport"}
    assert report.by_brand()["AdobeCare"]["cases"] == 2
    table = format_replay_table(report)
    assert "invents no link                    2/3 (67%)" in table
    assert [line.split()[0] for line in table.splitlines() if line.split()[:1] in (["AdobeCare"], ["overall"])] == ["AdobeCare", "overall"]


def test_skips_and_failures_are_counted_not_crashed_on(settings, model):
    chosen = select(CONVERSATIONS, limit=3)
    answers = iter([triage("", should_reply=False, category="other")])

    def respond(request):
        answer = next(answers, None)
        if answer is None:
            raise RuntimeError("the model fell over")  # the fake answers HTTP 500
        return answer

    model.responder = respond
    report = run_replay(load_settings({**{"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url},
                                       "OPENAI_CONCURRENCY": "1", "OPENAI_MAX_RETRIES": "0"}, dotenv_path="/x/.env"), chosen)

    outcomes = Counter(r.outcome for r in report.results)
    assert outcomes == {"skipped": 1, "no_answer": len(report.results) - 1}
    overall = report.summary()
    assert overall["checks"]["needs_reply"] == {"passed": 0, "applicable": 1, "rate": 0.0}
    assert overall["checks"]["schema_valid"]["applicable"] == 1  # no answer says nothing about the schema
    assert "answered HTTP 500" in next(r.error for r in report.results if r.outcome == "no_answer")


def test_similarity_to_the_agents_reply_lexical_and_by_embeddings(model):
    number, conversation = select(CONVERSATIONS, limit=1)[0]
    agent = conversation.turns[1].text
    model.reply_with(triage(agent))  # the agent's words, its @handle included
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url}

    lexical = run_replay(load_settings(env, dotenv_path="/x/.env"), [(number, conversation)])
    embedded = run_replay(load_settings({**env, "OPENAI_EMBEDDING_MODEL": "text-embedding-3-small"}, dotenv_path="/x/.env"),
                          [(number, conversation)])

    assert lexical.results[0].lexical_similarity == 1.0  # the agent's own words, handle aside
    assert lexical.results[0].embedding_similarity is None
    assert embedded.results[0].embedding_similarity == pytest.approx(1.0, abs=0.001)
    assert embedded.summary()["similarity"]["embedding_mean"] == pytest.approx(1.0, abs=0.001)
    assert model.requests_to("/v1/embeddings")

    model.reply_with(triage("Totally unrelated words about weather and pancakes."))
    unrelated = run_replay(load_settings(env, dotenv_path="/x/.env"), [(number, conversation)])
    assert unrelated.results[0].lexical_similarity < 0.4


def test_the_judge_is_asked_twice_with_the_order_swapped(settings, model):
    chosen = select(CONVERSATIONS, limit=2)
    draft = "So sorry about this! Could you tell us which device you're on?"

    def respond(request):
        if kind(request) == "triage":
            return triage(draft)
        content = request["messages"][1]["content"]
        reply_a = content.split("<reply_A>")[1].split("</reply_A>")[0]
        return {"reason": "it asks", "better": "A" if draft in reply_a else "B"}

    model.responder = respond
    fair = run_replay(settings, chosen, judge=True)
    judged = [r for r in model.chat_requests() if kind(r) == "preference"]
    assert len(judged) == 2 * len(fair.results)
    placed = [draft in r["messages"][1]["content"].split("<reply_B>")[0] for r in judged]
    assert sorted(placed) == [False] * len(fair.results) + [True] * len(fair.results)  # once as A, once as B
    assert "Which reply would the customer rather get?" in judged[0]["messages"][1]["content"]
    assert "<untrusted_conversation>" in judged[0]["messages"][1]["content"]
    assert [r.preference for r in fair.results] == ["draft"] * len(fair.results)
    assert fair.summary()["preference"]["draft"] == len(fair.results)


def test_a_judge_stuck_on_one_position_gives_ties(settings, model, tmp_path):
    for name in ("system.md", "voice.md", "examples.md"):
        (tmp_path / name).write_text("Reply kindly.")
    (tmp_path / "preference.md").write_text("Pick one.")
    model.responder = lambda request: triage("Sorry! Which device?") if kind(request) == "triage" else {"reason": "first", "better": "A"}

    report = run_replay(dataclasses.replace(settings, prompts_dir=tmp_path), select(CONVERSATIONS, limit=2), judge=True)

    assert {r.preference for r in report.results} == {"tie"}
    assert report.summary()["preference"] == {"judged": 2, "errors": 0, "draft": 0, "tie": 2, "agent": 0,
                                              "draft_win_or_tie_rate": 1.0}


def test_the_command_replays_a_seeded_sample_with_progress_on_stderr(model, tmp_path):
    model.responder = lambda request: triage("Sorry about that! Which device are you on?")
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url}

    result = conversant("eval", "--limit", "3", "--json", "--output", str(tmp_path / "report.json"), env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sample"] == {"file": "customer-care-test.json", "seed": 11, "brands": "all", "limit": 3, "conversations": 3}
    assert report["overall"]["cases"] == len(report["results"]) >= 3
    assert sum(b["cases"] for b in report["brands"].values()) == report["overall"]["cases"]
    assert json.loads((tmp_path / "report.json").read_text())["overall"] == report["overall"]
    progress = [line for line in result.stderr.splitlines() if line.startswith("eval: [")]
    assert len(progress) == report["overall"]["cases"] and f"/{len(progress)}]" in progress[-1]

    table = conversant("eval", "--brands", "AdobeCare", "--limit", "2", env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = [line.split()[0] for line in table.stdout.splitlines() if line.split()[:1] in (["AdobeCare"], ["overall"])]
    assert rows == ["AdobeCare", "overall"]

    unknown = conversant("eval", "--brands", "Acme", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "no conversations for acme" in unknown.stderr and "AdobeCare" in unknown.stderr


def test_a_long_run_leaves_the_figures_of_the_turns_done_so_far(model, tmp_path):
    checkpoint = tmp_path / "report.json"
    seen_mid_run = []

    def respond(request):
        if checkpoint.exists():
            seen_mid_run.append(json.loads(checkpoint.read_text()))
        return triage("Sorry about that! Which device are you on?")

    model.responder = respond
    settings = load_settings({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url, "OPENAI_CONCURRENCY": "1"},
                             dotenv_path="/x/.env")

    report = run_replay(settings, select(CONVERSATIONS, limit=3), sample={"seed": 11}, checkpoint=checkpoint)

    assert [s["sample"]["completed"] for s in seen_mid_run] == list(range(1, len(report.results)))
    assert seen_mid_run[0]["overall"]["cases"] == 1 and seen_mid_run[0]["sample"]["seed"] == 11
    assert json.loads(checkpoint.read_text())["overall"]["cases"] == len(report.results)  # the last turn too


def test_before_and_after_are_compared_on_the_turns_both_runs_replayed(model, tmp_path):
    settings = load_settings({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url, "OPENAI_CONCURRENCY": "1"},
                             dotenv_path="/x/.env")
    model.reply_with(triage("We'll look into it at https://made-up.example/help " + "really " * 40))
    before = run_replay(settings, select(CONVERSATIONS, limit=3), checkpoint=tmp_path / "before.json")
    model.reply_with(triage("Sorry about that! Which device are you on?"))
    after = run_replay(settings, select(CONVERSATIONS, limit=2), checkpoint=tmp_path / "after.json")

    table = compare(load_report(tmp_path / "before.json"), load_report(tmp_path / "after.json"))

    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:4]] for line in table.splitlines()[2:]}
    both = len(after.results)
    assert rows["answered customer turns, both runs"] == [str(both), str(both)]  # the third turn only ran before
    assert rows["invents no link"] == [f"0/{both} (0%)", f"{both}/{both} (100%)"]
    assert rows["within X's limit"] == [f"0/{both} (0%)", f"{both}/{both} (100%)"]
    assert len(before.results) > both
