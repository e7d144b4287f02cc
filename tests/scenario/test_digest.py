"""The daily digest: its figures against a known set of conversations, the missed list, and the uploaded PNG chart."""
from __future__ import annotations

import io
import itertools
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from bot.jobs.digest import send_digest
from bot.stats import build_digest, percentile
from bot.models import Conversation, State, set_pause
from tests.cli import run as run_conversant
from tests.conftest import SIGNING_SECRET, eventually
from tests.fakes.slack_requests import post_signed, slash_command_body

END = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday
H = timedelta(hours=1)
M = timedelta(minutes=1)
_ids = itertools.count(1)


def add(services, *, posted: datetime, state: State, platform: str = "bluesky", handle: str | None = None, replied: timedelta | None = None, **fields) -> Conversation:
    """Store one conversation as the pipeline would have left it."""
    n = next(_ids)
    handle = handle or f"person{n}.test"
    conversation = Conversation(
        platform=platform, external_id=f"at://{handle}/post/{n}", thread_key=f"t{n}", thread_ref={"uri": f"at://{handle}/post/{n}"},
        reason="mention", author_id=f"did:plc:{n}", author_handle=handle, author_name=None, text=f"hello {n}",
        url=f"https://bsky.app/profile/{handle}/post/{n}", posted_at=posted, received_at=posted, updated_at=posted,
        state=state.value, policy_problems=[], post_attempts=0,
        replied_at=posted + replied if replied is not None else None, **fields,
    )
    with services.db.session() as session:
        session.add(conversation)
    return conversation


def known_day(services):
    """The 24 hours before END, and a week before that, with outcomes whose figures are worked out by hand."""
    start = END - 24 * H
    for minutes in (10, 20, 120):
        add(services, posted=start + 2 * H, state=State.REPLIED, replied=minutes * M)
    add(services, posted=start + 3 * H, state=State.REPLIED, platform="mastodon", replied=40 * M)
    add(services, posted=start + 4 * H, state=State.DISMISSED, dismiss_reason="spam")
    add(services, posted=start + 4 * H, state=State.DISMISSED, dismiss_reason="spam")
    add(services, posted=start + 5 * H, state=State.DISMISSED, dismiss_reason="not_relevant")
    add(services, posted=start + 6 * H, state=State.SKIPPED)
    add(services, posted=start + 7 * H, state=State.ANSWERED_ELSEWHERE)
    card_channel, card_ts = services.publisher.post({"text": "a card"})
    add(services, posted=END - 3 * H, state=State.CARDED, handle="never.test", urgency="normal", slack_channel=card_channel, slack_ts=card_ts)
    add(services, posted=END - 5 * H, state=State.CARDED, handle="claimed.test", urgency="high", claimed_by="U_BOB", slack_channel="C_REVIEW", slack_ts="1.000001")
    add(services, posted=END - 2 * H, state=State.POST_FAILED, handle="failed.test", urgency="low", slack_channel="C_REVIEW", slack_ts="1.000002")
    add(services, posted=END - 10 * M, state=State.CARDED, handle="fresh.test")  # within the SLA: waiting, not missed
    add(services, posted=END + H, state=State.CARDED)  # after the window
    week_before = start - 3 * 24 * H
    add(services, posted=week_before, state=State.REPLIED, replied=30 * M)
    add(services, posted=week_before, state=State.REPLIED, replied=60 * M)
    add(services, posted=week_before, state=State.DISMISSED, dismiss_reason="spam")
    add(services, posted=week_before, state=State.CARDED)


def digest_text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def fields(message: dict) -> dict[str, str]:
    (section,) = [b for b in message["blocks"] if "fields" in b]
    return dict(f["text"].replace("*", "").split("\n", 1) for f in section["fields"])


def lines_of(message: dict, heading: str) -> list[str]:
    for block in message["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        if heading in text:
            return text.splitlines()
    raise AssertionError(f"no block with {heading!r}")


def test_the_digest_reports_a_known_day_with_its_chart(make_services, slack):
    services = make_services(SLACK_DIGEST_CHANNEL="C_DIGEST", REVIEW_SLA_MINUTES="30")
    known_day(services)

    result = send_digest(services, end=END)

    message = slack.last("chat.postMessage")
    assert message["channel"] == "C_DIGEST" and result.channel == "C_DIGEST"
    assert message["blocks"][0]["text"]["text"] == "Conversant daily digest · Tue 24 Nov 2026"
    assert fields(message) == {
        "Received": "13", "Replied": "4", "Dismissed": "3 (spam 2, not relevant 1)", "Skipped by triage": "1",
        "Answered elsewhere": "1", "Missed": ":warning: 3",
    }
    rate = lines_of(message, "Response rate")
    assert rate[0] == "*Response rate:* 56% (5 of the 9 that needed an answer) · ↓ 11 pts vs the previous 7 days (67%)"
    assert rate[1] == "*Received:* 13 vs 0.6 a day over the previous 7 days"
    assert rate[2] == "1 more still waiting, within the SLA"
    times = lines_of(message, "Time to first reply")
    assert times[1] == "• All platforms: 20 min · 2 h (4 replies) · 10 min faster than the previous 7 days (30 min)"
    assert times[2] == "• Bluesky: 20 min · 2 h (3 replies) · 10 min faster than the previous 7 days (30 min)"
    assert times[3] == "• Mastodon: 40 min · 40 min (1 reply)"

    missed = lines_of(message, "Missed: 3")
    assert missed[0] == "*Missed: 3*, most urgent first (past the 30 min SLA with no answer):"
    assert missed[1].startswith("• <https://bsky.app/profile/claimed.test/post/") and missed[1].endswith(
        "|@claimed.test on Bluesky> · high urgency · waited 5 h · claimed by <@U_BOB> but not sent")
    assert missed[2].startswith("• <https://bsky.app/profile/never.test/post/")
    assert f"(<https://conversant-test.slack.com/archives/C_REVIEW/p{card_ts_digits(slack)}|card>)" in missed[2]
    assert missed[2].endswith("· normal urgency · waited 3 h · never claimed")
    assert missed[3].endswith("|@failed.test on Bluesky> · low urgency · waited 2 h · post failed")

    (png,) = slack.uploads.values()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(png)).size == (1000, 640)
    (chart,) = slack.files.values()
    assert chart["channel_id"] == "C_DIGEST" and chart["name"] == "conversant-digest-2026-11-24.png" and result.file_id == chart["id"]


def card_ts_digits(slack) -> str:
    (card,) = [m for m in slack.messages.values() if m["text"] == "a card"]
    return card["ts"].replace(".", "")


def test_the_chart_counts_mentions_and_replies_per_hour_and_the_14_day_rate(make_services):
    services = make_services(DIGEST_TIMEZONE="Europe/Berlin")
    known_day(services)

    digest = build_digest(services.db, services.settings, end=END)

    assert digest.hour_labels[0] == "10:00" and digest.hour_labels[-1] == "09:00"  # Berlin is UTC+1 in November
    assert sum(digest.received_per_hour) == 13 and digest.received_per_hour[2] == 3
    assert digest.answered_per_hour[2] == 2 and digest.answered_per_hour[4] == 1 and sum(digest.answered_per_hour) == 4
    assert len(digest.trend) == 14 and digest.trend[-1] == ("24 Nov", 5 / 9)
    assert digest.trend[-4] == ("21 Nov", 2 / 3) and digest.trend[0][1] is None


def test_business_hours_response_times_and_arrivals_outside_them(make_services, slack):
    services = make_services(BUSINESS_HOURS="Mon-Fri 09:00-17:00")
    monday = END - 24 * H
    add(services, posted=monday + 7 * H + 50 * M, state=State.REPLIED, replied=16 * H)  # 16:50 Mon → 08:50 Tue
    add(services, posted=monday + 11 * H, state=State.CARDED, handle="night.test", slack_ts="1.1")  # 20:00 Mon

    send_digest(services, end=END)

    message = slack.last("chat.postMessage")
    times = lines_of(message, "Time to first reply")
    assert times[0] == "*Time to first reply* (median · 90th percentile · in business hours)"
    assert times[1].startswith("• All platforms: 16 h · 16 h · 10 min · 10 min (1 reply)")
    assert lines_of(message, "Missed: 1")[1].endswith("· arrived outside business hours")


def test_a_day_with_nothing_missed_says_so_plainly(make_services, slack):
    services = make_services()
    add(services, posted=END - 5 * H, state=State.REPLIED, replied=5 * M)
    add(services, posted=END - 5 * M, state=State.CARDED)  # still within the SLA

    send_digest(services, end=END)

    message = slack.last("chat.postMessage")
    assert fields(message)["Missed"] == "0"
    assert ":white_check_mark: *Nothing was missed.*" in digest_text(message)
    assert message["text"] == "Conversant digest: 2 received, 1 replied, nothing missed"
    assert len(slack.uploads) == 1


def test_an_empty_day_while_paused_still_gets_a_digest_and_a_chart(make_services, slack):
    services = make_services()
    with services.db.session() as session:
        set_pause(session, "U_LEAD", END - 2 * H)
    send_digest(services, end=END)
    text = digest_text(slack.last("chat.postMessage"))
    assert "Conversant is paused* (by <@U_LEAD>" in text
    assert "No mentions arrived in these 24 hours" in text
    assert "no conversation needed an answer" in text and "no replies were sent" in text
    assert next(iter(slack.uploads.values())).startswith(b"\x89PNG")


def test_many_missed_are_listed_up_to_ten_then_and_n_more(make_services, slack):
    services = make_services()
    for i in range(12):
        add(services, posted=END - (2 + i) * H, state=State.CARDED, handle=f"m{i}.test")
    send_digest(services, end=END)
    missed = lines_of(slack.last("chat.postMessage"), "Missed: 12")
    assert len(missed) == 12 and missed[-1] == "…and 2 more."
    assert "@m11.test" in missed[1] and "@m2.test" in missed[10]  # no urgency given: oldest first


def test_a_failed_chart_upload_leaves_the_digest_standing(make_services, slack):
    services = make_services()
    slack.fail_next("files.getUploadURLExternal", "missing_scope")
    result = send_digest(services, end=END)
    assert result.file_id is None and slack.uploads == {}
    assert slack.last("chat.postMessage")["text"].startswith("Conversant digest:")


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5], 0.9) == 5
    assert percentile([4, 1, 3, 2], 0.5) == 2 and percentile(list(range(1, 11)), 0.9) == 9


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the same code as send_digest, on one database
def test_digest_now_from_the_command_line(env, tmp_path, services, slack):
    add(services, posted=datetime.now(UTC) - 2 * H, state=State.CARDED)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    result = run_conversant(["digest", "--now"], env={**clean, **env, "SLACK_DIGEST_CHANNEL": "C_DIGEST"},
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "conversant: digest posted to C_DIGEST with its chart: 1 missed"
    assert slack.last("chat.postMessage")["channel"] == "C_DIGEST" and len(slack.uploads) == 1
    assert env["SLACK_BOT_TOKEN"] not in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_digest_from_the_slash_command_acks_then_posts(make_services, slack):
    from tests.conftest import serve_web

    services = make_services(SLACK_DIGEST_CHANNEL="C_DIGEST")
    with serve_web(services) as web:
        status, body = post_signed(f"{web}/slack/events", slash_command_body(user_id="U_ALICE", text="digest"), SIGNING_SECRET)
        assert status == 200 and "Posting the digest of the last 24 hours to <#C_DIGEST>" in body
        eventually(lambda: slack.uploads)
    assert slack.last("chat.postMessage")["channel"] == "C_DIGEST"
