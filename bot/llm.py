"""A thin wrapper over the OpenAI SDK: structured triage and reply, validated.

Any OpenAI-compatible server works through ``OPENAI_BASE_URL`` (Ollama, vLLM).
Every failure becomes ``DraftUnavailable`` with a message a person can act on;
the API key never appears in it.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from typing import Literal

import openai
from pydantic import BaseModel, Field, ValidationError

from bot.config import Settings

log = logging.getLogger(__name__)

CATEGORIES = ("question", "complaint", "praise", "feedback", "spam", "other")


class Triage(BaseModel):
    """What the model must return for each mention."""

    should_reply: bool
    reason: str = Field(max_length=500)
    category: Literal["question", "complaint", "praise", "feedback", "spam", "other"]
    sentiment: Literal["positive", "neutral", "negative"]
    urgency: Literal["low", "normal", "high"]
    reply: str = Field(max_length=10_000)


TRIAGE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["should_reply", "reason", "category", "sentiment", "urgency", "reply"],
    "properties": {
        "should_reply": {"type": "boolean", "description": "false for spam, bots, or posts that need no answer"},
        "reason": {"type": "string", "description": "one short sentence: why reply or not"},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
        "reply": {"type": "string", "description": "the reply to post, or empty when should_reply is false"},
    },
}


class DraftUnavailable(Exception):
    """The model could not give a usable draft; the message says why."""


class Drafter:
    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.embedding_model = settings.openai_embedding_model  # None: no embeddings, full-text ranking instead
        self.client = openai.OpenAI(
            api_key=settings.openai_api_key or "not-needed",  # local servers such as Ollama ignore it
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,  # the SDK backs off and honours Retry-After
        )
        # At most OPENAI_CONCURRENCY requests to the model at once from this process, whoever asks
        # (the pipeline's drafting threads, re-drafts from Slack): the provider's rate limit is per account.
        self._slots = threading.BoundedSemaphore(settings.openai_concurrency)

    def _create(self, **request):
        with self._slots:
            return self.client.chat.completions.create(**request)

    def triage(self, messages: list[dict]) -> Triage:
        content = self._complete(messages)
        try:
            return Triage.model_validate(json.loads(_strip_fences(content)))
        except (json.JSONDecodeError, ValidationError) as error:
            raise DraftUnavailable(f"the model's answer was not valid triage JSON ({_first_line(error)})") from None

    def complete_json(self, messages: list[dict], *, name: str, schema: dict, model: str | None = None, temperature: float = 0.0) -> dict:
        """Structured output against another schema (the eval's judge); the caller validates the fields."""
        content = self._complete(messages, name=name, schema=schema, model=model, temperature=temperature)
        try:
            answer = json.loads(_strip_fences(content))
        except json.JSONDecodeError as error:
            raise DraftUnavailable(f"the model's answer was not JSON ({_first_line(error)})") from None
        if not isinstance(answer, dict):
            raise DraftUnavailable("the model's answer was not a JSON object")
        return answer

    def _complete(self, messages: list[dict], *, name: str = "triage", schema: dict = TRIAGE_SCHEMA,
                  model: str | None = None, temperature: float = 0.4) -> str:
        model = model or self.model
        response_format = {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
        try:
            try:
                response = self._create(
                    model=model, messages=messages, response_format=response_format, temperature=temperature
                )
            except openai.BadRequestError as error:
                if "response_format" not in str(error) and "json_schema" not in str(error):
                    raise
                # Older OpenAI-compatible servers know only JSON mode.
                response = self._create(
                    model=model, messages=messages, response_format={"type": "json_object"}, temperature=temperature
                )
        except openai.APITimeoutError:
            raise DraftUnavailable("the model did not answer in time") from None
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
        if choice is None or not choice.message.content:
            refusal = getattr(choice.message, "refusal", None) if choice else None
            raise DraftUnavailable(f"the model refused: {refusal}" if refusal else "the model returned no text")
        if response.usage:
            log.debug("model usage: %s prompt tokens, %s completion tokens", response.usage.prompt_tokens, response.usage.completion_tokens)
        return choice.message.content

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text from the provider's embeddings endpoint (``OPENAI_EMBEDDING_MODEL``)."""
        if not self.embedding_model:
            raise DraftUnavailable("no embedding model is configured (OPENAI_EMBEDDING_MODEL)")
        try:
            response = self.client.embeddings.create(model=self.embedding_model, input=texts)
        except openai.NotFoundError:
            raise DraftUnavailable(f"the embedding model {self.embedding_model!r} was not found (check OPENAI_EMBEDDING_MODEL)") from None
        except openai.APIStatusError as error:
            raise DraftUnavailable(f"the embeddings endpoint answered HTTP {error.status_code}") from None
        except openai.OpenAIError as error:
            raise DraftUnavailable(f"the embeddings endpoint is not usable ({type(error).__name__})") from None
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(texts):
            raise DraftUnavailable(f"the embeddings endpoint returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors

    def check(self) -> str:
        """Ask the server for the configured model; used by ``conversant doctor``."""
        try:
            self.client.models.retrieve(self.model)
        except openai.NotFoundError:
            raise DraftUnavailable(f"the server does not know the model {self.model!r} (check OPENAI_MODEL)") from None
        except openai.OpenAIError as error:
            raise DraftUnavailable(f"the model's server is not usable: {type(error).__name__}") from None
        return f"model {self.model} at {self.client.base_url}"


def _strip_fences(text: str) -> str:
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.S)
    return match.group(1) if match else text


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
