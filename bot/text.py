"""Counting text as people see it: Bluesky's limit, and the default for any 300-grapheme check."""
from __future__ import annotations

import regex


def grapheme_count(text: str) -> int:
    """User-perceived characters: 👩‍👩‍👧 is one, as Bluesky counts it."""
    return len(regex.findall(r"\X", text))
