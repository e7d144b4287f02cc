"""A fake OpenAI API that the real ``openai.OpenAI`` client talks to over HTTP.

Use ``OpenAI(base_url=fake.api_url, api_key="sk-test")``. Chat completion
content comes from ``responder`` (set it, or use ``reply_with`` /
``reply_sequence``); embeddings are deterministic so similarity tests are stable.
Errors use OpenAI's ``{"error": {...}}`` shape so the client raises its real
exception classes.

Checked against a real server (llama.cpp's ``llama-server``, tests/model/): an
answer longer than ``max_tokens`` is cut there with ``finish_reason: "length"``;
the answer names the model that served it, which need not be the name asked
for; with ``slots`` set it behaves as llama.cpp does: ``/props`` and ``/slots``
say how many requests it runs at once, more wait their turn, and answers carry
``timings``.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import struct
import threading
import time
from typing import Any, Callable, Iterable

from .http import FakeServer, Request, Response

Responder = Callable[[dict], "str | dict"]
EMBEDDING_DIMENSIONS = 64
_WORD = re.compile(r"\w+")


class FakeOpenAI(FakeServer):
    """``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models``."""

    def __init__(self) -> None:
        self.responder: Responder | None = None
        self.models: list[str] = ["gpt-4o-mini", "text-embedding-3-small"]
        # The name an answer gives for the model that served it (OpenAI answers with the dated snapshot).
        self.served_as: dict[str, str] = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
        self.cached_tokens = 0
        self.slots: int | None = None  # set: llama.cpp's /props and /slots, and at most that many answers at once
        self.tokens_per_second = 20.0  # what ``timings`` reports when ``slots`` is set
        self.most_at_once = 0  # the most chat completions seen in progress together
        self._in_progress = 0
        self._slot_gate: threading.Semaphore | None = None
        self._delay = 0.0
        self._faults: list[Response] = []
        self._ids = itertools.count(1)
        self._state = threading.Lock()
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    # ---- test helpers -------------------------------------------------------

    def reply_with(self, obj: str | dict) -> None:
        """Answer every chat completion with ``obj`` (a dict arrives as JSON content)."""
        self.responder = lambda request: obj

    def reply_sequence(self, objs: Iterable[str | dict]) -> None:
        """Answer successive chat completions with ``objs`` in order; a 500 once used up."""
        remaining = iter(list(objs))

        def responder(request: dict) -> str | dict:
            with self._state:
                obj = next(remaining, None)
            if obj is None:
                raise LookupError("reply_sequence is used up")
            return obj

        self.responder = responder

    def fail_next(
        self, status: int = 500, times: int = 1, body: dict | None = None, retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` chat completions with HTTP ``status``."""
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        with self._state:
            self._faults += [Response(status, body or _default_error_body(status), headers)] * times

    def set_delay(self, seconds: float) -> None:
        """Sleep this long before answering chat completions (for client timeout tests)."""
        self._delay = seconds

    def chat_requests(self) -> list[dict]:
        return [r.json() for r in self.requests_to("/v1/chat/completions")]

    # ---- HTTP ---------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        auth_failure = _check_auth(request.headers.get("authorization", ""))
        if auth_failure:
            return auth_failure
        route = (request.method, request.path)
        if route == ("POST", "/v1/chat/completions"):
            return self._chat_completion(request.json())
        if route == ("POST", "/v1/embeddings"):
            return self._embeddings(request.json())
        if route in (("GET", "/props"), ("GET", "/slots")) and self.slots:
            return Response(200, {"total_slots": self.slots} if request.path == "/props"
                            else [{"id": i, "is_processing": False} for i in range(self.slots)])
        if route == ("GET", "/v1/models"):
            return Response(200, {"object": "list", "data": [_model(m) for m in self.models]})
        if request.method == "GET" and request.path.startswith("/v1/models/"):
            model_id = request.path.removeprefix("/v1/models/")
            return Response(200, _model(model_id)) if model_id in self.models else _model_not_found(model_id)
        return _error(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error")

    def _chat_completion(self, body: dict) -> Response:
        if self.slots:  # llama.cpp queues what its slots cannot take yet
            with self._state:
                if self._slot_gate is None:
                    self._slot_gate = threading.Semaphore(self.slots)
            with self._slot_gate:
                return self._counted(body)
        return self._counted(body)

    def _counted(self, body: dict) -> Response:
        with self._state:
            self._in_progress += 1
            self.most_at_once = max(self.most_at_once, self._in_progress)
        try:
            return self._answer(body)
        finally:
            with self._state:
                self._in_progress -= 1

    def _answer(self, body: dict) -> Response:
        if self._delay:
            time.sleep(self._delay)
        with self._state:
            fault = self._faults.pop(0) if self._faults else None
        if fault:
            return fault
        if body.get("model") not in self.models:
            return _model_not_found(body.get("model"))
        if body.get("stream"):
            return _fake_bug("streaming is not supported")
        if self.responder is None:
            return _fake_bug("no responder set")
        try:
            answer = self.responder(body)
        except Exception as e:  # surface test mistakes as a clear, non-retried error
            return _fake_bug(f"responder raised {type(e).__name__}: {e}")
        content = answer if isinstance(answer, str) else json.dumps(answer)
        if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            try:
                json.loads(content)
            except ValueError:
                return _fake_bug(f"responder returned non-JSON content for a JSON response_format: {content!r}")
        prompt_tokens = sum(_count_tokens(m.get("content")) for m in body.get("messages", []))
        content, finish_reason = _cut(content, body.get("max_completion_tokens") or body.get("max_tokens"))
        completion_tokens = _count_tokens(content)
        answer = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_as.get(body["model"], body["model"]),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if self.slots:
            answer["timings"] = {"prompt_n": prompt_tokens, "prompt_ms": prompt_tokens / 4 / self.tokens_per_second * 1000,
                                 "predicted_n": completion_tokens, "predicted_per_second": self.tokens_per_second}
        return Response(200, answer)

    def _embeddings(self, body: dict) -> Response:
        if body.get("model") not in self.models:
            return _model_not_found(body.get("model"))
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not inputs or not all(isinstance(text, str) and text for text in inputs):
            return _error(400, "FakeOpenAI: input must be a non-empty string or list of them", "invalid_request_error")
        dimensions = body.get("dimensions", EMBEDDING_DIMENSIONS)
        # The client asks for base64 unless the caller chose a format, then decodes it.
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = embed(text, dimensions)
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_count_tokens(text) for text in inputs)
        return Response(200, {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })


def embed(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Hashed bag of words, L2-normalised: texts sharing words have high cosine similarity."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _cut(content: str, max_tokens: int | None) -> tuple[str, str]:
    """The answer as a server gives it under ``max_tokens``: cut off there, and said so."""
    if not max_tokens:
        return content, "stop"
    words = list(_WORD.finditer(content))
    if len(words) <= max_tokens:
        return content, "stop"
    return content[:words[max_tokens - 1].end()], "length"


def _count_tokens(content: Any) -> int:
    """Rough token count (words) over a string or a list of content parts."""
    if isinstance(content, list):
        return sum(_count_tokens(part.get("text")) for part in content if isinstance(part, dict))
    return len(_WORD.findall(content)) if isinstance(content, str) else 0


def _model(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}


def _error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": {"message": message, "type": type_, "param": param, "code": code}}, headers or {})


def _fake_bug(message: str) -> Response:
    """A mistake in the test setup: 500 that tells the client not to retry."""
    return _error(500, f"FakeOpenAI: {message}", "server_error", headers={"x-should-retry": "false"})


def _model_not_found(model: Any) -> Response:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return _error(404, message, "invalid_request_error", "model_not_found", "model")


def _check_auth(header: str) -> Response | None:
    if not header.startswith("Bearer ") or not header.removeprefix("Bearer ").strip():
        message = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                   "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        return _error(401, message, "invalid_request_error")
    key = header.removeprefix("Bearer ").strip()
    if key == "sk-bad":
        message = (f"Incorrect API key provided: {key}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
        return _error(401, message, "invalid_request_error", "invalid_api_key")
    return None


def _default_error_body(status: int) -> dict:
    if status == 429:
        error = {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}
    elif status >= 500:
        error = {"message": "The server had an error while processing your request. Sorry about that!",
                 "type": "server_error", "code": None}
    else:
        error = {"message": f"FakeOpenAI: injected {status}", "type": "invalid_request_error", "code": None}
    return {"error": {**error, "param": None}}
