"""The Slack app asks for exactly the scopes the code needs: manifests, the scope table, the calls."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from slack_sdk import WebClient

from bot.slack.scopes import APP_TOKEN_METHODS, BOT_SCOPES, SCOPES_BY_METHOD

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ["slack-manifest.yml", "slack-manifest.socket-mode.yml"]


def bot_scopes(manifest: str) -> set[str]:
    """The items of oauth_config.scopes.bot (a plain YAML list; no YAML library needed)."""
    text = (ROOT / manifest).read_text()
    block = re.search(r"^    bot:\n((?:      - .*\n)+)", text, re.M)
    return {line.split("#")[0].strip().removeprefix("- ").strip() for line in block.group(1).splitlines()}


def web_api_methods_called() -> set[str]:
    """Every slack_sdk WebClient method named in bot/ (called directly or through publish's _call)."""
    names = {n for n in dir(WebClient) if not n.startswith("_") and callable(getattr(WebClient, n))}
    names -= {"api_call", "headers", "token", "base_url"}
    found = set()
    for path in (ROOT / "bot").rglob("*.py"):
        if path.name == "scopes.py":
            continue
        for word in re.findall(r"\b([a-z]+_[A-Za-z_0-9]+)\b", path.read_text()):
            if word in names and "_" in word and word.split("_")[0] in {
                    "chat", "conversations", "files", "views", "users", "usergroups", "auth", "apps", "reactions", "team",
                    "pins", "bookmarks", "dnd", "emoji", "search", "reminders", "admin", "oauth", "bots"}:
                found.add(word)
    return found


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_each_manifest_asks_for_exactly_the_scopes_the_code_needs(manifest):
    assert bot_scopes(manifest) == set(BOT_SCOPES)


def test_every_web_api_method_the_code_calls_has_its_scopes_listed_and_none_is_stale():
    called = web_api_methods_called()
    assert called - set(SCOPES_BY_METHOD) - set(APP_TOKEN_METHODS) == set(), "add the method's scopes to bot/slack/scopes.py"
    assert set(SCOPES_BY_METHOD) - called == set(), "a method no longer called: drop it (and its scopes) from bot/slack/scopes.py"


def test_the_socket_mode_manifest_has_no_placeholder_url():
    text = (ROOT / "slack-manifest.socket-mode.yml").read_text()
    assert "example.com" not in text and "url:" not in text
    assert "socket_mode_enabled: true" in text
