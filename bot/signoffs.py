"""Sign-offs: the approver's initials at the end of a reply (`` ^JD``), as support teams sign on X. Pure."""
from __future__ import annotations

from collections.abc import Mapping


def sign(text: str, initials: str | None) -> str:
    """``text`` ending with `` ^initials``; unchanged without initials or when it already ends so
    (an edited reply that kept its sign-off)."""
    if not initials:
        return text
    mark = f"^{initials}"
    stripped = text.rstrip()
    return stripped if stripped.endswith(" " + mark) or stripped == mark else f"{stripped} {mark}"


def longest(signoffs: Mapping[str, str]) -> str | None:
    """The longest initials configured: if a draft fits with them, it fits with anyone's."""
    return max(signoffs.values(), key=len, default=None)
