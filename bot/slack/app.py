"""Build the Bolt app for HTTP (`conversant web`) or Socket Mode (`conversant run`)."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from bot.services import Services
from bot.slack.approvers import Approvers
from bot.slack.handlers import register

LISTENER_THREADS = 64  # clicks being handled at once by one process, each acked as soon as it starts


def build_app(services: Services, *, socket_mode: bool = False) -> App:
    settings = services.settings
    if not socket_mode:
        settings.require("SLACK_SIGNING_SECRET")
    app = App(
        name="conversant",  # without a name, Bolt reads the caller's file from inspect.stack(): ~0.1 s a build
        client=services.slack_client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=not socket_mode,  # Socket Mode needs no signatures: the socket is authenticated
        token_verification_enabled=False,  # `conversant doctor` checks the token; start-up needs no network call
        process_before_response=False,
        # The one executor of the app: acks and the lazy part of each click (Slack, the platform,
        # the model) run here. Bolt's default of 5 threads makes the 6th click of a burst wait for
        # the first ones to finish; Slack gives up after 3 s. ``close`` shuts it down.
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="slack-listener"),
        logger=logging.getLogger("bot.slack.bolt"),
    )
    register(app, services, Approvers(services.slack_client, settings.slack_approvers))
    return app


def close(app: App) -> None:
    """Stop the app's executor: clicks already acked are still handled, nothing new is taken."""
    app.listener_runner.listener_executor.shutdown(wait=False)
