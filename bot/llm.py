"""A thin wrapper over the OpenAI SDK: structured triage and reply, validated.

Any OpenAI-compatible server works through ``OPENAI_BASE_URL`` (llama.cpp's
``llama-server``, Ollama, vLLM). The Drafter adapts to the server: no more
requests at once than it has slots, a timeout that covers a whole answer at the
speed it has shown, and no re-send of a request that may still be running there.
Every failure becomes ``DraftUnavailable`` with a message a person can act on;
the API key never appears in it.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from typing import Literal

import httpx
import openai
from pydantic import BaseModel, Field, ValidationError

from bot.config import Settings

log = logging.getLogger(__name__)

CATEGORIES = ("question", "complaint", "praise", "feedback", "spam", "other")
REASON_MAX_CHARS = 300

# Without OPENAI_TIMEOUT_SECONDS: the first answer may take this long (a local server may still be
# loading the model); later ones get what a whole answer (OPENAI_MAX_TOKENS) takes at the slowest
# speed seen lately, with room to spare, kept between these bounds.
FIRST_TIMEOUT = 180.0
MIN_TIMEOUT = 30.0
MAX_TIMEOUT = 480.0  # under the pipeline's STALE_CLAIM (10 min), after which a draft is taken as lost
TIMEOUT_MARGIN = 1.5
SPEED_WINDOW = 8  # the last answers whose speed counts


class Triage(BaseModel):
    """What the model must return for each mention."""

    should_reply: bool
    reason: str = Field(max_length=REASON_MAX_CHARS)
    category: Literal["question", "complaint", "praise", "feedback", "spam", "other"]
    sentiment: Literal["positive", "neutral", "negative"]
    urgency: Literal["low", "normal", "high"]
    reply: str = Field(max_length=10_000)
    private: bool = False  # better answered in a direct message (personal data, or the customer asked)
    drafted_by: str = Field(default="", exclude=True)  # the model that wrote it, as the server names it; not asked of the model


TRIAGE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    # "reply" comes last: a server that enforces the order then lets the model close the string and the
    # object in one token ('"}'), as it is used to; with a field after it, a small model wrote on and
    # on (the eval's median X draft grew from 216 to 273 characters, half over the limit).
    "required": ["should_reply", "reason", "category", "sentiment", "urgency", "private", "reply"],
    "properties": {
        "should_reply": {"type": "boolean", "description": "false for spam, bots, or posts that need no answer"},
        # The same bound as Triage: a server that enforces the schema cannot produce an invalid reason.
        "reason": {"type": "string", "maxLength": REASON_MAX_CHARS, "description": "one short sentence: why reply or not"},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
        "private": {"type": "boolean", "description": "true when the answer needs personal data (order number, e-mail, "
                                                      "phone, account id) or the author asks for a private message"},
        "reply": {"type": "string", "description": "the reply to post, or empty when should_reply is false"},
    },
}


class DraftUnavailable(Exception):
    """The model could not give a usable draft; the message says why."""


class _Gate:
    """A semaphore whose size can shrink or grow once the server says how many requests it takes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._in_use = 0
        self._changed = threading.Condition()

    def resize(self, size: int) -> None:
        with self._changed:
            self.size = size
            self._changed.notify_all()

    def __enter__(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._in_use < self.size)
            self._in_use += 1

    def __exit__(self, *exc) -> None:
        with self._changed:
            self._in_use -= 1
            self._changed.notify()


class Drafter:
    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.embedding_model = settings.openai_embedding_model  # None: no embeddings, full-text ranking instead
        self.max_tokens = settings.openai_max_tokens
        self.fixed_timeout = settings.openai_timeout_seconds  # None: adapt to the speed measured
        self.retries = settings.openai_max_retries
        self.client = openai.OpenAI(
            api_key=settings.openai_api_key or "not-needed",  # local servers such as llama.cpp ignore it
            base_url=settings.openai_base_url,
            timeout=self.fixed_timeout or FIRST_TIMEOUT,
            # Retries are ours (_send): the SDK would re-send after a timeout, while the server may
            # still be writing the abandoned answer and the retry only queues behind it.
            max_retries=0,
        )
        # At most OPENAI_CONCURRENCY requests to the model at once from this process, whoever asks
        # (the pipeline's drafting threads, re-drafts from Slack, the eval), and never more than the
        # server has slots for: a request queued on the server spends its timeout waiting.
        self.configured_concurrency = settings.openai_concurrency
        self._gate = _Gate(settings.openai_concurrency)
        self._probe_server = bool(settings.openai_base_url)  # api.openai.com has no slots to ask about
        self._probe_lock = threading.Lock()
        self.server_slots: int | None = None
        self._speeds: deque[tuple[float, float]] = deque(maxlen=SPEED_WINDOW)  # (prompt seconds, seconds per token)

    # ---- adapting to the server -------------------------------------------------

    @property
    def concurrency(self) -> int:
        """How many requests this drafter sends at once: OPENAI_CONCURRENCY, held to the server's slots."""
        self._learn_slots()
        return self._gate.size

    def _learn_slots(self) -> None:
        """Once: how many requests the server runs at once (llama.cpp's /props or /slots)."""
        if not self._probe_server:
            return
        with self._probe_lock:
            if not self._probe_server:
                return
            slots = self.ask_server_slots()
            if slots is not None:
                self._probe_server = False
                self.server_slots = slots
                self._gate.resize(max(1, min(self.configured_concurrency, slots)))
                log.info("the model's server has %d slot(s): at most %d request(s) at once", slots, self._gate.size)

    def ask_server_slots(self) -> int | None:
        """The server's parallel slots, or None when it does not say (or cannot be reached)."""
        root = str(self.client.base_url).rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {self.client.api_key}"}
        for path in ("/props", "/slots"):
            try:
                response = httpx.get(root + path, headers=headers, timeout=5.0)
                answer = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                return None
            if isinstance(answer, dict) and isinstance(answer.get("total_slots"), int) and answer["total_slots"] > 0:
                return answer["total_slots"]
            if isinstance(answer, list) and answer and all(isinstance(s, dict) and "id" in s for s in answer):
                return len(answer)
        self._probe_server = False  # a server that answers but has no slots to report: ask no more
        return None

    def timeout(self) -> float:
        """Seconds one request may take: fixed by OPENAI_TIMEOUT_SECONDS, else ``adaptive_timeout()``."""
        return self.fixed_timeout or self.adaptive_timeout()

    def adaptive_timeout(self) -> float:
        """A whole answer at the slowest speed seen lately (FIRST_TIMEOUT before any), kept in bounds."""
        whole = self.whole_answer_seconds()
        return FIRST_TIMEOUT if whole is None else min(MAX_TIMEOUT, max(MIN_TIMEOUT, whole))

    def whole_answer_seconds(self) -> float | None:
        """What an answer of OPENAI_MAX_TOKENS takes at the slowest speed seen lately, x TIMEOUT_MARGIN."""
        with self._probe_lock:
            speeds = list(self._speeds)
        if not speeds:
            return None
        return TIMEOUT_MARGIN * max(prompt + self.max_tokens * per_token for prompt, per_token in speeds)

    def _measure(self, response, elapsed: float) -> None:
        timings = (response.model_extra or {}).get("timings")  # llama.cpp says how long each half took
        if isinstance(timings, dict) and timings.get("predicted_per_second"):
            speed = (timings.get("prompt_ms", 0.0) / 1000.0, 1.0 / timings["predicted_per_second"])
        elif response.usage and response.usage.completion_tokens:
            speed = (0.0, elapsed / response.usage.completion_tokens)  # the prompt's share counted as generation: on the safe side
        else:
            return
        with self._probe_lock:
            self._speeds.append(speed)

    def speed(self) -> tuple[float, float] | None:
        """The last answer's (prompt seconds, generated tokens a second), for ``conversant doctor``."""
        with self._probe_lock:
            if not self._speeds:
                return None
            prompt, per_token = self._speeds[-1]
        return prompt, 1.0 / per_token

    # ---- requests ---------------------------------------------------------------

    def _send(self, call, **request):
        """One request through the gate; retried only when it surely is not running on the server."""
        self._learn_slots()
        for attempt in range(self.retries + 1):
            try:
                with self._gate:
                    started = time.monotonic()
                    response = call(**request, timeout=self.timeout())
                    return response, time.monotonic() - started
            except openai.APITimeoutError:
                raise  # the server may still be working on it: a re-send would wait behind it
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as error:
                response = getattr(error, "response", None)
                if attempt == self.retries or (response is not None and response.headers.get("x-should-retry") == "false"):
                    raise
                time.sleep(_backoff(response, attempt))
                self._learn_slots()  # a server that was down may now say how many slots it has

    def triage(self, messages: list[dict], *, reply_max_chars: int | None = None) -> Triage:
        """``reply_max_chars`` bounds the reply in the schema: a model stuck repeating itself stops
        there (the server enforces it) instead of writing until OPENAI_MAX_TOKENS."""
        schema = TRIAGE_SCHEMA
        if reply_max_chars:
            reply = {**TRIAGE_SCHEMA["properties"]["reply"], "maxLength": reply_max_chars}
            schema = {**TRIAGE_SCHEMA, "properties": {**TRIAGE_SCHEMA["properties"], "reply": reply}}
        content, served_by = self._complete(messages, schema=schema)
        try:
            triage = Triage.model_validate(json.loads(_strip_fences(content)))
        except (json.JSONDecodeError, ValidationError) as error:
            raise DraftUnavailable(f"the model's answer was not valid triage JSON ({_first_line(error)})") from None
        return triage.model_copy(update={"drafted_by": served_by})

    def complete_json(self, messages: list[dict], *, name: str, schema: dict, model: str | None = None, temperature: float = 0.0) -> dict:
        """Structured output against another schema (the eval's judge); the caller validates the fields."""
        content, _ = self._complete(messages, name=name, schema=schema, model=model, temperature=temperature)
        try:
            answer = json.loads(_strip_fences(content))
        except json.JSONDecodeError as error:
            raise DraftUnavailable(f"the model's answer was not JSON ({_first_line(error)})") from None
        if not isinstance(answer, dict):
            raise DraftUnavailable("the model's answer was not a JSON object")
        return answer

    def _complete(self, messages: list[dict], *, name: str = "triage", schema: dict = TRIAGE_SCHEMA,
                  model: str | None = None, temperature: float = 0.4) -> tuple[str, str]:
        """The answer's text and the name of the model that wrote it."""
        model = model or self.model
        request = dict(model=model, messages=messages, temperature=temperature, max_tokens=self.max_tokens,
                       response_format={"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}})
        create = self.client.chat.completions.create
        try:
            try:
                response, elapsed = self._send(create, **request)
            except openai.BadRequestError as error:
                if "response_format" not in str(error) and "json_schema" not in str(error):
                    raise
                # Older OpenAI-compatible servers know only JSON mode.
                response, elapsed = self._send(create, **{**request, "response_format": {"type": "json_object"}})
        except openai.APITimeoutError:
            raise DraftUnavailable(f"the model did not answer in time ({self.timeout():.3g} s, OPENAI_TIMEOUT_SECONDS)") from None
        except openai.AuthenticationError:
            raise DraftUnavailable("the model's server refused the API key (check OPENAI_API_KEY)") from None
        except openai.NotFoundError:
            raise DraftUnavailable(f"the model {model!r} was not found (check OPENAI_MODEL)") from None
        except openai.RateLimitError:
            raise DraftUnavailable("the model's rate limit or quota was reached") from None
        except openai.APIStatusError as error:
            raise DraftUnavailable(f"the model's server answered HTTP {error.status_code}") from None
        except openai.APIConnectionError:
            raise DraftUnavailable("the model's server could not be reached (check OPENAI_BASE_URL)") from None
        choice = response.choices[0] if response.choices else None
        if choice is not None and choice.finish_reason == "length":
            # Cut off: at best a half answer, never one to show.
            raise DraftUnavailable(f"the model's answer was cut off at {self.max_tokens} tokens (OPENAI_MAX_TOKENS)")
        if choice is not None and choice.finish_reason == "content_filter":
            raise DraftUnavailable("the provider's content filter stopped the answer")
        if choice is None or not choice.message.content:
            refusal = getattr(choice.message, "refusal", None) if choice else None
            raise DraftUnavailable(f"the model refused: {refusal}" if refusal else "the model returned no text")
        self._measure(response, elapsed)
        if response.usage:
            log.debug("model usage: %s prompt tokens, %s completion tokens in %.1f s",
                      response.usage.prompt_tokens, response.usage.completion_tokens, elapsed)
        return choice.message.content, _model_name(response.model or model)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text from the provider's embeddings endpoint (``OPENAI_EMBEDDING_MODEL``)."""
        if not self.embedding_model:
            raise DraftUnavailable("no embedding model is configured (OPENAI_EMBEDDING_MODEL)")
        try:
            response, _ = self._send(self.client.embeddings.create, model=self.embedding_model, input=texts)
        except openai.NotFoundError:
            raise DraftUnavailable(f"the embedding model {self.embedding_model!r} was not found (check OPENAI_EMBEDDING_MODEL)") from None
        except openai.APIStatusError as error:
            raise DraftUnavailable(f"the embeddings endpoint answered HTTP {error.status_code}") from None
        except openai.OpenAIError as error:
            raise DraftUnavailable(f"the embeddings endpoint {server_problem(error, self.client.base_url)}") from None
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(texts):
            raise DraftUnavailable(f"the embeddings endpoint returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors

    def check(self) -> str:
        """Ask the server for the configured model; used by ``conversant doctor``."""
        try:
            served = [m.id for m in self.client.models.list(timeout=10.0)]
        except openai.OpenAIError as error:
            raise DraftUnavailable(f"the model's server {server_problem(error, self.client.base_url)}") from None
        if self.model not in served:
            if len(served) == 1:  # llama.cpp serves one model, whatever the request names
                return f"{served[0]} at {self.client.base_url} (it answers to any OPENAI_MODEL; set OPENAI_MODEL={served[0]} to name it)"
            raise DraftUnavailable(f"the server does not list the model {self.model!r} (check OPENAI_MODEL; it serves {', '.join(served[:5]) or 'none'})")
        return f"model {self.model} at {self.client.base_url}"


def server_problem(error: openai.OpenAIError, base_url) -> str:
    """What went wrong reaching the model's server, as one line saying what to check (never the key)."""
    if isinstance(error, openai.AuthenticationError):
        return "refused OPENAI_API_KEY (HTTP 401): check the key, or leave it empty for a local server"
    if isinstance(error, openai.PermissionDeniedError):
        return "refused access (HTTP 403): check that OPENAI_API_KEY may use this model"
    if isinstance(error, openai.NotFoundError):
        return f"answered HTTP 404 at {base_url}: check OPENAI_BASE_URL (it usually ends in /v1)"
    if isinstance(error, openai.APITimeoutError):
        return f"at {base_url} did not answer in time: is it overloaded or still loading?"
    if isinstance(error, openai.APIConnectionError):
        return f"at {base_url} cannot be reached: is it running, and is OPENAI_BASE_URL right?"
    if isinstance(error, openai.APIStatusError):
        return f"answered HTTP {error.status_code}: see its own log"
    return "gave an answer Conversant cannot read: check OPENAI_BASE_URL points at an OpenAI-compatible API"


def _model_name(served: str) -> str:
    """llama.cpp started without --alias names its model by the file's path: the file's name is enough."""
    return served.rsplit("/", 1)[-1].removesuffix(".gguf") if served.endswith(".gguf") else served


def _backoff(response, attempt: int) -> float:
    """As long as the server asks (Retry-After), else 0.5 s, 1 s, 2 s… up to 8 s."""
    try:
        asked = float(response.headers.get("retry-after")) if response is not None else None
    except (TypeError, ValueError):
        asked = None
    return min(asked if asked is not None and asked >= 0 else 0.5 * 2 ** attempt, 30.0 if asked else 8.0)


def _strip_fences(text: str) -> str:
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.S)
    return match.group(1) if match else text


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
