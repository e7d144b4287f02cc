"""Counting text as people see it: Bluesky's limit, and the default for any 300-grapheme check."""
from __future__ import annotations

import re

import regex


def grapheme_count(text: str) -> int:
    """User-perceived characters: 👩‍👩‍👧 is one, as Bluesky counts it."""
    return len(regex.findall(r"\X", text))


# Characters a reader cannot see but that change what a text says or which way it runs: zero-width
# spaces, word joiners, the byte-order mark, and bidi embeddings, overrides and isolates (the
# "Trojan Source" set). The zero-width joiner and non-joiner are left out: emoji sequences and
# Persian, among others, need them.
HIDDEN_CHARACTERS = re.compile("[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
