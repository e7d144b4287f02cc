"""Which posts of the whole network concern the brand: pure, and fast enough for every post.

A post concerns the brand when it mentions the brand's DID in a facet, replies
to a post of the brand (its parent or its thread's root), quotes one, links to
one of the brand's domains, or says one of BRAND_KEYWORDS as a word.

``might_match`` looks at the raw frame first: almost no post on the network
concerns the brand, and a substring test is much cheaper than parsing JSON.
"""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

import regex

MENTION = "app.bsky.richtext.facet#mention"
LINK = "app.bsky.richtext.facet#link"
# Scripts written without spaces between words: a keyword there is matched anywhere in the text.
_UNSPACED = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN")


def _unspaced(keyword: str) -> bool:
    return any(unicodedata.name(char, "").startswith(_UNSPACED) for char in keyword)


def keyword_pattern(keywords: tuple[str, ...]):
    """Case-insensitive, on word boundaries (``#acme`` and ``Acme's`` match, ``acmeville`` does not)."""
    parts = []
    for keyword in sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True):
        escaped = regex.escape(keyword)
        parts.append(escaped if _unspaced(keyword) else rf"(?<![\w]){escaped}(?![\w])")
    return regex.compile("|".join(parts), regex.IGNORECASE | regex.FULLCASE) if parts else None


class BrandFilter:
    def __init__(self, brand_did: str, *, keywords: tuple[str, ...] = (), domains: tuple[str, ...] = ()) -> None:
        self.brand_did = brand_did
        self._brand_prefix = f"at://{brand_did}/"
        self.domains = tuple(d.lower().removeprefix("www.") for d in domains if d)
        self._keywords = keyword_pattern(keywords)
        # Lower-case needles for the raw pre-check; one of them is in every frame that can match.
        self._needles = tuple({brand_did.lower(), *self.domains, *(k.strip().lower() for k in keywords if k.strip())})

    def might_match(self, raw: str) -> bool:
        """False only when the frame cannot concern the brand (``\\u`` escapes may hide a keyword: parse those)."""
        low = raw.lower()
        return "\\u" in raw or any(needle in low for needle in self._needles)

    def reason(self, author_did: str, record: dict) -> str | None:
        """mention | reply | quote | keyword (a keyword or a link to the brand), or None."""
        if author_did == self.brand_did or not isinstance(record, dict):
            return None
        reply = record.get("reply") or {}
        if any(self._is_brand_post(_uri(reply.get(part))) for part in ("parent", "root")):
            return "reply"
        links = []
        for facet in _list(record.get("facets")):
            for feature in _list(facet.get("features") if isinstance(facet, dict) else None):
                if not isinstance(feature, dict):
                    continue
                if feature.get("$type") == MENTION and feature.get("did") == self.brand_did:
                    return "mention"
                if feature.get("$type") == LINK:
                    links.append(feature.get("uri"))
        embed = record.get("embed") if isinstance(record.get("embed"), dict) else {}
        quoted = embed.get("record") if isinstance(embed.get("record"), dict) else {}
        if embed.get("$type") == "app.bsky.embed.recordWithMedia":
            quoted = quoted.get("record") if isinstance(quoted.get("record"), dict) else {}
        if self._is_brand_post(_uri(quoted)):
            return "quote"
        external = embed.get("external") if isinstance(embed.get("external"), dict) else {}
        links.append(external.get("uri"))
        if any(self._brand_domain(link) for link in links):
            return "keyword"
        text = record.get("text")
        if self._keywords is not None and isinstance(text, str) and self._keywords.search(text):
            return "keyword"
        return None

    def _is_brand_post(self, uri) -> bool:
        return isinstance(uri, str) and uri.startswith(self._brand_prefix)

    def _brand_domain(self, link) -> bool:
        if not isinstance(link, str) or not self.domains:
            return False
        try:
            host = (urlsplit(link).hostname or "").lower()
        except ValueError:
            return False
        return any(host == d or host.endswith("." + d) for d in self.domains)


def _uri(ref) -> str | None:
    return ref.get("uri") if isinstance(ref, dict) else None


def _list(value) -> list:
    return value if isinstance(value, list) else []
