"""A post of unknown outcome is visible on the card at once (issue 13, point 9)."""
from __future__ import annotations

from bot.slack.payloads import ActionId
from bot.models import State
from tests.conftest import eventually
from tests.support import card_buttons, card_text, carded_mention, click, load


def test_a_post_the_platform_did_not_confirm_says_so_on_the_card(services, web, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model)
    bluesky.fail_next("com.atproto.repo.createRecord", status=502)

    click(web, ActionId.APPROVE, conv)

    card = eventually(lambda: next((u for u in slack.calls_to("chat.update") if "did not confirm" in card_text(u)), None))
    text = card_text(card)
    assert "Bluesky did not confirm the reply" in text and "502" in text
    assert "looks for it in the thread from <!date^" in text and "nothing will be posted twice" in text
    assert "posting to Bluesky…" not in text
    assert card_buttons(card) == []
    assert load(services).state == State.POSTING.value and bluesky.created("brand.test") == []
