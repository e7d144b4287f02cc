"""The fakes must satisfy the real client libraries, or app tests prove nothing."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import openai
import pytest
from openai import OpenAI
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    block_actions_body,
    event_body,
    plain_text_value,
    post_signed,
    static_select_value,
    view_submission_body,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Draft* reply"}}


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack):
    return WebClient(base_url=slack.api_url, token="xoxb-test")


@pytest.fixture
def fake_openai():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def llm(fake_openai):
    return OpenAI(base_url=fake_openai.api_url, api_key="sk-test", max_retries=0)


# ---- Slack ------------------------------------------------------------------


def test_post_then_update_keeps_every_version(slack, client):
    posted = client.chat_postMessage(channel="C_REVIEW", text="draft", blocks=[SECTION])
    ts = posted["ts"]
    assert posted["message"]["blocks"] == [SECTION]
    assert slack.last("chat.postMessage")["blocks"] == [SECTION]

    client.chat_update(channel="C_REVIEW", ts=ts, text="approved")

    assert slack.messages[("C_REVIEW", ts)]["text"] == "approved"
    assert slack.messages[("C_REVIEW", ts)]["blocks"] == [SECTION]  # omitted blocks are kept
    assert [v["text"] for v in slack.history[("C_REVIEW", ts)]] == ["draft", "approved"]
    assert client.chat_postMessage(channel="C_REVIEW", text="next")["ts"] > ts


def test_form_encoded_blocks_are_decoded(slack, client):
    client.api_call("chat.postMessage", params={"channel": "C_DIGEST", "blocks": json.dumps([SECTION])})
    assert slack.last("chat.postMessage")["blocks"] == [SECTION]


def test_slack_errors_raise_like_slack(slack, client):
    slack.channels_not_joined.add("C_DIGEST")
    with pytest.raises(SlackApiError) as missing:
        client.chat_postMessage(channel="C_NOPE", text="x")
    with pytest.raises(SlackApiError) as not_joined:
        client.chat_postMessage(channel="C_DIGEST", text="x")
    with pytest.raises(SlackApiError) as bad_token:
        WebClient(base_url=slack.api_url, token="xoxb-invalid").auth_test()
    with pytest.raises(SlackApiError) as no_message:
        client.chat_update(channel="C_REVIEW", ts="1.2", text="x")
    errors = [e.value.response["error"] for e in (missing, not_joined, bad_token, no_message)]
    assert errors == ["channel_not_found", "not_in_channel", "invalid_auth", "message_not_found"]


def test_views_open_and_expired_trigger(slack, client):
    view = {"type": "modal", "callback_id": "edit", "title": {"type": "plain_text", "text": "Edit"}, "blocks": []}
    opened = client.views_open(trigger_id="1.2.3", view=view)
    assert opened["view"]["id"].startswith("V")
    assert slack.last("views.open")["view"]["callback_id"] == "edit"
    with pytest.raises(SlackApiError) as e:
        client.views_open(trigger_id="expired", view=view)
    assert e.value.response["error"] == "expired_trigger_id"


def test_usergroups_users_list(slack, client):
    slack.usergroups["S_REVIEWERS"] = ["U1", "U2"]
    assert client.usergroups_users_list(usergroup="S_REVIEWERS")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as e:
        client.usergroups_users_list(usergroup="S_NONE")
    assert e.value.response["error"] == "no_such_subteam"


def test_files_upload_v2_end_to_end(slack, client):
    response = client.files_upload_v2(
        channel="C_DIGEST", file=PNG, filename="chart.png", title="Weekly chart", initial_comment="Digest"
    )
    file_id = response["file"]["id"]
    assert slack.uploads[file_id] == PNG
    assert slack.files[file_id]["title"] == "Weekly chart"
    assert slack.last("files.completeUploadExternal")["channel_id"] == "C_DIGEST"
    assert slack.last("files.completeUploadExternal")["initial_comment"] == "Digest"


def test_ratelimited_with_retry_after(slack, client):
    slack.fail_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as e:
        client.chat_postMessage(channel="C_REVIEW", text="x")
    assert e.value.response.status_code == 429
    assert e.value.response.headers["Retry-After"] == "7"
    assert e.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C_REVIEW", text="x")["ok"]  # only the next call fails


# ---- OpenAI -----------------------------------------------------------------


def test_chat_completion_with_json_schema(fake_openai, llm):
    fake_openai.reply_with({"reply": "Thanks!", "confidence": 0.9})
    schema = {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"]}
    completion = llm.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Draft a reply"}],
        response_format={"type": "json_schema", "json_schema": {"name": "draft", "schema": schema, "strict": True}},
    )
    assert json.loads(completion.choices[0].message.content) == {"reply": "Thanks!", "confidence": 0.9}
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert fake_openai.chat_requests()[0]["response_format"]["type"] == "json_schema"


def test_reply_sequence_then_clear_failure(fake_openai, llm):
    fake_openai.reply_sequence(["one", "two"])
    ask = lambda: llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert [ask().choices[0].message.content for _ in range(2)] == ["one", "two"]
    with pytest.raises(openai.InternalServerError, match="used up"):
        ask()


def test_embeddings_are_deterministic(fake_openai, llm):
    first = llm.embeddings.create(model="text-embedding-3-small", input=["refund please", "refund please now"])
    again = llm.embeddings.create(model="text-embedding-3-small", input="refund please")
    a, b = (d.embedding for d in first.data)
    assert len(a) == 64 and again.data[0].embedding == pytest.approx(a, abs=1e-6)
    assert sum(x * y for x, y in zip(a, b)) > 0.7


def test_models_and_errors(fake_openai, llm):
    assert [m.id for m in llm.models.list()] == ["gpt-4o-mini", "text-embedding-3-small"]
    with pytest.raises(openai.NotFoundError):
        llm.models.retrieve("gpt-nope")
    bad = OpenAI(base_url=fake_openai.api_url, api_key="sk-bad", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.code == "invalid_api_key"


def test_timeout(fake_openai, llm):
    fake_openai.reply_with("late")
    fake_openai.set_delay(1)
    with pytest.raises(openai.APITimeoutError):
        llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], timeout=0.2)


def test_fail_next_then_recover(fake_openai, llm):
    fake_openai.reply_with("ok")
    fake_openai.fail_next(status=429, retry_after=1)
    ask = lambda: llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        ask()
    assert ask().choices[0].message.content == "ok"


# ---- signed requests to the app --------------------------------------------


class VerifyingApp(FakeServer):
    """Stands in for our app: checks the signature the way Bolt does."""

    def __init__(self, secret: str) -> None:
        self.verifier = SignatureVerifier(secret)
        super().__init__()

    def handle(self, request: Request) -> Response:
        valid = self.verifier.is_valid_request(request.body.decode(), request.headers)
        return Response(200, "ok") if valid else Response(401, "invalid signature")


def test_post_signed_is_verified():
    with VerifyingApp("s3cret") as app:
        body = block_actions_body(user_id="U1", action_id="approve", value="d1", message_ts="1700000000.000100")
        assert post_signed(f"{app.base_url}/slack/events", body, "s3cret") == (200, "ok")
        assert post_signed(f"{app.base_url}/slack/events", body, "s3cret", bad_signature=True)[0] == 401
        assert post_signed(f"{app.base_url}/slack/events", body, "s3cret", timestamp=1)[0] == 401

        post_signed(f"{app.base_url}/slack/events", event_body({"type": "app_mention"}), "s3cret",
                    content_type="application/json", retry_num=1)
        assert app.requests[-1].headers["x-slack-retry-num"] == "1"

    payload = json.loads(parse_qs(body)["payload"][0])
    assert payload["actions"][0]["action_id"] == "approve"
    assert payload["container"]["message_ts"] == "1700000000.000100"


def test_view_submission_values():
    values = {**plain_text_value("reply", "text", "Hello"), **static_select_value("tone", "pick", "warm")}
    body = view_submission_body(user_id="U1", callback_id="edit", private_metadata="d1", values=values)
    view = json.loads(parse_qs(body)["payload"][0])["view"]
    assert view["state"]["values"]["reply"]["text"]["value"] == "Hello"
    assert view["state"]["values"]["tone"]["pick"]["selected_option"]["value"] == "warm"
