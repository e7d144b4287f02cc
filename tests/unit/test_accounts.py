"""The accounts file: read strictly, one clear line per problem, secrets only from the environment."""
from __future__ import annotations

import textwrap

import pytest

from bot.accounts import Account, first_mentioned
from bot.config import ConfigError, load_settings
from bot.platforms.registry import enabled_accounts, settings_for

GOOD = """
    [[accounts]]
    id = "main"
    platform = "bluesky"
    display_name = "Acme"
    keywords = ["acme"]
    allowed_domains = ["www.Acme.com"]
    review_channel = "C0SOCIAL"
    credentials = { BLUESKY_HANDLE = "MAIN_HANDLE", BLUESKY_APP_PASSWORD = "MAIN_PASSWORD" }

    [[accounts]]
    id = "support"
    platform = "bluesky"
    voice = "support-voice.md"
    credentials = { BLUESKY_HANDLE = "SUPPORT_HANDLE", BLUESKY_APP_PASSWORD = "SUPPORT_PASSWORD", BLUESKY_PDS_URL = "SUPPORT_PDS" }

    [[routes]]
    name = "complaints"
    category = ["complaint"]
    channel = "C0SUPPORT"
    oncall = "S0SUPPORT"

    [default_route]
    oncall = ["U0LEAD"]
"""
ENV = {"BRAND_NAME": "Acme", "MAIN_HANDLE": "@acme.bsky.social", "MAIN_PASSWORD": "main-secret",
       "SUPPORT_HANDLE": "acmesupport.bsky.social", "SUPPORT_PASSWORD": "support-secret", "SUPPORT_PDS": "http://127.0.0.1:2583/"}


def settings_with(tmp_path, text: str, **env):
    path = tmp_path / "accounts.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "support-voice.md").write_text("Warm and exact.", encoding="utf-8")
    return load_settings({**ENV, **env, "CONVERSANT_ACCOUNTS": str(path)}, dotenv_path=tmp_path / "none.env")


def problems(tmp_path, text: str, **env) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        settings_with(tmp_path, text, **env)
    return raised.value.problems


def test_each_account_gets_its_own_credentials_from_the_variables_the_file_names(tmp_path):
    settings = settings_with(tmp_path, GOOD)
    main, support = enabled_accounts(settings)
    assert (main.id, main.handle, main.keywords, main.allowed_domains, main.review_channel) == \
        ("main", "acme.bsky.social", ("acme",), ("acme.com",), "C0SOCIAL")
    assert support.voice == tmp_path / "support-voice.md"
    own = settings_for(settings, support)
    assert (own.bluesky_handle, own.bluesky_app_password, own.bluesky_pds_url, own.brand_keywords) == \
        ("acmesupport.bsky.social", "support-secret", "http://127.0.0.1:2583", ())
    assert "secret" not in repr(settings.accounts)  # never in a log line


def test_routes_are_read_in_order_with_a_default(tmp_path):
    routes = settings_with(tmp_path, GOOD).routes
    assert [(r.name, r.channel, r.oncall) for r in routes.rules] == [("complaints", "C0SUPPORT", ("S0SUPPORT",))]
    assert routes.default.oncall == ("U0LEAD",)


def test_a_missing_variable_names_the_account_and_the_variable(tmp_path):
    env = {k: v for k, v in ENV.items() if k != "SUPPORT_PASSWORD"}
    path = tmp_path / "accounts.toml"
    path.write_text(textwrap.dedent(GOOD), encoding="utf-8")
    (tmp_path / "support-voice.md").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings({**env, "CONVERSANT_ACCOUNTS": str(path)}, dotenv_path=tmp_path / "none.env")
    assert raised.value.problems == [
        f"CONVERSANT_ACCOUNTS={path}: account 'support': environment variable SUPPORT_PASSWORD (its BLUESKY_APP_PASSWORD) is not set"]
    assert "main-secret" not in str(raised.value)


@pytest.mark.parametrize("change, expected", [
    ('id = "main"\nplatform = "bluesky"\ncolour = "red"', "account 'main': unknown key 'colour'"),
    ('id = "support"\nplatform = "bluesky"', "account 'support': the id is used twice"),
    ('id = "main"\nplatform = "myspace"', "account 'main': platform must be one of bluesky, mastodon, x, reddit, got 'myspace'"),
    ('id = "Main Account"\nplatform = "bluesky"', "account 'Main Account': id must be 1-20 lower-case letters"),
    ('review_channel = "#social"', "account 'main': review_channel must be a Slack channel ID"),
])
def test_a_bad_account_is_one_clear_line(tmp_path, change, expected):
    text = textwrap.dedent(GOOD)
    old = 'review_channel = "C0SOCIAL"' if change.startswith("review") else 'id = "main"\nplatform = "bluesky"'
    text = text.replace(old, change, 1)
    found = problems(tmp_path, text)
    assert len(found) == 1 and expected in found[0], found


def test_a_secret_written_into_the_file_is_refused_without_repeating_it(tmp_path):
    text = textwrap.dedent(GOOD).replace('BLUESKY_APP_PASSWORD = "MAIN_PASSWORD"', 'BLUESKY_APP_PASSWORD = "abcd-efgh-ijkl"')
    found = problems(tmp_path, text)
    assert found == [f"CONVERSANT_ACCOUNTS={tmp_path / 'accounts.toml'}: account 'main': "
                     "credentials.BLUESKY_APP_PASSWORD must be the NAME of an environment variable, not its value"]


@pytest.mark.parametrize("change, expected", [
    ('category = ["complaint"]', "route 'complaints' matches everything"),
    ('category = ["complaint"]\naccount = "nobody"', "route 'complaints': no account has the id 'nobody'"),
    ('category = ["complaint"]\nteam = "x"', "route 'complaints': unknown key 'team'"),
    ('category = ["complaint"]\nplatform = "tiktok"', "route 'complaints': platform must be one of"),
])
def test_a_bad_route_is_one_clear_line(tmp_path, change, expected):
    text = textwrap.dedent(GOOD).replace('category = ["complaint"]', change if "matches everything" not in expected else "", 1)
    found = problems(tmp_path, text)
    assert len(found) == 1 and expected in found[0], found


def test_unknown_top_level_tables_and_broken_toml(tmp_path):
    assert "unknown key 'acounts'" in problems(tmp_path, GOOD + "\n[[acounts]]\nid = 'x'\n")[0]
    assert "not valid TOML" in problems(tmp_path, "[[accounts]\n")[0]
    assert problems(tmp_path, "")[0].endswith("lists no [[accounts]]")


def test_without_the_file_each_platform_is_one_account_named_after_it(tmp_path):
    settings = load_settings({"BRAND_NAME": "Acme", "BLUESKY_HANDLE": "acme.bsky.social", "BLUESKY_APP_PASSWORD": "pw",
                              "REDDIT_CLIENT_ID": "i", "REDDIT_CLIENT_SECRET": "s", "REDDIT_USERNAME": "AcmeHelp",
                              "REDDIT_PASSWORD": "p", "BRAND_KEYWORDS": "acme"}, dotenv_path=tmp_path / "none.env")
    accounts = enabled_accounts(settings)
    assert [(a.id, a.platform, a.handle, a.keywords) for a in accounts] == [
        ("bluesky", "bluesky", "acme.bsky.social", ("acme",)), ("reddit", "reddit", "AcmeHelp", ("acme",))]
    assert settings_for(settings, accounts[0]) is settings


def test_the_account_mentioned_first_replies():
    main = Account("main", "bluesky", handle="acme.bsky.social")
    support = Account("support", "bluesky", handle="acmesupport.bsky.social")
    fedi = Account("fedi", "mastodon", handle="acme@mastodon.social")
    assert first_mentioned([main, support], "@acmesupport.bsky.social and @acme.bsky.social: help") is support
    assert first_mentioned([main, support], "hey @acme.bsky.social cc @acmesupport.bsky.social") is main
    assert first_mentioned([main, support], "acme.bsky.social is down") is None
    assert first_mentioned([fedi], "@acme@mastodon.social hello") is fedi
    assert first_mentioned([fedi], "@acme hello") is fedi
    assert first_mentioned([fedi], "@acmefan hello") is None
    assert first_mentioned([Account("r", "reddit", handle="AcmeHelp")], "thanks u/acmehelp!") is not None
