"""Pure texts: durations, mentions, the queue message, nudges, what a person is told."""
from datetime import timedelta
from types import SimpleNamespace

from bot.backlog import CardQueue
from bot.examples import DailyQuality
from bot.slack import views
from bot.slack.format import escape, human_duration, human_minutes, mention, mention_list, quote
from tests.unit.rows import NOON, conversation

SETTINGS = SimpleNamespace(review_sla_minutes=30, slack_oncall=("U_ONE", "S_TEAM"))


def test_durations_read_as_people_say_them():
    assert [human_duration(s) for s in (59, 60 * 45, 3600, 3600 * 5 + 60 * 7, 86400 * 2 + 3600 * 3)] == ["0 min", "45 min", "1 h", "5 h 7 min", "2 d 3 h"]
    assert human_minutes(0.5) == "30 s" and human_minutes(90) == "1 h 30 min"


def test_mentions_of_users_and_groups():
    assert mention("U1") == "<@U1>" and mention("S1") == "<!subteam^S1>" and mention_list(["U1", "S2"]) == "<@U1> <!subteam^S2>"


def test_quoted_text_is_escaped_and_bounded():
    assert escape("<a & b>") == "&lt;a &amp; b&gt;"
    assert quote("one\ntwo") == "> one\n> two"
    assert len(quote("x" * 5000)) <= 3000 and quote("x" * 5000).endswith("…")


def test_someone_named_in_a_decision_is_mentioned():
    assert views.decision_text("{who} is already on this one.", "U_BOB") == "<@U_BOB> is already on this one."
    assert views.decision_text("There is no draft.", None) == "There is no draft."


def test_the_queue_texts():
    busy = CardQueue(ready=70, drafting=10, by_urgency={"high": 5, "normal": 65}, oldest=NOON, per_minute=60)
    assert busy.queued and views.queue_counts(busy) == "70 ready (5 high, 65 normal urgency), 10 still being drafted"
    assert "80 conversations are queued for a card" in views.queue_status_text(busy) and "about 2 min" in views.queue_status_text(busy)
    assert views.queue_home_text(CardQueue()) == ":white_check_mark: No conversation is waiting for a card."
    assert views.queue_drained_text(CardQueue()).startswith(":white_check_mark: *The queue of cards has drained.*")


def test_a_nudge_pings_on_call_or_only_whoever_is_on_it():
    c = conversation(posted_at=NOON, slack_channel="C1", slack_ts="1.1")
    assert views.nudge_text(c, NOON + timedelta(minutes=45), SETTINGS).startswith("<@U_ONE> <!subteam^S_TEAM> :alarm_clock: @alice.test's Bluesky mention has waited 45 min")
    claimed = conversation(claimed_by="U_BOB")
    assert views.nudge_text(claimed, NOON + timedelta(hours=2), SETTINGS).startswith("<@U_BOB> :alarm_clock: You're on this one")


def test_a_grouped_nudge_links_each_card():
    cards = [conversation(id=i, author_handle=f"u{i}.test", slack_channel="C1", slack_ts=f"{i}.0") for i in range(1, 4)]
    text = views.grouped_nudge_text(SETTINGS, cards, NOON + timedelta(hours=1), lambda channel, ts: f"https://slack.example/{ts}")
    assert text.count("• <https://slack.example/") == 3 and "3 conversations are waiting past the 30 min review SLA" in text


def test_the_quality_line():
    none = DailyQuality(NOON.date(), 0, 0, 0, None, None)
    some = DailyQuality(NOON.date(), 4, 3, 1, 0.75, 2.5)
    assert views.quality_line(none) == "Drafts: none sent yet."
    assert views.quality_line(some) == "Drafts: 3 of 4 sent unedited (75%), mean edit distance 2 characters. 1 more written by hand."
