"""The App Home tab and `/conversant status | pause | resume | digest | help`, through signed requests."""
from __future__ import annotations

import json
from datetime import timedelta


from bot.slack.payloads import ActionId
from bot.ingest import ingest
from bot.jobs.nudges import nudge_once
from bot.models import State
from bot.pipeline import poll_once
from tests.conftest import SIGNING_SECRET, eventually, serve_web, triage
from tests.fakes.slack_requests import event_body, post_signed, slash_command_body
from tests.support import carded_mention, click, load


def command(web: str, text: str, user: str = "U_ALICE") -> str:
    status, body = post_signed(f"{web}/slack/events", slash_command_body(user_id=user, text=text), SIGNING_SECRET)
    assert status == 200
    return body


def open_home(web: str, slack, user: str = "U_ALICE") -> str:
    slack.home_views.pop(user, None)
    event = {"type": "app_home_opened", "user": user, "channel": "D_HOME", "tab": "home", "event_ts": "1700000000.000100"}
    status, _ = post_signed(f"{web}/slack/events", event_body(event), SIGNING_SECRET, content_type="application/json")
    assert status == 200
    view = eventually(lambda: slack.home_views.get(user))
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_home_shows_the_queue_todays_figures_and_the_configuration(make_services, slack, model, bluesky):
    services = make_services(SLACK_DIGEST_CHANNEL="C_DIGEST", SLACK_ONCALL="S_TEAM", DIGEST_TIME="08:30",
                             DIGEST_TIMEZONE="Europe/Berlin", BUSINESS_HOURS="Mon-Fri 09:00-18:00", REVIEW_SLA_MINUTES="45")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        home = open_home(web, slack)
        assert "*Running*" in home
        assert "*Waiting for review* (1)" in home
        assert "|@alice.test on Bluesky> · waiting 0 min · nobody on it" in home
        assert "https://conversant-test.slack.com/archives/C_REVIEW/p" in home  # the queue links to the card
        assert "*1* received" in home and "*0* replied" in home
        for line in ("• Platforms: Bluesky", "• Review SLA: 45 min; nudges at most every 1 h", "• On call: <!subteam^S_TEAM>",
                     "• Business hours: Mon, Tue, Wed, Thu, Fri 09:00-18:00 (Europe/Berlin)",
                     "• Daily digest: 08:30 Europe/Berlin in <#C_DIGEST>", "• State: running"):
            assert line in home, line

        click(web, ActionId.CLAIM, conv, user="U_BOB")
        eventually(lambda: load(services).claimed_by == "U_BOB")
        assert "· <@U_BOB> is on it" in open_home(web, slack)

        click(web, ActionId.APPROVE, conv)
        eventually(lambda: load(services).state == State.REPLIED.value)
        home = open_home(web, slack)
    assert "*Waiting for review* (0)" in home and "Nothing is waiting" in home
    assert "*1* replied" in home and "response rate *100%*" in home


def test_pause_stops_polling_and_nudges_and_shows_everywhere_until_resume(make_services, slack, model, bluesky):
    services = make_services(SLACK_ONCALL="U_ONE")
    conv = carded_mention(services, bluesky, model)
    with serve_web(services) as web:
        assert "Paused: no polling and no nudges" in command(web, "pause")
        notice = eventually(lambda: [m for m in slack.messages.values() if "paused Conversant" in m["text"]])[0]
        assert notice["channel"] == "C_REVIEW" and notice["text"].startswith(":double_vertical_bar: <@U_ALICE> paused Conversant")
        assert "already paused (by <@U_ALICE>" in command(web, "pause", user="U_BOB")
        assert "*Paused* by <@U_ALICE>" in command(web, "status")
        home = open_home(web, slack)
        assert "*Paused* by <@U_ALICE>" in home and "• State: paused" in home

        bluesky.post("bob.test", "@brand.test are you there?")
        cards_before = len([m for m in slack.messages.values() if m.get("blocks")])
        poll_once(services)
        assert len([m for m in slack.messages.values() if m.get("blocks")]) == cards_before  # nothing polled
        assert nudge_once(services, now=conv.posted_at + timedelta(hours=2)).paused
        assert [m for m in slack.messages.values() if m.get("thread_ts")] == []

        click(web, ActionId.APPROVE, conv)  # cards already posted still work
        eventually(lambda: load(services, conv.id).state == State.REPLIED.value)

        assert "Resumed" in command(web, "resume")
        eventually(lambda: [m for m in slack.messages.values() if "resumed Conversant" in m["text"]])
        assert "not paused" in command(web, "resume")
    model.reply_with(triage())
    assert poll_once(services).carded == 1


def test_only_approvers_may_pause_resume_or_post_the_digest(make_services, slack):
    services = make_services(SLACK_APPROVERS="U_LEAD,S_SOCIAL")
    slack.usergroups["S_SOCIAL"] = ["U_SOCIAL"]
    with serve_web(services) as web:
        for word in ("pause", "resume", "digest"):
            assert "only the people in SLACK_APPROVERS" in command(web, word, user="U_INTRUDER")
        assert "Paused" in command(web, "pause", user="U_SOCIAL")
        assert "*Paused* by <@U_SOCIAL>" in command(web, "status", user="U_INTRUDER")  # anyone may look


def test_help_lists_every_command_word(services, web):
    body = command(web, "help")
    for word in ("status", "pause", "resume", "digest", "help"):
        assert f"`/conversant {word}`" in body
    assert command(web, "something else") == body


def test_home_for_a_missing_views_publish_scope_is_logged_not_crashed(services, web, slack, caplog):
    slack.fail_next("views.publish", "missing_scope")
    event = {"type": "app_home_opened", "user": "U_ALICE", "channel": "D_HOME", "tab": "home", "event_ts": "1.2"}
    assert post_signed(f"{web}/slack/events", event_body(event), SIGNING_SECRET, content_type="application/json")[0] == 200
    eventually(lambda: "could not publish the Home tab for U_ALICE: missing_scope" in caplog.text)
    assert open_home(web, slack)  # and the next opening works


def test_poll_and_nudge_from_the_command_line_say_they_are_paused(env, services, slack, bluesky, monkeypatch, tmp_path, capsys):
    from bot.cli import main
    from bot.models import set_pause, utcnow

    for name, value in {**env, "SLACK_ONCALL": "U_ONE"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    with services.db.session() as session:
        set_pause(session, "U_LEAD", utcnow())
    bluesky.post("alice.test", "@brand.test hello?")

    assert main(["poll", "--once"]) == 0
    assert main(["nudge", "--once"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("conversant: paused by U_LEAD since ") and out[0].endswith("; nothing polled")
    assert out[1] == "conversant: nudge pass done: paused: no nudges (`/conversant resume` starts them again)"
    assert slack.calls_to("chat.postMessage") == []


def test_home_and_digest_show_how_often_drafts_went_out_unedited(services, web, slack, model, bluesky):
    from bot import decision, flows
    from bot.jobs.digest import send_digest

    first = carded_mention(services, bluesky, model, reply="Happy to help! Which version?")
    assert decision.approve(services.db, services.rules, first.id, "U_ALICE").done and flows.send(services, first.id)
    bluesky.post("bob.test", "@brand.test where do I find invoices?")
    model.reply_with(triage("They are under Settings, Billing."))
    poll_once(services)
    second = next(c for c in _all(services) if c.author_handle == "bob.test")
    assert decision.approve_edited(services.db, services.rules, second.id, "U_ALICE", "They are under Settings → Billing. Need a hand?").done
    flows.send(services, second.id)

    assert "Drafts: 1 of 2 sent unedited (50%)" in open_home(web, slack)
    send_digest(services)
    assert "Drafts: 1 of 2 sent unedited (50%)" in json.dumps(slack.last("chat.postMessage")["blocks"], ensure_ascii=False)


def _all(services):
    from bot.models import Conversation

    with services.db.session() as session:
        return list(session.query(Conversation))


def test_home_says_how_many_conversations_are_still_on_their_way_to_a_card(services, web, slack, bluesky):
    bluesky.post("alice.test", "@brand.test hello")
    ingest(services.db, services.platforms["bluesky"], first_run_lookback=services.settings.first_run_lookback)  # stored, not yet drafted or carded
    assert "1 waiting for a card" in open_home(web, slack)
