"""Build the Bolt app for HTTP (`conversant web`) or Socket Mode (`conversant run`)."""
from __future__ import annotations

import logging

from slack_bolt import App

from bot.services import Services
from bot.slack.approvers import Approvers
from bot.slack.handlers import register


def build_app(services: Services, *, socket_mode: bool = False) -> App:
    settings = services.settings
    if not socket_mode:
        settings.require("SLACK_SIGNING_SECRET")
    app = App(
        client=services.slack_client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=not socket_mode,  # Socket Mode needs no signatures: the socket is authenticated
        token_verification_enabled=False,  # `conversant doctor` checks the token; start-up needs no network call
        process_before_response=False,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    register(app, services, Approvers(services.slack_client, settings.slack_approvers))
    return app
