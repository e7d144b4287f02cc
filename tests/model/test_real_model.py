"""The production drafter against a real OpenAI-compatible server: llama.cpp's `llama-server` with SmolLM2-135M.

Through the real `openai` SDK: structured triage and drafts (json_schema), the poll
cycle with cards labelled by model, redraft, the eval's judge, embeddings, two
drafts at once on two slots, a timeout, an answer cut off by max_tokens, the
server killed and restarted mid-cycle, and `conversant doctor`'s measure.
Validity and behaviour only: the model's words change from run to run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from sqlalchemy import select

from bot import examples, flows, policy
from bot.config import load_settings
from bot.draft import build_messages, load_prompts, reply_cap
from bot.evaluation import judge_schema, load_rubric, parse_verdict
from bot.evaluation.replay import PREFERENCE_SCHEMA, load_preference_prompt
from bot.llm import CATEGORIES, Drafter, DraftUnavailable
from bot.models import Conversation, State
from bot.platforms.formats import format_for
from bot.pipeline import poll_once
from bot.models import Direction
from bot.services import build_services
from tests.model.conftest import SLOTS, model_env, start_server
from tests.support import card_text

MENTIONS = [
    "@brand.test my order hasn't arrived after two weeks. What is going on?",
    "@brand.test the new update is lovely, the dark mode is exactly what I wanted!",
    "@brand.test est-ce que l'application fonctionne hors ligne ?",
]


def sample(text: str, handle: str = "alice.test") -> Conversation:
    return Conversation(platform="bluesky", author_handle=handle, author_name="Alice", reason="mention", text=text, parent_text=None)


def triage_messages(settings, text: str) -> list[dict]:
    mention = sample(text)
    return build_messages(load_prompts(settings), mention, policy.reply_rules(format_for("bluesky"), mention, ()))


def settings_for(env: dict, **overrides):
    return load_settings({**env, **overrides}, dotenv_path="/nonexistent/.env")


def busy_slots(server) -> int:
    return sum(bool(s.get("is_processing")) for s in httpx.get(f"{server.base_url}/slots", timeout=5).json())


def conversations(services) -> list[Conversation]:
    with services.db.session() as session:
        return list(session.scalars(select(Conversation).order_by(Conversation.id)))


def settle(services, deadline_seconds: float = 600) -> list:
    """Poll cycles until every mention is carded or skipped: a slow model's drafts finish after the
    cycle that started them, and the next cycle cards them, as in production."""
    reports, deadline = [], time.monotonic() + deadline_seconds
    while True:
        reports.append(poll_once(services))
        if all(c.state in (State.CARDED.value, State.SKIPPED.value) for c in conversations(services)):
            return reports
        assert time.monotonic() < deadline, [c.state for c in conversations(services)]
        time.sleep(1)


def assert_card_has_a_labelled_draft_or_says_why_not(card: dict, served_model: str) -> None:
    text = card_text(card)
    if "No draft available" in text:
        assert "No draft:" in text or "No draft is available" in text  # a reason, never an empty promise
    else:
        assert f"drafted by {served_model}" in text


def test_a_poll_cycle_cards_real_drafts_labelled_with_the_model(make_real_services, slack, bluesky, served_model):
    services = make_real_services()
    for text in MENTIONS[:2]:
        bluesky.post("alice.test", text)

    reports = settle(services)

    cards = slack.calls_to("chat.postMessage")
    stored = conversations(services)
    assert len(stored) == 2
    assert len(cards) == sum(r.carded for r in reports) == sum(c.state == State.CARDED.value for c in stored)
    for card in cards:
        assert_card_has_a_labelled_draft_or_says_why_not(card, served_model)
    assert all(c.draft_model == served_model for c in stored if c.draft_text)
    assert all(c.triage_reason for c in stored if c.state == State.SKIPPED.value)  # skipped by the model, with its reason


def redrafted(result, services, conversation_id: int, served_model: str) -> bool:
    """A redraft that reached the model: a new draft by it, or (the model chose to write nothing) the reason."""
    if not result.done:
        assert result.message.startswith("The model gave an empty draft"), result.message
        return False
    conversation = next(c for c in conversations(services) if c.id == conversation_id)
    assert conversation.draft_text and conversation.draft_model == served_model and conversation.draft_error is None
    return True


def test_a_cut_off_answer_gives_no_draft_then_redraft_edit_send_and_embeddings_find_it(llama, make_real_services, slack, bluesky, served_model):
    raw = openai.OpenAI(base_url=llama.api_url, api_key="none", max_retries=0).chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Write a long story about a lighthouse."}], max_tokens=8)
    assert raw.choices[0].finish_reason == "length"  # what the real server says of a cut answer

    short = make_real_services(OPENAI_MAX_TOKENS="16")
    bluesky.post("alice.test", MENTIONS[0])
    settle(short)

    text = card_text(slack.last("chat.postMessage"))
    assert "No draft available" in text and "cut off at 16 tokens" in text  # never half a reply
    conversation = conversations(short)[0]
    assert conversation.state == State.CARDED.value and conversation.draft_text is None

    services = make_real_services()
    if redrafted(flows.redraft(services, conversation.id, "U_ALICE", Direction.SHORTER), services, conversation.id, served_model):
        assert f"drafted by {served_model}" in card_text(slack.last("chat.update"))

    vectors = services.drafter.embed(["refund please", "my refund has not arrived", "refund please"])
    assert len(vectors) == 3 and len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 16
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-4) and vectors[0] != pytest.approx(vectors[1], abs=1e-4)
    # The team writes the reply (Edit); once sent it becomes an example, with its mention's embedding.
    assert flows.approve_edited(services, conversation.id, "U_ALICE", "Sorry about the wait! What's your order number?").done
    flows.send(services, conversation.id)
    found = examples.similar(services.db, services.drafter, services.settings, "@brand.test my order still hasn't arrived, where is it?", "bluesky")
    assert [e.mention_text for e in found] == [MENTIONS[0]]
    with services.db.session() as session:
        assert session.scalar(select(examples.Example.embedding_model)) == "smollm2"


def test_the_eval_judges_answer_in_their_schemas(real_env):
    """`conversant eval --judge`: the 1-5 rubric for sample mentions and the pairwise preference for
    replayed conversations, each answer held to its production schema by the server."""
    settings = settings_for(real_env)  # the default OPENAI_MAX_TOKENS, as `conversant eval --judge` runs
    drafter = Drafter(settings)
    rubric = load_rubric(settings)
    case = {"mention": MENTIONS[0], "draft_reply": "Sorry about the wait! Could you send us your order number?"}
    verdict = drafter.complete_json([{"role": "system", "content": rubric.text}, {"role": "user", "content": json.dumps(case)}],
                                    name="judge", schema=judge_schema(rubric))
    # the schema bounds the list to one entry per criterion and each reason to one sentence, so
    # even a 135M model that would repeat them until cut off answers in full
    assert set(verdict) == {"criteria", "overall", "summary"} and verdict["overall"] in range(1, 6)
    assert len(verdict["criteria"]) == len(rubric.criteria)
    assert all(c["name"] in rubric.criteria and c["score"] in range(1, 6) and len(c["reason"]) <= 150 for c in verdict["criteria"])
    try:
        parse_verdict(verdict, rubric)
    except ValueError as error:  # a criterion named twice, another left out: the eval reports it as the judge's error
        assert "criteria do not match the rubric" in str(error)

    messages = [{"role": "system", "content": load_preference_prompt(settings)},
                {"role": "user", "content": json.dumps({"customer_now": MENTIONS[0], "reply_A": case["draft_reply"],
                                                        "reply_B": "We are looking into it."})}]
    preference = drafter.complete_json(messages, name="preference", schema=PREFERENCE_SCHEMA)
    assert set(preference) == {"reason", "better"} and preference["better"] in ("A", "B") and len(preference["reason"]) <= 300


def test_drafts_come_back_valid_through_json_schema_two_at_once_on_the_two_slots(llama, real_env, served_model):
    settings = settings_for(real_env, OPENAI_CONCURRENCY="4")
    drafter = Drafter(settings)
    most_busy = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most_busy
        while not done.is_set():
            most_busy = max(most_busy, busy_slots(llama))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(3) as pool:
            drafts = list(pool.map(lambda text: drafter.triage(triage_messages(settings, text), reply_max_chars=reply_cap(300)), MENTIONS))
    finally:
        done.set()
        watcher.join()
    for triage in drafts:  # validated by the production schema; the model named as its server names it
        assert triage.category in CATEGORIES and triage.drafted_by == served_model
        assert not triage.should_reply or triage.reply.strip()
    assert drafter.server_slots == SLOTS and drafter.concurrency == SLOTS  # OPENAI_CONCURRENCY=4 held to the server's 2
    assert most_busy == SLOTS


def test_a_timeout_gives_no_draft_sends_once_and_the_server_drops_the_abandoned_answer(llama, real_env):
    settings = settings_for(real_env, OPENAI_TIMEOUT_SECONDS="0.3", OPENAI_MAX_RETRIES="2")
    drafter = Drafter(settings)
    sent = []
    drafter.client._client.event_hooks["request"].append(lambda request: sent.append(request.url.path))

    with pytest.raises(DraftUnavailable, match="did not answer in time"):
        drafter.triage(triage_messages(settings, MENTIONS[0]))
    assert sent.count("/v1/chat/completions") == 1

    deadline = time.monotonic() + 30  # llama.cpp stops generating for a client that hung up
    while busy_slots(llama) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert busy_slots(llama) == 0


def test_server_killed_mid_cycle_then_restarted(slack, bluesky, sqlite_url, served_model):
    server = start_server(embeddings=False)
    services = build_services(settings_for(model_env(server.api_url, slack, bluesky, sqlite_url, OPENAI_MAX_RETRIES="1",
                                                     OPENAI_EMBEDDING_MODEL="")))
    try:
        for i, text in enumerate(MENTIONS[:2]):
            bluesky.post("alice.test" if i % 2 else "bob.test", text)

        def kill_while_drafting() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not busy_slots(server):
                time.sleep(0.02)
            server.stop(kill=True)

        killer = threading.Thread(target=kill_while_drafting)
        killer.start()
        settle(services)  # the drafts under way fail at once: cards now, saying why
        killer.join()

        stored = conversations(services)
        failed = [c for c in stored if c.state == State.CARDED.value and not c.draft_text]
        assert failed, "the kill came too late: every draft was done"
        assert all(c.draft_error and c.draft_error.startswith("No draft: ") for c in failed)
        for card in slack.calls_to("chat.postMessage"):
            assert_card_has_a_labelled_draft_or_says_why_not(card, served_model)

        server.start()  # same port, as a supervisor would restart it
        redrafted(services.redrafter.redraft(failed[0].id, "U_ALICE", Direction.WARMER), services, failed[0].id, served_model)
    finally:
        server.stop()
        services.db.dispose()


def test_doctor_measures_the_real_model_and_says_what_to_set(real_env, tmp_path):
    env = {**real_env, "OPENAI_TIMEOUT_SECONDS": ""}
    result = conversant("doctor", env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout
    speed = next(line for line in result.stdout.splitlines() if "model speed" in line)
    assert speed.startswith("  ok") and "drafts a minute" in speed and f"{SLOTS} at once" in speed
    assert "OPENAI_TIMEOUT_SECONDS=" in result.stdout


def conversant(*args: str, env: dict, cwd, timeout: float) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "-m", "bot", *args], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
