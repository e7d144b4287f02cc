"""Build the Bolt app for HTTP (`conversant web`) or Socket Mode (`conversant run`)."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.services import Services
from bot.slack.approvers import Approvers
from bot.slack.handlers import register

log = logging.getLogger(__name__)

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


def close_socket(handler: SocketModeHandler, timeout: float = 10) -> None:
    """Close the Socket Mode connection, in bounded time.

    slack_sdk's built-in client can miss its own stop flag: its receive loop sets
    ``terminated = False`` each time it starts a pass, so a close() landing at that moment waits
    forever for a loop that no longer stops (seen as a `conversant run` that ignored SIGTERM).
    Setting the flag again until close() returns ends that loop."""
    closing = threading.Thread(target=handler.close, name="socket-mode-close", daemon=True)
    closing.start()
    deadline = time.monotonic() + timeout
    while closing.is_alive() and time.monotonic() < deadline:
        closing.join(0.2)
        state = getattr(handler.client, "current_session_state", None)
        if state is not None:
            state.terminated = True
    if closing.is_alive():
        log.warning("the Socket Mode connection did not close within %.0f s; exiting without waiting for it", timeout)
