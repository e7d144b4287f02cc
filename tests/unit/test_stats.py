"""The figures: computed from rows, without Slack and without a database."""
from datetime import timedelta
from types import SimpleNamespace

from bot.stats import Row, figures_for, percentile
from tests.unit.rows import NOON

SETTINGS = SimpleNamespace(review_sla_minutes=30, business_hours=None, digest_timezone=None)
START, END = NOON - timedelta(days=1), NOON


def row(id, state, posted=START + timedelta(hours=1), replied=None, **fields):
    values = dict(id=id, platform="bluesky", state=state, posted_at=posted, replied_at=replied, dismiss_reason=None, claimed_by=None,
                  urgency=None, url=f"https://example/{id}", author_handle=f"u{id}.test", slack_channel="C1", slack_ts=f"{id}.0")
    return Row(**{**values, **fields})


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile(list(range(1, 11)), 0.9) == 9


def test_the_figures_of_a_day():
    rows = [
        row(1, "replied", replied=START + timedelta(hours=1, minutes=10)),
        row(2, "replied", replied=START + timedelta(hours=1, minutes=30)),
        row(3, "dismissed", dismiss_reason="spam"),
        row(4, "skipped"),
        row(5, "answered_elsewhere"),
        row(6, "deleted"),
        row(7, "carded", urgency="high"),  # past the SLA: missed
        row(8, "carded", posted=END - timedelta(minutes=5)),  # within the SLA: waiting
        row(9, "post_failed"),
        row(10, "replied", posted=START - timedelta(hours=1)),  # before the window
    ]
    f = figures_for(SETTINGS, rows, START, END)
    assert (f.received, f.replied, f.dismissed, f.skipped, f.answered_elsewhere, f.deleted, f.waiting_within_sla) == (9, 2, {"spam": 1}, 1, 1, 1, 1)
    assert [(m.row.id, m.reason) for m in f.missed] == [(7, "never claimed"), (9, "post failed")]  # most urgent first
    assert f.needing_answer == 6 and f.answered == 3 and f.response_rate == 0.5
    assert f.times["all"].count == 2 and f.times["all"].median == 600


def test_a_claimed_card_that_was_never_sent_names_who_had_it():
    f = figures_for(SETTINGS, [row(1, "carded", claimed_by="U_BOB")], START, END)
    assert f.missed[0].reason == "claimed by {who} but not sent"
