"""How X counts a post's length: twitter-text's weighted length (config v3).

The rules, from twitter/twitter-text config/v3.json and js/src/parseTweet.js:

- the text is NFC-normalised first;
- every URL counts as ``transformedURLLength`` = 23, however long it is (t.co wraps it);
- every emoji, including ZWJ sequences, skin tones, flags and keycaps, counts 2;
- any other code point counts 1 in the ranges below (Latin, Greek, Cyrillic, Hebrew,
  Arabic and the rest of U+0000–U+10FF, plus some general punctuation) and 2 elsewhere
  (CJK, Hangul, most other scripts, symbols).

The weights are 100 and 200 over a scale of 100 with a limit of 280, i.e. 1 and 2
against 280. What is a URL follows twitter-text's extractor (js/src/extractUrlsWithIndices.js
and its regexps): a domain is a URL only when it ends in a TLD of its list
(``x_tlds``), with or without ``https://``; a bare domain must be ASCII (Latin
accents allowed) and not follow ``-_./``; its labels must fit DNS. The extractor is
ported as a linear scan rather than as its regexps, which backtrack for minutes on
a long run of ``a.a.a.…`` (the tests compare the two on every TLD and tricky texts).
"""

from __future__ import annotations

import re
import unicodedata

import regex

from bot.platforms.x_tlds import COUNTRY_TLDS, GENERIC_TLDS

LIMIT = 280
URL_WEIGHT = 23
EMOJI_WEIGHT = 2
# Code point ranges weighing 1 (weight 100 in config v3 "ranges"); all others weigh 2.
LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

_CLUSTER = regex.compile(r"\X")
_EMOJI_PART = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")
_TRAILING_MARKS = regex.compile(r"(?:(?![\ufe0e\ufe0f\u20e3])\p{M})+$")


def weighted_length(text: str) -> int:
    """The length X counts against its 280 limit."""
    text = unicodedata.normalize("NFC", text)
    spans = url_spans(text)
    urls = dict(spans)
    starts = iter([start for start, _ in spans] + [len(text)])
    next_url = next(starts)
    total, position = 0, 0
    while position < len(text):
        if position in urls:
            total += URL_WEIGHT
            position = urls[position]
            next_url = next(starts)
        else:
            cluster = _CLUSTER.match(text, position, next_url)  # a URL may start inside a cluster
            total += _cluster_weight(cluster.group())
            position = cluster.end()
    return total


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL X links in ``text``, as twitter-text's extractUrlsWithIndices."""
    return _Extractor(text).spans()


# twitter-text's character classes (js/src/regexp/*.js).
_PUNCT = set("!'#%&()*+,\\-./:;<=>?@[]^_{|}~$")
_SPACES = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u180e\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)}
_INVALID = set("\ufffe\ufeff\uffff")
_DIRECTIONAL = set("\u202a\u202b\u202c\u202d\u202e\u061c\u200e\u200f\u2066\u2067\u2068\u2069")
_NOT_DOMAIN = _PUNCT | _SPACES | _INVALID | _DIRECTIONAL
_LATIN_ACCENTS = r"\xC0-\xD6\xD8-\xF6\xF8-\xFF\u0100-\u024F\u0253\u0254\u0256\u0257\u0259\u025B\u0263\u0268\u026F\u0272\u0289\u028B\u02BB\u0300-\u036F\u1E00-\u1EFF"
_ASCII_LABEL_RUN = re.compile(rf"[\-a-z0-9{_LATIN_ACCENTS}]+", re.I)
_LABEL_RUN = re.compile("[^" + re.escape("".join(_NOT_DOMAIN - set("-_"))) + "]+")
_PATH_CHAR = rf"[a-z\u0400-\u04FF0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_LATIN_ACCENTS}]"
_PARENS = rf"\((?:{_PATH_CHAR}+|(?:{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*))\)"
_PATH_END = rf"(?:[+\-a-z\u0400-\u04FF0-9=_#/{_LATIN_ACCENTS}]|(?:{_PARENS}))"
_PATH = rf"(?:(?:{_PATH_CHAR}*(?:{_PARENS}{_PATH_CHAR}*)*{_PATH_END})|(?:@{_PATH_CHAR}+/))"
_QUERY = r"\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/]"
# What may follow the domain: port, path, query; the same regexps as twitter-text, anchored
# right after the domain, where they cannot fail and so never backtrack far.
_AFTER_DOMAIN = re.compile(rf"(?::[0-9]+)?(?P<path>/{_PATH}*)?(?:{_QUERY})?", re.I)
_TCO = re.compile(rf"https?://t\.co/([a-z0-9]+)(?:{_QUERY})?", re.I)
_SCHEME = re.compile(r"https?://", re.I)
_PUNYCODE = re.compile(r"xn--[\-0-9a-z]+", re.I)
# In twitter-text's order: generic TLDs first, then country codes; the first that fits wins.
_TLD_ORDER = {tld: rank for rank, tld in enumerate(GENERIC_TLDS + COUNTRY_TLDS)}
_TLD_LENGTHS = sorted({len(tld) for tld in _TLD_ORDER})
_TLD_FOLLOWER = re.compile(r"[0-9a-zA-Z@+\-]", re.I)
# validUrlPrecedingChars: no URL right after a letter, a digit, @, $ or #.
_PRECEDING = re.compile(r"[^A-Za-z0-9@＠$#＃\ufffe\ufeff\uffff]", re.I)
_MAX_URL_LENGTH = 4096
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})


class _Extractor:
    """One pass over a text; memoised per label start, so a long run of labels costs linear time."""

    def __init__(self, text: str):
        self.text = text
        # TLDs compare as the regexp's IGNORECASE does: character by character (İ is i, not i̇).
        self.folded = text.translate(_FOLD).lower()
        self._chains: dict[int, int | None] = {}
        self._runs: dict[re.Pattern, list[int]] = {}

    def spans(self) -> list[tuple[int, int]]:
        text, spans, position = self.text, [], 0
        if "." not in text:
            return spans
        while position < len(text):
            found = None
            if _PRECEDING.match(text, position):
                found = self._url_at(position + 1, text[position])
            if found is None and position == 0:
                found = self._url_at(0, "")
            if found is None:
                position += 1
                continue
            end, new_spans = found
            spans.extend(new_spans)
            position = max(end, position + 1)
        return spans

    def _url_at(self, start: int, before: str) -> tuple[int, list[tuple[int, int]]] | None:
        """Where a twitter-text URL match starting at ``start`` ends, and the URLs it yields."""
        text = self.text
        scheme = _SCHEME.match(text, start)
        domain_start = scheme.end() if scheme else start
        domain_end = self._domain_end(domain_start)
        if domain_end is None:
            return None
        after = _AFTER_DOMAIN.match(text, domain_end)
        end = after.end()
        domain = text[domain_start:domain_end]
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):  # a label longer than 63 characters once punycode-encoded, an empty label
            return end, []
        if len("https://" if not scheme else scheme.group()) + (end - start) + len(ascii_domain) - len(domain) > _MAX_URL_LENGTH:
            return end, []
        if scheme:
            tco = _TCO.match(text, start, end)
            if tco:
                if len(tco.group(1)) > 40:
                    return end, []
                return end, [(start, tco.end())]
            return end, [(start, end)]
        if before and before in "-_./":
            return end, []
        spans = self._ascii_domains(domain_start, domain_end)
        if spans and after.group("path"):
            spans[-1] = (spans[-1][0], end)
        return end, spans

    # --- domains: (?:subdomain)*(?:domain_name)(?:tld), as the regexp would match greedily ---

    def _label_end(self, start: int, run: re.Pattern) -> int:
        """End of the run of label characters from ``start``; each run is scanned once."""
        if run not in self._runs:
            ends = list(range(len(self.text) + 1))
            for match in run.finditer(self.text):
                ends[match.start():match.end()] = [match.end()] * (match.end() - match.start())
            self._runs[run] = ends
        return self._runs[run][start]

    def _domain_end(self, start: int) -> int | None:
        """End of (?:subdomain)*(?:domain_name)(?:tld) from ``start``, as the regexp matches it."""
        text, labels, position = self.text, [], start
        while position not in self._chains:  # the labels, each followed by a dot
            end = self._label_end(position, _LABEL_RUN)
            if end >= len(text) or text[end] != "." or end == position or not (
                    _is_domain_char(text[position]) and _is_domain_char(text[end - 1])):
                self._chains[position] = None
                break
            labels.append((position, end))
            position = end + 1
        longer = self._chains[position]
        for label_start, label_end in reversed(labels):
            # subdomain* is greedy: as many labels as still end in a TLD; the last label before
            # the TLD (domain_name) may not hold an underscore.
            if longer is None and "_" not in text[label_start:label_end]:
                longer = self._tld_end(label_end + 1)
            self._chains[label_start] = longer
        return self._chains[start]

    def _tld_end(self, start: int, limit: int | None = None) -> int | None:
        """End of the TLD at ``start``; the lookahead after it sees ``limit`` as the text's end."""
        text, best = self.text, None
        limit = len(text) if limit is None else limit
        for length in _TLD_LENGTHS:
            if start + length > limit:
                break
            candidate = self.folded[start:start + length]
            if candidate in _TLD_ORDER and not _TLD_FOLLOWER.match(text, start + length, limit):
                if best is None or _TLD_ORDER[candidate] < _TLD_ORDER[best]:
                    best = candidate
        if best is not None:
            return start + len(best)
        punycode = _PUNYCODE.match(text, start, limit)
        return punycode.end() if punycode else None

    def _ascii_domains(self, start: int, end: int) -> list[tuple[int, int]]:
        """The ASCII domains inside a bare domain: only they become links (validAsciiDomain)."""
        spans, position = [], start
        while position < end:
            found = self._ascii_chain(position, end)
            if found is None:
                label_end = self._label_end(position, _ASCII_LABEL_RUN)
                position = max(label_end, position + 1)
            else:
                spans.append((position, found))
                position = found
        return spans

    def _ascii_chain(self, start: int, limit: int) -> int | None:
        """End of ``(?:[-a-z0-9…]+[.])+(?:tld)`` from ``start`` inside a domain ending at ``limit``."""
        text, labels, position = self.text, [], start
        while True:
            end = min(self._label_end(position, _ASCII_LABEL_RUN), limit)
            if end == position or end >= limit or text[end] != ".":
                break
            labels.append(end)
            position = end + 1
        longer = None
        for label_end in reversed(labels):
            if longer is None:
                longer = self._tld_end(label_end + 1, limit)
        return longer


def _is_domain_char(char: str) -> bool:
    return char not in _NOT_DOMAIN


def _cluster_weight(cluster: str) -> int:
    # An emoji, of one code point (© too) or many (ZWJ family, skin tone, flag, keycap, tag
    # sequence), weighs 2.
    # Combining marks that merely follow an emoji are no part of it and weigh on their own.
    if _EMOJI_PART.search(cluster):
        marks = _TRAILING_MARKS.search(cluster)
        return EMOJI_WEIGHT + (sum(_code_point_weight(ord(c)) for c in marks.group()) if marks else 0)
    return sum(_code_point_weight(ord(char)) for char in cluster)


def _code_point_weight(code_point: int) -> int:
    return 1 if any(first <= code_point <= last for first, last in LIGHT_RANGES) else 2
