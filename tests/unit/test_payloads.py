"""Button values and interaction payloads: parsed strictly, in one place."""
import json

import pytest

from bot.models import Direction, SnoozeFor
from bot.slack.payloads import ButtonValue, burst_value, conversation_value, interaction_problem


def test_values_round_trip_in_the_format_cards_carry():
    assert conversation_value(12) == '{"conversation": 12}'
    assert burst_value(3) == '{"burst": 3}'
    assert ButtonValue.parse(conversation_value(12, snooze=SnoozeFor.HOUR)) == ButtonValue(conversation=12, snooze=SnoozeFor.HOUR)
    assert ButtonValue.parse('{"conversation": 5, "redraft": "shorter"}').redraft is Direction.SHORTER


@pytest.mark.parametrize("value", [
    None, "", "not json", "[1, 2]", "null", "12", '{"conversation": true}', '{"conversation": "1"}', '{"conversation": 1.0}',
    '{"conversation": 0}', '{"conversation": -4}', '{"conversation": 1, "burst": 2}', "{}", '{"conversation": 1, "snooze": "forever"}',
    '{"conversation": 1, "drop": "table"}',
])
def test_anything_else_is_not_a_value(value):
    assert ButtonValue.parse(value) is None


def block_actions(**overrides):
    payload = {"type": "block_actions", "user": {"id": "U1"}, "channel": {"id": "C1"}, "message": {"ts": "1.1"},
               "actions": [{"action_id": "conversant_approve", "value": '{"conversation": 1}'}]}
    return {**payload, **overrides}


def test_a_well_formed_click_has_no_problem():
    assert interaction_problem(block_actions()) is None
    assert interaction_problem({"type": "shortcut", "user": None}) is None  # not ours to check


@pytest.mark.parametrize("payload", [
    [1, 2], None, "click", block_actions(user=None), block_actions(user=[]), block_actions(actions={"action_id": "x"}),
    block_actions(actions=[None]), block_actions(actions=[{"action_id": "conversant_approve", "value": '{"conversation": true}'}]),
    block_actions(message=[]), {"type": "view_submission", "user": {"id": "U1"}, "view": None},
    {"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "conversant_edit_modal", "private_metadata": "[1]"}},
])
def test_a_payload_of_the_wrong_shape_is_refused(payload):
    assert interaction_problem(payload)


def test_values_are_json_objects():
    assert json.loads(conversation_value(7, redraft=Direction.CUSTOM)) == {"conversation": 7, "redraft": "custom"}
