"""Links in a reply as a platform shows them and as a browser follows them. Pure functions.

Where a link goes is decided by the WHATWG URL standard, as browsers parse it (ada-url):
``https://evil.example\\a@acme.example/`` goes to evil.example (a backslash ends the host),
``https://acme.example@evil.example`` to evil.example (userinfo), ``https://acme%2eexample``
to acme.example, ``https://аcme.example`` (Cyrillic а) to xn--cme-5cd.example.

What is a link depends on the platform: every platform links ``https://…``; X also links a
bare domain under a TLD it knows (``acme.museum``, twitter-text's rules); Reddit's Markdown
links ``[text](target)`` and ``[ref]: target``, relative to reddit.com, and ``www.…``. The
policy checks every link found here, and the Bluesky adapter builds its link facets from the
same ``Link`` objects, so a facet points exactly where the policy looked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import ada_url

from bot.platforms.x_text import url_spans

# A scheme (any, since platforms link ftp:// or gopher:// too), or the slashes and backslashes
# a browser forgives after http(s):, or www.; then everything up to a space or a quote.
_WRITTEN = re.compile(r"(?<![\w.+\-])(?:[a-z][a-z0-9+.\-]*://|https?:[/\\]*|www\.)[^\s<>\"'`]+", re.I)
_TRAILING = ".,;:!?'\"*"
_CLOSERS = {")": "(", "]": "[", "}": "{", "）": "（"}
_MARKDOWN_INLINE = re.compile(r"\]\(\s*<?([^\s)>]+)")
_MARKDOWN_REFERENCE = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*<?([^\s>]+)", re.M)
REDDIT_BASE = "https://www.reddit.com/"


@dataclass(frozen=True)
class Link:
    start: int
    end: int
    written: str  # as in the text
    href: str | None  # where a browser goes, serialised; None when no browser can read it
    host: str | None  # ASCII (punycode), lower case, without a trailing dot

    @property
    def shown_host(self) -> str:
        """The host for people: punycode with its Unicode form beside it when they differ."""
        if not self.host:
            return "an unreadable address"
        unicode = ada_url.idna_to_unicode(self.host)
        return self.host if unicode == self.host else f"{self.host} (shown as {unicode})"


def find(text: str, platform: str | None = None) -> list[Link]:
    """Every link a reader of ``text`` on ``platform`` could follow."""
    found = written_links(text)
    # The untrimmed form too, when a browser would read it elsewhere: "https://a.example)@b.example".
    for match in _WRITTEN.finditer(text):
        whole = _parse(match.start(), match.end(), match.group())
        if whole.href and all((whole.start, whole.end) != (f.start, f.end) for f in found):
            found.append(whole)
    if platform == "x":
        found += [_parse(start, end, text[start:end]) for start, end in url_spans(text)]
    if platform == "reddit":
        for pattern in (_MARKDOWN_INLINE, _MARKDOWN_REFERENCE):
            found += [_parse(m.start(1), m.end(1), m.group(1), base=REDDIT_BASE) for m in pattern.finditer(text)]
    return found


def written_links(text: str) -> list[Link]:
    """Links written out with a scheme or ``www.``, without trailing punctuation: the ones we
    make clickable ourselves (Bluesky facets)."""
    links = []
    for match in _WRITTEN.finditer(text):
        end = match.start() + len(_trim(match.group()))
        links.append(_parse(match.start(), end, text[match.start():end]))
    return links


def host_of(domain: str) -> str:
    """A configured domain in the form ``Link.host`` takes: punycode, lower case, no trailing dot."""
    domain = domain.strip().lower().rstrip(".")
    try:
        ascii_domain = ada_url.idna_to_ascii(domain)
    except ValueError:
        return domain
    return ascii_domain.decode("ascii") if ascii_domain else domain


def _parse(start: int, end: int, written: str, base: str | None = None) -> Link:
    original = written
    if base is None and not re.match(r"[a-z][a-z0-9+.\-]*:", written, re.I):
        written = "https://" + written  # www.… and bare domains open as https
    try:
        url = ada_url.URL(written, base) if base else ada_url.URL(written)
    except ValueError:
        return Link(start, end, original, None, None)
    return Link(start, end, original, url.href, url.hostname.lower().rstrip(".") or None)


def _trim(written: str) -> str:
    """Drop trailing punctuation, and a closing bracket that closes nothing inside the link."""
    while written:
        last = written[-1]
        if last in _TRAILING or (last in _CLOSERS and written.count(_CLOSERS[last]) < written.count(last)):
            written = written[:-1]
        else:
            break
    return written


_TRACKING = re.compile(r"^(?:utm_[a-z]+|ref|clk|cid|linkid)=", re.I)


def page_key(url: str) -> str:
    """What makes two addresses the same page: the address without scheme, ``www.``, fragment,
    tracking parameters (``utm_…``) or trailing slash, in lower case."""
    try:
        parsed = ada_url.URL(url if re.match(r"[a-z][a-z0-9+.\-]*:", url, re.I) else "https://" + url)
    except ValueError:
        return url.strip().lower()
    query = "&".join(p for p in parsed.search.removeprefix("?").split("&") if p and not _TRACKING.match(p))
    host = parsed.hostname.lower().rstrip(".").removeprefix("www.")
    return (host + parsed.pathname.rstrip("/") + ("?" + query if query else "")).lower()
