"""Nudges about stale cards: threaded, mentioning on-call, at most once per repeat, Claim, Snooze, escalation, business hours.

Time is injected: each pass gets ``now`` computed from when the person posted,
so no test waits for a clock.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from bot.models import SnoozeFor
from bot.slack.payloads import ActionId, conversation_value
from bot.jobs.nudges import nudge_once
from bot.models import Conversation, State
from bot.pipeline import poll_once
from tests.cli import CliPopen
from tests.conftest import SIGNING_SECRET, eventually, serve_web, triage
from tests.fakes.slack_requests import block_actions_body, post_signed
from tests.support import card_text, carded_mention, click, load

MIN = timedelta(minutes=1)
PERMALINK = "https://conversant-test.slack.com/archives/C_REVIEW/p"


def thread_replies(slack, conv) -> list[dict]:
    """Messages Slack holds in the card's thread, oldest first."""
    return [m for m in list(slack.messages.values()) if m.get("thread_ts") == conv.slack_ts]


def top_level_posts(slack, channel: str) -> list[dict]:
    return [m for m in list(slack.messages.values()) if m["channel"] == channel and not m.get("thread_ts") and not m.get("blocks")]


def cards_for(services, bluesky, model, authors: list[str]) -> list[Conversation]:
    """One mention per author, oldest first, each carded."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    for i, author in enumerate(authors):
        if author not in ("alice.test", "bob.test"):
            bluesky.add_account(author)
        bluesky.post(author, f"@brand.test question from {author}", created_at=start + i * timedelta(seconds=10))
    model.reply_with(triage())
    poll_once(services)
    with services.db.session() as session:
        return list(session.query(Conversation).order_by(Conversation.posted_at))


def choose_snooze(web: str, conv, choice: SnoozeFor | None, user: str = "U_ALICE", value: str | None = None):
    """Pick an option of the card's *Snooze nudges* menu, as Slack sends a static_select choice."""
    body = block_actions_body(user_id=user, action_id=ActionId.SNOOZE.value, value="", message_ts=conv.slack_ts)
    payload = json.loads(parse_qs(body)["payload"][0])
    action = payload["actions"][0]
    del action["value"], action["text"]
    option_value = value if value is not None else conversation_value(conv.id, snooze=choice)
    action.update(type="static_select", selected_option={"text": {"type": "plain_text", "text": "Snooze"}, "value": option_value})
    return post_signed(f"{web}/slack/events", urlencode({"payload": json.dumps(payload)}), SIGNING_SECRET)


def test_a_stale_card_is_nudged_in_its_thread_mentioning_oncall_users_and_groups(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE,S_TEAM", REVIEW_SLA_MINUTES="30", NUDGE_REPEAT_MINUTES="60")
    conv = carded_mention(services, bluesky, model)
    posted = conv.posted_at

    assert nudge_once(services, now=posted + 29 * MIN).nudged == []  # not stale yet
    report = nudge_once(services, now=posted + 31 * MIN)

    assert report.nudged == [conv.id]
    (nudge,) = thread_replies(slack, conv)
    assert nudge["channel"] == "C_REVIEW" and nudge["thread_ts"] == conv.slack_ts
    assert nudge["text"].startswith("<@U_ONE> <!subteam^S_TEAM> :alarm_clock:")
    assert "@alice.test's Bluesky mention has waited 31 min, past the 30 min review SLA" in nudge["text"]

    nudge_once(services, now=posted + 90 * MIN)  # 59 minutes after the first nudge: too soon
    assert len(thread_replies(slack, conv)) == 1
    nudge_once(services, now=posted + 91 * MIN)
    assert len(thread_replies(slack, conv)) == 2 and "waited 1 h 31 min" in thread_replies(slack, conv)[-1]["text"]


def test_handled_cards_are_never_nudged(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        click(web, ActionId.APPROVE, conv)
        eventually(lambda: load(services).state == State.REPLIED.value)

    report = nudge_once(services, now=conv.posted_at + 5 * 60 * MIN)

    assert report.nudged == [] and report.escalated == [] and thread_replies(slack, conv) == []


def test_cards_answered_natively_or_deleted_meanwhile_are_closed_not_nudged(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE")
    answered, deleted = cards_for(services, bluesky, model, ["alice.test", "bob.test"])
    bluesky.post("brand.test", "Answered from the Bluesky app", reply_to=answered.thread_ref["uri"])
    bluesky.delete(deleted.thread_ref["uri"])

    report = nudge_once(services, now=deleted.posted_at + 31 * MIN)

    assert report.nudged == [] and sorted(report.settled) == sorted([answered.id, deleted.id])
    assert thread_replies(slack, answered) == [] and thread_replies(slack, deleted) == []
    assert load(services, answered.id).state == State.ANSWERED_ELSEWHERE.value
    assert load(services, deleted.id).state == State.DELETED.value
    updates = {u["ts"]: card_text(u) for u in slack.calls_to("chat.update")}
    assert "Already answered on Bluesky" in updates[answered.slack_ts] and "I'm on it" not in updates[answered.slack_ts]
    assert "Deleted by the author" in updates[deleted.slack_ts]


def test_many_stale_cards_get_one_message_listing_them_oldest_first(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="S_TEAM")
    cards = cards_for(services, bluesky, model, ["carol.test", "alice.test", "dave.test", "bob.test"])
    report = nudge_once(services, now=cards[0].posted_at + 45 * MIN)

    assert sorted(report.nudged) == sorted(c.id for c in cards) and report.messages == 1
    (message,) = top_level_posts(slack, "C_REVIEW")
    assert all(thread_replies(slack, c) == [] for c in cards)
    text = message["text"]
    assert text.startswith("<!subteam^S_TEAM> :alarm_clock: 4 conversations are waiting past the 30 min review SLA, oldest first:")
    lines = text.splitlines()[1:]
    assert [line.split("|")[1].split(" on ")[0] for line in lines] == ["@carol.test", "@alice.test", "@dave.test", "@bob.test"]
    assert all(line.startswith(f"• <{PERMALINK}") and "waiting 4" in line and "nobody on it" in line for line in lines)
    assert "waiting 45 min" in lines[0]


def test_claim_shows_who_has_it_and_nudges_only_them(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE,S_TEAM")
    conv = carded_mention(services, bluesky, model)
    assert "I'm on it" in card_text(slack.last("chat.postMessage"))

    with serve_web(services) as web:
        assert click(web, ActionId.CLAIM, conv, user="U_BOB")[0] == 200
        card = eventually(lambda: slack.calls_to("chat.update") and slack.last("chat.update"))
        assert "<@U_BOB> is on it" in card_text(card) and "I'm on it" not in card_text(card)
        assert card_text(card).count("Approve") == 1  # the card still works

        click(web, ActionId.CLAIM, conv, user="U_CAROL")  # an old copy of the card
        told = eventually(lambda: slack.ephemerals)[0]
        assert told["user"] == "U_CAROL" and told["text"] == "<@U_BOB> is already on this one."
        assert load(services).claimed_by == "U_BOB"

    nudge_once(services, now=conv.posted_at + 31 * MIN)
    (nudge,) = thread_replies(slack, conv)
    assert nudge["text"].startswith("<@U_BOB> :alarm_clock: You're on this one")
    assert "U_ONE" not in nudge["text"] and "subteam" not in nudge["text"]


def test_claiming_a_handled_card_or_with_a_bad_value_is_answered_privately(make_services, slack, model, bluesky):
    services = make_services(SLACK_APPROVERS="U_ALICE,U_BOB")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        click(web, ActionId.APPROVE, conv)
        eventually(lambda: load(services).state == State.REPLIED.value)
        assert click(web, ActionId.CLAIM, conv, value="{not json")[0] == 400
        assert choose_snooze(web, conv, None, value=json.dumps({"conversation": conv.id, "snooze": "forever"}))[0] == 400
        click(web, ActionId.CLAIM, conv, user="U_BOB")
        click(web, ActionId.CLAIM, conv, user="U_INTRUDER")
        told = eventually(lambda: len(slack.ephemerals) == 2 and {e["user"]: e["text"] for e in slack.ephemerals})
    assert "already handled" in told["U_BOB"] and "SLACK_APPROVERS" in told["U_INTRUDER"]
    assert load(services).claimed_by is None and load(services).snoozed_until is None


def test_snooze_for_an_hour_holds_the_nudges_then_they_resume(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        assert choose_snooze(web, conv, SnoozeFor.HOUR, user="U_BOB")[0] == 200
        card = eventually(lambda: slack.calls_to("chat.update") and slack.last("chat.update"))
    snoozed = load(services)
    assert timedelta(minutes=59) < snoozed.snoozed_until - conv.posted_at < timedelta(minutes=61)
    assert f"Nudges snoozed by <@U_BOB> until <!date^{int(snoozed.snoozed_until.timestamp())}^" in card_text(card)

    assert nudge_once(services, now=conv.posted_at + 31 * MIN).nudged == []
    assert nudge_once(services, now=snoozed.snoozed_until + MIN).nudged == [conv.id]
    assert len(thread_replies(slack, conv)) == 1


def test_snooze_until_tomorrow_means_the_next_opening_in_the_digest_time_zone(make_services, slack, model, bluesky):
    services = make_services(DIGEST_TIMEZONE="America/New_York", BUSINESS_HOURS="Mon-Sun 08:30-17:00")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        choose_snooze(web, conv, SnoozeFor.TOMORROW)
        eventually(lambda: load(services).snoozed_until)
    tz = ZoneInfo("America/New_York")
    clicked = load(services).snoozed_until.astimezone(tz)
    assert clicked.time().strftime("%H:%M") == "08:30"
    assert 0 < (clicked.date() - datetime.now(tz).date()).days <= 1
    assert nudge_once(services, now=conv.posted_at + 2 * 60 * MIN).nudged == []


def test_a_card_still_waiting_at_three_times_the_sla_is_escalated_once(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE", SLACK_DIGEST_CHANNEL="C_DIGEST", REVIEW_SLA_MINUTES="20")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        choose_snooze(web, conv, SnoozeFor.TOMORROW)  # a snooze holds nudges, not the escalation
        eventually(lambda: load(services).snoozed_until)

    assert nudge_once(services, now=conv.posted_at + 59 * MIN).escalated == []
    assert nudge_once(services, now=conv.posted_at + 61 * MIN).escalated == [conv.id]
    nudge_once(services, now=conv.posted_at + 6 * 60 * MIN)

    (escalation,) = top_level_posts(slack, "C_DIGEST")
    text = escalation["text"]
    assert text.startswith(":rotating_light: *Escalation:* @alice.test's Bluesky mention has waited 1 h 1 min, over 3× the 20 min review SLA")
    assert f"<{PERMALINK}" in text and f"<{conv.url}|the post>" in text and "nobody is on it" in text
    assert thread_replies(slack, conv) == []  # snoozed: no nudges


def test_outside_business_hours_nudges_wait_for_the_next_opening(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE", BUSINESS_HOURS="Mon-Fri 09:00-18:00", DIGEST_TIMEZONE="Europe/Berlin")
    conv = carded_mention(services, bluesky, model)
    berlin = ZoneInfo("Europe/Berlin")
    friday_evening = datetime(2026, 11, 27, 17, 50, tzinfo=berlin)
    with services.db.session() as session:
        session.execute(update(Conversation).values(posted_at=friday_evening))

    closed = nudge_once(services, now=datetime(2026, 11, 27, 18, 30, tzinfo=berlin))
    assert closed.nudged == [] and closed.closed_until == datetime(2026, 11, 30, 9, 0, tzinfo=berlin)
    assert nudge_once(services, now=datetime(2026, 11, 29, 12, 0, tzinfo=berlin)).nudged == []
    assert thread_replies(slack, conv) == []

    assert nudge_once(services, now=datetime(2026, 11, 30, 9, 0, tzinfo=berlin)).nudged == [conv.id]
    assert "has waited 2 d 15 h" in thread_replies(slack, conv)[0]["text"]


def test_a_nudge_slack_refuses_is_tried_again_next_pass(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE")
    conv = carded_mention(services, bluesky, model)
    slack.fail_next("chat.postMessage", "not_in_channel")

    assert nudge_once(services, now=conv.posted_at + 31 * MIN).nudged == []
    assert nudge_once(services, now=conv.posted_at + 32 * MIN).nudged == [conv.id]
    assert len(thread_replies(slack, conv)) == 1


def conversant(env: dict, cwd, *args: str) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BLUESKY_", "BRAND_", "DATABASE_URL"))}
    return CliPopen(args, env={**clean, **env}, cwd=cwd,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # many processes share PostgreSQL
def test_nudge_once_from_two_processes_at_once_nudges_each_card_once(env, tmp_path, services, slack, model, bluesky):
    cards = cards_for(services, bluesky, model, ["alice.test", "bob.test"])
    with services.db.session() as session:
        for conv in session.query(Conversation):
            conv.posted_at -= timedelta(minutes=40)
    oncall = {**env, "SLACK_ONCALL": "U_ONE"}

    processes = [conversant(oncall, tmp_path, "nudge", "--once") for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sum(int(re.search(r"(\d+) cards nudged", out)[1]) for out, _ in outputs) == 2
    for conv in cards:
        (nudge,) = thread_replies(slack, conv)
        assert nudge["text"].startswith("<@U_ONE> :alarm_clock:")
    assert env["SLACK_BOT_TOKEN"] not in "".join(out + err for out, err in outputs)
