"""Block Kit's limits, and text cut to fit them after all formatting (escaping, ``> `` quotes).

Slack refuses a whole message or view when one text is a character too long (``invalid_blocks``),
so every builder cuts its texts here, last, once they are in their final form. Lengths are counted
in UTF-16 code units: an emoji counts two, which is never less than what Slack counts.
Numbers from docs.slack.dev/reference/block-kit (blocks, block elements, composition objects).
"""
from __future__ import annotations

import re

SECTION_TEXT = 3000
FIELD_TEXT = 2000  # each of a section's fields (at most 10)
HEADER_TEXT = 150
CONTEXT_TEXT = 2000  # a text object may hold 3,000; context lines stay shorter so a whole card stays well
#                      under what Slack takes in one message's blocks (``msg_blocks_too_long``, ~13,000)
BUTTON_TEXT = 75
OPTION_TEXT = 75
PLACEHOLDER = 150
MODAL_TITLE = 24  # also the submit and close labels
INPUT_LABEL = 2000
INPUT_MAX_LENGTH = 3000  # what a plain_text_input holds; its max_length may not be larger
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100  # also the Home tab
# Button and option values, and a modal's private_metadata, are small JSON of ours (payloads.py), never cut.
MORE = "…"

# A cut never leaves half an entity (``&am``), half a link, mention or date (``<https://…``) or half
# a shown code point (``[U+20``): those would show as garbage, or swallow the rest of the text.
_BROKEN_END = re.compile(r"(&[a-z]*|<[^>]*|\[U\+[0-9A-F]*)$")


def units(text: str) -> int:
    """The length Slack's limits are checked against (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit``, else cut at a clean place and ended with "…"."""
    if units(text) <= limit:
        return text
    head = text.encode("utf-16-le")[: 2 * (limit - units(MORE))].decode("utf-16-le", errors="ignore")
    return _BROKEN_END.sub("", head) + MORE


def fit_lines(lines: list[str], limit: int, hidden: int = 0) -> str:
    """As many whole lines as fit in ``limit``, then "…and N more." for those left out
    (``hidden``: lines the caller left out already)."""
    kept: list[str] = []
    for i, line in enumerate(lines):
        left = len(lines) - i - 1 + hidden
        tail = units(_more(left)) + 1 if left else 0
        if units("\n".join([*kept, line])) + tail > limit:
            return fit("\n".join([*kept, _more(len(lines) - i + hidden)]), limit)
        kept.append(line)
    return "\n".join([*kept, _more(hidden)] if hidden else kept)


def _more(n: int) -> str:
    return f"…and {n:,} more."


def fit_blocks(blocks: list[dict], limit: int) -> list[dict]:
    """At most ``limit`` blocks: the last ones (the buttons) are kept, the middle ones say how many were left out."""
    if len(blocks) <= limit:
        return blocks
    tail = blocks[-1:] if blocks[-1]["type"] == "actions" else []
    head = blocks[: limit - 1 - len(tail)]
    left_out = len(blocks) - len(head) - len(tail)
    note = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"…{left_out} more not shown."}]}
    return [*head, note, *tail]
