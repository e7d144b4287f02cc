"""Requests as Slack sends them to an app: signed, with Slack's payload shapes.

Builders return the raw body string exactly as Slack posts it (form-encoded
``payload=<json>`` for interactivity, form fields for slash commands, JSON for
the Events API); ``post_signed`` sends such a body over real HTTP with the
signature headers the app must verify.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

APP_ID = "A1"
TEAM_DOMAIN = "conversant-test"
VERIFICATION_TOKEN = "fake-verification-token"  # Slack's deprecated per-app token
RESPONSE_URL = "http://127.0.0.1:9/response"  # discard port: nothing listens


def sign(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's signature headers for ``body`` (v0 HMAC-SHA256 of ``v0:{ts}:{body}``)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def post_signed(
    url: str,
    body: str,
    secret: str,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    bad_signature: bool = False,
) -> tuple[int, str]:
    """POST ``body`` to the app as Slack would; return (status, response text).

    ``bad_signature`` signs with the wrong secret; ``retry_num`` adds the headers
    Slack sets when it redelivers an event the app was slow to acknowledge.
    """
    headers = {"Content-Type": content_type, **sign(body, secret + "-wrong" if bad_signature else secret, timestamp)}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _user(user_id: str, user_name: str, team_id: str) -> dict:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _team(team_id: str) -> dict:
    return {"id": team_id, "domain": TEAM_DOMAIN}


def _interactive(payload: dict) -> str:
    return urlencode({"payload": json.dumps(payload)})


def block_actions_body(
    *,
    user_id: str,
    action_id: str,
    value: str,
    message_ts: str,
    block_id: str = "b",
    channel_id: str = "C_REVIEW",
    trigger_id: str = "123.456.abc",
    team_id: str = "T1",
    user_name: str = "alice",
    message_blocks: list[dict] | None = None,
) -> str:
    """A button click on a message, as a ``block_actions`` interactivity payload."""
    return _interactive({
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": trigger_id,
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_id.lower().removeprefix("c_")},
        "message": {
            "type": "message",
            "user": "UBOT",
            "bot_id": "BBOT",
            "ts": message_ts,
            "text": "",
            "blocks": message_blocks or [],
        },
        "state": {"values": {}},
        "response_url": RESPONSE_URL,
        "actions": [{
            "action_id": action_id,
            "block_id": block_id,
            "text": {"type": "plain_text", "text": "Button", "emoji": True},
            "value": value,
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }],
    })


def view_submission_body(
    *,
    user_id: str,
    callback_id: str,
    private_metadata: str,
    values: dict[str, dict[str, dict]],
    view_id: str = "V1",
    team_id: str = "T1",
    user_name: str = "alice",
) -> str:
    """A modal submit; ``values`` is ``view.state.values`` (see the *_value helpers)."""
    return _interactive({
        "type": "view_submission",
        "team": _team(team_id),
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": "123.456.submit",
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": values},
            "hash": f"{int(time.time())}.fakehash",
            "title": {"type": "plain_text", "text": "Conversant"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": {"type": "plain_text", "text": "Cancel"},
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "BBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    })


def plain_text_value(block_id: str, action_id: str, text: str | None) -> dict:
    """A ``plain_text_input`` state entry; Slack sends ``None`` for an empty optional input."""
    return {block_id: {action_id: {"type": "plain_text_input", "value": text}}}


def _selected(kind: str, block_id: str, action_id: str, value: str | None, text: str | None) -> dict:
    option = None if value is None else {
        "text": {"type": "plain_text", "text": text or value, "emoji": True},
        "value": value,
    }
    return {block_id: {action_id: {"type": kind, "selected_option": option}}}


def static_select_value(block_id: str, action_id: str, value: str | None, text: str | None = None) -> dict:
    """A ``static_select`` state entry (``value=None``: nothing selected)."""
    return _selected("static_select", block_id, action_id, value, text)


def radio_value(block_id: str, action_id: str, value: str | None, text: str | None = None) -> dict:
    """A ``radio_buttons`` state entry (``value=None``: nothing selected)."""
    return _selected("radio_buttons", block_id, action_id, value, text)


def slash_command_body(
    *,
    user_id: str,
    text: str,
    command: str = "/conversant",
    channel_id: str = "C_REVIEW",
    trigger_id: str = "123.456.cmd",
    team_id: str = "T1",
    user_name: str = "alice",
) -> str:
    """A slash command invocation: plain form fields, no JSON."""
    return urlencode({
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_id.lower().removeprefix("c_"),
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": RESPONSE_URL,
        "trigger_id": trigger_id,
    })


def event_body(event: dict[str, Any], *, team_id: str = "T1", event_id: str = "Ev1") -> str:
    """An Events API delivery: ``event`` wrapped in the ``event_callback`` envelope (JSON)."""
    return json.dumps({
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{
            "enterprise_id": None,
            "team_id": team_id,
            "user_id": "UBOT",
            "is_bot": True,
            "is_enterprise_install": False,
        }],
        "is_ext_shared_channel": False,
        "event_context": f"4-fake-{event_id}",
    })


def url_verification_body(challenge: str) -> str:
    """The handshake Slack sends when the Events request URL is saved (JSON)."""
    return json.dumps({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"})
