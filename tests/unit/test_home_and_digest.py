"""The App Home tab and the daily digest as JSON snapshots: what a lead and the team see."""
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.backlog import CardQueue
from bot.config import load_settings
from bot.examples import DailyQuality
from bot.knowledge.store import Status as KnowledgeStatus
from bot.models import Pause
from bot.slack import views
from bot.stats import Digest, Figures, Missed, Row, Times, Today
from tests.unit.rows import NOON, conversation

SETTINGS = load_settings({
    "BRAND_NAME": "Acme", "SLACK_REVIEW_CHANNEL": "C_REVIEW", "SLACK_DIGEST_CHANNEL": "C_LEADS", "SLACK_ONCALL": "U_ONE,S_TEAM",
    "DIGEST_TIMEZONE": "Europe/Paris", "BUSINESS_HOURS": "Mon-Fri 09:00-18:00",
}, dotenv_path="/nonexistent/.env")


def link(channel, ts):
    return f"https://acme.slack.example/archives/{channel}/p{ts.replace('.', '')}" if ts else None


def figures(start, **values) -> Figures:
    return Figures(start=start, end=start + timedelta(days=1), **values)


def test_the_home_tab_of_a_running_team(snapshot):
    waiting = [conversation(id=1, author_handle="alice.test", posted_at=NOON - timedelta(minutes=50), slack_channel="C_REVIEW", slack_ts="1.1"),
               conversation(id=2, author_handle="bob.test", platform="mastodon", claimed_by="U_BOB", posted_at=NOON - timedelta(minutes=5),
                            slack_channel="C_REVIEW", slack_ts="2.2"),
               conversation(id=3, author_handle="carol.test", state="post_failed", posted_at=NOON - timedelta(hours=3))]
    today = Today(
        figures=figures(NOON.replace(hour=0), received=12, replied=7, dismissed={"spam": 2}, skipped=1, waiting_within_sla=2),
        quality=DailyQuality(NOON.date(), 7, 5, 1, 5 / 7, 4.2),
        queue=CardQueue(ready=3, drafting=1, by_urgency={"high": 1, "normal": 2}, oldest=NOON - timedelta(minutes=2)),
        waiting=waiting, paused=None)
    home = views.home_view(SETTINGS, ["Bluesky", "Mastodon"], today, now=NOON, link=link,
                           arrive={"Bluesky": "streamed (Jetstream), 2 s behind", "Mastodon": "polled every 60 s"},
                           knowledge=KnowledgeStatus(articles=42, last_import=NOON - timedelta(days=1), source="help/"))
    text = str(home)
    assert "*Waiting for review* (3)" in text and "<@U_BOB> is on it" in text and "posting failed" in text
    assert "42, last imported" in text and "Running" in text and "in <#C_LEADS>" in text
    snapshot("home_running", home)


def test_the_home_tab_while_paused_with_nothing_waiting(snapshot):
    today = Today(figures=figures(NOON.replace(hour=0)), quality=DailyQuality(NOON.date(), 0, 0, 0, None, None),
                  queue=CardQueue(), waiting=[], paused=Pause(by="U_LEAD", at=NOON - timedelta(hours=1)))
    home = views.home_view(SETTINGS, [], today, now=NOON)
    assert "*Paused* by <@U_LEAD>" in str(home) and "Nothing is waiting" in str(home)
    snapshot("home_paused_empty", home)


def test_the_daily_digest_with_missed_conversations(snapshot):
    start = NOON - timedelta(days=1)

    def missed(i, reason, hours):
        row = Row(id=i, platform="bluesky", state="carded", posted_at=start + timedelta(hours=hours), replied_at=None, dismiss_reason=None,
                  claimed_by=None, urgency="high" if i == 1 else "normal", url=f"https://bsky.app/profile/u{i}.test/post/{i}",
                  author_handle=f"u{i}.test", slack_channel="C_REVIEW", slack_ts=f"{i}.0")
        return Missed(row=row, reason=reason, waited=(24 - hours) * 3600)

    times = {"all": Times(7, 1500.0, 5400.0, 900.0, 3600.0), "bluesky": Times(7, 1500.0, 5400.0, 900.0, 3600.0)}
    digest = Digest(
        figures=figures(start, received=20, replied=7, dismissed={"spam": 3, "not_for_us": 1}, skipped=2, answered_elsewhere=1,
                        deleted=1, waiting_within_sla=1, missed=[missed(1, "waited past the SLA", 2), missed(2, "never carded", 20)], times=times),
        previous=figures(start - timedelta(days=7), received=70, replied=40, times={"all": Times(40, 1800.0, 7200.0, None, None)}),
        received_per_hour=[1] * 20 + [0] * 4, answered_per_hour=[0] * 17 + [1] * 7, hour_labels=[f"{h:02d}" for h in range(24)],
        trend=[(f"2026-11-{d:02d}", 0.5 + d / 100) for d in range(17, 31)], paused=None, timezone=ZoneInfo("Europe/Paris"))
    message = views.digest_message(SETTINGS, digest, DailyQuality(NOON.date(), 7, 5, 1, 5 / 7, 4.2), link)
    assert message["text"] == "Conversant digest: 20 received, 7 replied, 2 missed"
    assert "@u1.test" in str(message) and "https://acme.slack.example/archives/C_REVIEW/p10" in str(message)
    snapshot("digest_missed", message)
