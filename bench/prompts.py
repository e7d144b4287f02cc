"""prompt_tokens_per_draft: tokens sent to the model per draft, and how much of it is a stable prefix.

Measured on the prompts the production code really sent during the drain.
Tokens are estimated offline with the GPT pre-tokenizer pattern (words,
numbers and punctuation runs; the tokenizer's own files need a download) plus
the chat format's few tokens per message: close to, usually slightly under,
what the provider counts.

The stable prefix is the longest start that every prompt shares (what a
provider's prompt cache can reuse). OpenAI caches only prompts of at least
1,024 tokens, in steps of 128, so a shorter prompt gets nothing from its cache
however stable its start.
"""
from __future__ import annotations

import os

import regex

PRETOKEN = regex.compile(r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
PER_MESSAGE = 4  # <|start|>role ... <|end|>
PER_REPLY = 3  # the assistant's priming
CACHE_MINIMUM, CACHE_STEP = 1024, 128


def count_tokens(text: str) -> int:
    return len(PRETOKEN.findall(text))


def serialise(messages: list[dict]) -> str:
    return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)


def prompt_tokens(messages: list[dict]) -> int:
    return sum(count_tokens(m["content"]) + PER_MESSAGE for m in messages) + PER_REPLY


def cacheable(prefix_tokens: int) -> int:
    if prefix_tokens < CACHE_MINIMUM:
        return 0
    return CACHE_MINIMUM + (prefix_tokens - CACHE_MINIMUM) // CACHE_STEP * CACHE_STEP


def measure(prompts: list[list[dict]]) -> dict:
    if not prompts:
        return {}
    texts = [serialise(p) for p in prompts]
    prefix = os.path.commonprefix(texts)
    # The stable prefix counted the way the prompt is: whole messages, then the start of the first that differs.
    prefix_tokens, consumed = 0, ""
    for message in prompts[0]:
        part = serialise([message])
        if prefix.startswith(consumed + part):
            prefix_tokens += count_tokens(message["content"]) + PER_MESSAGE
            consumed += part
        else:
            shared = prefix[len(consumed):]
            head = f"<{message['role']}>"
            prefix_tokens += count_tokens(shared.removeprefix(head)) if shared.startswith(head) else 0
            break
    per_draft = sum(prompt_tokens(p) for p in prompts) / len(prompts)
    return {
        "tokens": round(per_draft),
        "stable_prefix_tokens": prefix_tokens,
        "stable_prefix_share": round(prefix_tokens / per_draft, 3),
        "cacheable_tokens": cacheable(prefix_tokens),
        "cache_minimum": CACHE_MINIMUM,
        "drafts": len(prompts),
        "method": "estimate (GPT pre-tokenizer pattern + 4 per message)",
    }
