"""The drafter adapts to the model's server: its slots, its speed, no re-send of a request it may still run,
and no half answer ever shown. Against the fake OpenAI API, llama.cpp's behaviour switched on with ``slots``."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.config import load_settings
from bot.llm import FIRST_TIMEOUT, TIMEOUT_MARGIN, Drafter, DraftUnavailable
from bot.pipeline import poll_once
from tests.conftest import triage
from tests.support import card_buttons, card_text, load

MESSAGES = [{"role": "system", "content": "Triage the mention."}, {"role": "user", "content": "@brand.test hello?"}]


def drafter_for(model, **env) -> Drafter:
    base = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url}
    return Drafter(load_settings({**base, **env}, dotenv_path="/nonexistent/.env"))


def test_no_more_requests_at_once_than_the_server_has_slots(model):
    model.slots = 2
    model.set_delay(0.2)
    model.reply_with(triage())
    drafter = drafter_for(model, OPENAI_CONCURRENCY="4", OPENAI_TIMEOUT_SECONDS="5")

    with ThreadPoolExecutor(6) as pool:
        drafts = list(pool.map(lambda _: drafter.triage(MESSAGES), range(6)))

    assert all(d.should_reply for d in drafts) and drafter.concurrency == 2 and drafter.server_slots == 2
    assert model.most_at_once == 2


def test_without_slots_to_report_the_configured_concurrency_holds(model):
    model.set_delay(0.2)
    model.reply_with(triage())
    drafter = drafter_for(model, OPENAI_CONCURRENCY="3", OPENAI_TIMEOUT_SECONDS="5")
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: drafter.triage(MESSAGES), range(6)))
    assert drafter.server_slots is None and model.most_at_once == 3


def test_a_timed_out_request_is_not_sent_again(model):
    model.reply_with(triage())
    model.set_delay(1)
    drafter = drafter_for(model, OPENAI_TIMEOUT_SECONDS="0.2", OPENAI_MAX_RETRIES="2")
    with pytest.raises(DraftUnavailable, match="did not answer in time"):
        drafter.triage(MESSAGES)
    assert len(model.chat_requests()) == 1


def test_a_server_still_loading_its_model_is_asked_again(model):
    model.reply_with(triage())
    model.fail_next(status=503, body={"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}})
    drafter = drafter_for(model, OPENAI_MAX_RETRIES="2")
    assert drafter.triage(MESSAGES).should_reply
    assert len(model.chat_requests()) == 2


def test_the_timeout_covers_a_whole_answer_at_the_measured_speed(model):
    model.slots = 1
    model.tokens_per_second = 10.0
    model.reply_with(triage())
    drafter = drafter_for(model, OPENAI_MAX_TOKENS="600")
    assert drafter.timeout() == FIRST_TIMEOUT  # nothing measured yet: room for a server still loading
    drafter.triage(MESSAGES)
    prompt_seconds, tokens_per_second = drafter.speed()
    assert tokens_per_second == pytest.approx(10.0)
    assert drafter.timeout() == pytest.approx(TIMEOUT_MARGIN * (prompt_seconds + 600 / 10.0))

    pinned = drafter_for(model, OPENAI_TIMEOUT_SECONDS="7")
    pinned.triage(MESSAGES)
    assert pinned.timeout() == 7


def test_an_answer_cut_off_at_max_tokens_gives_a_card_without_draft_saying_why(make_services, slack, model, bluesky):
    services = make_services(OPENAI_MAX_TOKENS="16")
    model.reply_with(triage("Thanks for asking! " * 20))
    bluesky.post("alice.test", "@brand.test how do I export my notes?")

    poll_once(services)

    card = slack.last("chat.postMessage")
    assert model.chat_requests()[0]["max_tokens"] == 16
    assert "No draft available" in card_text(card) and "cut off at 16 tokens" in card_text(card)
    assert card_buttons(card) == ["Reply privately", "Edit", "Dismiss"] and load(services).draft_text is None


def test_the_card_says_which_model_drafted_it(services, slack, model, bluesky):
    model.reply_with(triage("Happy to help! Which app version are you on?"))
    bluesky.post("alice.test", "@brand.test how do I export my notes?")

    poll_once(services)

    assert "drafted by gpt-4o-mini-2024-07-18" in card_text(slack.last("chat.postMessage"))  # as the server named it
    assert load(services).draft_model == "gpt-4o-mini-2024-07-18"


def test_a_draft_over_the_limit_is_asked_for_once_more_shorter(services, slack, model, bluesky):
    long = "Thanks so much for reaching out about exporting your notes, we really appreciate it! " * 5  # ~420 of Bluesky's 300
    model.reply_sequence([triage(long, category="complaint"), triage("Sorry about that! Which app version are you on?", category="other")])
    bluesky.post("alice.test", "@brand.test how do I export my notes?")

    poll_once(services)

    conversation = load(services)
    assert conversation.draft_text == "Sorry about that! Which app version are you on?" and conversation.policy_problems == []
    assert conversation.category == "complaint"  # the triage is the first answer's; only the reply is rewritten
    first, second = model.chat_requests()
    asked = second["messages"][-1]
    assert asked["role"] == "system" and long.strip() in asked["content"] and "over the 300 that Bluesky allows" in asked["content"]
    assert "Which app version" in card_text(slack.last("chat.postMessage"))


def test_a_draft_still_too_long_is_kept_and_flagged_after_one_more_try(services, slack, model, bluesky):
    long = "Thanks so much for reaching out about exporting your notes, we really appreciate it! " * 5
    model.reply_with(triage(long))
    bluesky.post("alice.test", "@brand.test how do I export my notes?")

    poll_once(services)

    assert len(model.chat_requests()) == 2  # one more try, never a loop
    assert load(services).draft_text == long.strip() and "Too long for Bluesky" in card_text(slack.last("chat.postMessage"))


def test_a_draft_with_another_policy_problem_takes_one_request(services, slack, model, bluesky):
    model.reply_with(triage("@bob.test can help you with exporting your notes."))
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    poll_once(services)
    assert len(model.chat_requests()) == 1 and "Mentions @bob.test" in card_text(slack.last("chat.postMessage"))


def test_a_draft_within_the_limit_takes_one_request(services, slack, model, bluesky):
    model.reply_with(triage("Happy to help! Which app version are you on?"))
    bluesky.post("alice.test", "@brand.test how do I export my notes?")
    poll_once(services)
    assert len(model.chat_requests()) == 1
