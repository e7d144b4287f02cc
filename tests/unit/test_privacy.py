"""The deterministic half of "reply privately": what personal data or request a text holds."""
import pytest

from bot import privacy
from bot.privacy import ACCOUNT_REASON, ASKED_REASON, EMAIL_REASON, MODEL_REASON, ORDER_REASON, PHONE_REASON

CASES = [
    # (text, reasons)
    ("Love the new app, great work!", []),
    ("my order is late again", []),
    ("what's the order status for the blue one?", []),
    ("Order #48213 never arrived", [ORDER_REASON]),
    ("order no. AB-99812 is stuck in customs", [ORDER_REASON]),
    ("tracking number 1Z999AA10123456784 says delivered", [ORDER_REASON]),
    ("still waiting on #1234567", [ORDER_REASON]),
    ("write to jane.doe+shop@example.co.uk please", [EMAIL_REASON]),
    ("@brand.bsky.social hello", []),
    ("@jane@mastodon.social thanks", []),
    ("call me on +44 20 7946 0958", [PHONE_REASON]),
    ("my number is (555) 123-4567", [PHONE_REASON]),
    ("0171 234 5678 after six", [PHONE_REASON]),
    ("it was 2026-12-03 when it broke", []),
    ("paid 1,299.00 for this", []),
    ("12345678 people can't be wrong", []),
    ("customer id 7781234 locked out", [ACCOUNT_REASON]),
    ("customer service never answers", []),
    ("can you DM me?", [ASKED_REASON]),
    ("I'd rather not share that publicly, send me a private message", [ASKED_REASON]),
    ("check your DMs", [ASKED_REASON]),
    ("pm me the details, account 99-12345, jo@x.io", [ASKED_REASON, EMAIL_REASON, ACCOUNT_REASON]),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_reasons(text, expected):
    assert privacy.reasons(text) == expected


def test_the_draft_counts_too_and_reasons_are_not_repeated():
    assert privacy.reasons("where is it?", "Could you send your order number ORD-5512 in a DM?") == [ASKED_REASON, ORDER_REASON]
    assert privacy.reasons("a@b.io", "c@d.io") == [EMAIL_REASON]


def test_the_models_suggestion_shows_when_the_detector_found_nothing():
    assert privacy.suggestion("my parcel is lost", "Sorry! Which city?", model_says=True) == [MODEL_REASON]
    assert privacy.suggestion("order #55512 lost", None, model_says=True) == [ORDER_REASON]
    assert privacy.suggestion("thanks!", "You're welcome!", model_says=False) == []
