"""The bot scopes Conversant needs, from the Slack Web API methods it calls.

``slack-manifest.yml`` and ``slack-manifest.socket-mode.yml`` ask for exactly ``BOT_SCOPES``;
a test checks both against this table and this table against the methods the code calls, and
``conversant doctor`` compares it with the scopes the installed bot has (``auth.test``).
"""
from __future__ import annotations

# Web API method (slack_sdk's name) -> the bot scopes it needs; () for none.
SCOPES_BY_METHOD: dict[str, tuple[str, ...]] = {
    "auth_test": (),
    "chat_postMessage": ("chat:write",),  # cards, nudges, the digest, notices
    "chat_update": ("chat:write",),  # cards updated in place
    "chat_postEphemeral": ("chat:write",),  # "only approvers can...", told privately
    "chat_getPermalink": (),
    "conversations_info": ("channels:read", "groups:read"),  # doctor: the channels exist, the bot is in them (groups: private ones)
    # a card whose post had no answer (a crash, a timeout) is looked for before it is posted again
    "conversations_history": ("channels:history", "groups:history"),
    "conversations_replies": ("channels:history", "groups:history"),  # ...in the thread of a later turn
    "files_upload_v2": ("files:write",),  # the digest's chart
    "usergroups_users_list": ("usergroups:read",),  # SLACK_APPROVERS and SLACK_ONCALL may name user groups
    "views_open": (),  # the Edit and Dismiss modals
    "views_publish": (),  # the Home tab
}
APP_TOKEN_METHODS = ("apps_connections_open",)  # called with SLACK_APP_TOKEN (connections:write), not the bot's
FEATURE_SCOPES = ("commands",)  # the /conversant slash command, which is a feature, not a method

BOT_SCOPES: frozenset[str] = frozenset(s for scopes in SCOPES_BY_METHOD.values() for s in scopes) | frozenset(FEATURE_SCOPES)


def missing_scopes(granted_header: str | None) -> list[str]:
    """The scopes in ``BOT_SCOPES`` that the ``X-OAuth-Scopes`` header of ``auth.test`` lacks."""
    granted = {s.strip() for s in (granted_header or "").split(",") if s.strip()}
    return sorted(BOT_SCOPES - granted)
