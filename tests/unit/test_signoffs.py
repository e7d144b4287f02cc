"""Sign-offs: an approver's initials at the end of the reply, parsed from SLACK_SIGNOFFS."""
import pytest

from bot.config import ConfigError, load_settings
from bot.signoffs import longest, sign


@pytest.mark.parametrize("text, initials, signed", [
    ("Thanks!", "JD", "Thanks! ^JD"),
    ("Thanks!  \n", "JD", "Thanks! ^JD"),
    ("Thanks! ^JD", "JD", "Thanks! ^JD"),  # an edited reply that kept its sign-off is not signed twice
    ("Thanks! ^AB", "JD", "Thanks! ^AB ^JD"),
    ("Thanks!", None, "Thanks!"),
    ("Thanks!", "", "Thanks!"),
])
def test_sign(text, initials, signed):
    assert sign(text, initials) == signed


def test_the_longest_initials_decide_whether_a_draft_fits_for_everyone():
    assert longest({"U1": "JD", "U2": "ABCD"}) == "ABCD" and longest({}) is None


def test_slack_signoffs_are_read_as_user_and_initials():
    settings = load_settings({"SLACK_SIGNOFFS": "U123ABC:JD, U456DEF:AB"}, dotenv_path="/nonexistent/.env")
    assert dict(settings.slack_signoffs) == {"U123ABC": "JD", "U456DEF": "AB"}


@pytest.mark.parametrize("value", ["U123:", "JD", "U123:J D", "U123:TOOLONG", "S123:JD"])
def test_a_malformed_signoff_names_the_variable_and_the_expected_shape(value):
    with pytest.raises(ConfigError) as caught:
        load_settings({"SLACK_SIGNOFFS": value}, dotenv_path="/nonexistent/.env")
    assert "SLACK_SIGNOFFS must list USER_ID:INITIALS pairs" in str(caught.value)
