"""`conversant run`: Socket Mode plus the scheduler in one process, against a local Socket Mode server."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from urllib.parse import parse_qs

from websockets.sync.server import serve

from bot.slack.payloads import ActionId, conversation_value
from bot.models import State
from tests.cli import CliPopen
from tests.conftest import DATABASE_PLAYS_NO_PART, eventually, triage
from tests.fakes.slack_requests import block_actions_body
from tests.support import load


class FakeSocketMode:
    """Slack's side of Socket Mode: says hello, pushes envelopes, collects the app's acks."""

    def __init__(self) -> None:
        self.outbox: queue.Queue = queue.Queue()
        self.acks: list[dict] = []
        self.connected = threading.Event()
        self._server = serve(self._session, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/link"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _session(self, websocket) -> None:
        websocket.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}))
        self.connected.set()
        while True:
            try:
                envelope = self.outbox.get(timeout=0.05)
                websocket.send(json.dumps(envelope))
            except queue.Empty:
                pass
            try:
                message = websocket.recv(timeout=0.05)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the app disconnected
                return
            self.acks.append(json.loads(message))

    def push(self, envelope_id: str, payload: dict) -> None:
        self.outbox.put({"envelope_id": envelope_id, "type": "interactive", "payload": payload, "accepts_response_payload": True})

    def close(self) -> None:
        self._server.shutdown()


def test_run_polls_on_start_and_takes_clicks_over_the_socket(env, tmp_path, services, slack, model, bluesky):
    socket_mode = FakeSocketMode()
    slack.socket_url = socket_mode.url
    bluesky.post("alice.test", "@brand.test does the socket work?")
    model.reply_with(triage("It does! What are you building?"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    process = CliPopen(
        ["run"],
        env={**clean, **env, "SLACK_APP_TOKEN": "xapp-1-test", "POLL_INTERVAL_SECONDS": "3600"},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert socket_mode.connected.wait(30), "the app never opened the socket"
        conv = eventually(lambda: load_carded(services), timeout=30)  # the scheduler polled at start

        socket_mode.push("env-1", _block_action_payload(conv))

        eventually(lambda: any(a.get("envelope_id") == "env-1" for a in socket_mode.acks), timeout=10)
        eventually(lambda: load(services).state == State.REPLIED.value, timeout=30)
        assert [r.value["text"] for r in bluesky.created("brand.test")] == ["It does! What are you building?"]
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
        socket_mode.close()
    assert env["SLACK_BOT_TOKEN"] not in output


def load_carded(services):
    try:
        conv = load(services)
    except Exception:  # noqa: BLE001 - not stored yet
        return None
    return conv if conv.slack_ts else None


def _block_action_payload(conv) -> dict:
    """The same payload Slack would POST over HTTP, as Socket Mode delivers it."""
    body = block_actions_body(user_id="U_ALICE", action_id=ActionId.APPROVE.value, value=conversation_value(conv.id), message_ts=conv.slack_ts)
    return json.loads(parse_qs(body)["payload"][0])


@DATABASE_PLAYS_NO_PART
def test_closing_the_socket_ends_even_when_the_receive_loop_missed_the_stop_flag(services, slack):
    """slack_sdk's receive loop clears `terminated` when it starts a pass; under load a pass could
    start just after close() set it, close() then waited forever and `conversant run` ignored
    SIGTERM. close_socket must still return."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.socket_mode.builtin.connection import ConnectionState

    from bot.slack.app import build_app, close, close_socket

    pass_started = threading.Event()

    class ClearedOnceAfterStop(ConnectionState):
        """The race, made certain: the first stop is undone, as the loop's reset would undo it."""

        @property
        def terminated(self) -> bool:
            return self.__dict__["terminated"]

        @terminated.setter
        def terminated(self, value: bool) -> None:
            if value and not self.__dict__.get("undone"):
                self.__dict__["undone"] = True
                value = False
            if not value:
                pass_started.set()  # the receive loop clears the flag as it starts a pass
            self.__dict__["terminated"] = value

    socket_mode = FakeSocketMode()
    slack.socket_url = socket_mode.url
    app = build_app(services, socket_mode=True)
    handler = SocketModeHandler(app, "xapp-1-test")
    handler.connect()
    try:
        assert socket_mode.connected.wait(10)
        handler.client.current_session_state.__class__ = ClearedOnceAfterStop
        assert pass_started.wait(10), "the receive loop never started"
        closing = threading.Thread(target=close_socket, args=(handler,), kwargs={"timeout": 30}, daemon=True)
        closing.start()
        closing.join(20)
        assert not closing.is_alive(), "closing the Socket Mode connection hung"
        assert not handler.client.current_session_runner.is_alive()
    finally:
        close(app)
        socket_mode.close()
