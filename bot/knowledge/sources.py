"""Help articles read from what a team has at hand: files, a CSV of URLs, or a sitemap.

- a folder of ``.md``, ``.markdown``, ``.html``, ``.htm`` and ``.txt`` files: the title is the
  front matter's ``title:``, else the first heading (``# …``, ``<title>``, ``<h1>``), else the
  file's name; the URL is the front matter's ``url:``, else the HTML's
  ``<link rel="canonical">``. A file without a URL is skipped, and said so.
- a ``.csv`` of ``url,title[,text]`` (a header row naming ``url`` is optional).
- a ``sitemap.xml``: its URLs, titled from their last path segment.

Nothing is fetched over the network: a URL from a CSV or a sitemap brings only its title
(and the CSV's text), so those articles are matched on their titles.
"""
from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bot import links

FILE_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".txt")
TITLE_LIMIT = 500
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_NOT_A_WORD = re.compile(r"^(?:\d+|[a-z]{2}[-_][a-z]{2}|s|hc|kb|article|articles|answer|document|help|index|en)$", re.I)


class SourceError(Exception):
    """The path cannot be read as articles at all; nothing is imported."""


@dataclass(frozen=True)
class SourceArticle:
    url: str
    title: str
    text: str


@dataclass
class Source:
    articles: list[SourceArticle] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one sentence per item left out, naming it
    titles_only: bool = False  # from URLs alone: no text beyond the titles

    def add(self, article: SourceArticle, where: str) -> None:
        if any(links.page_key(a.url) == links.page_key(article.url) for a in self.articles):
            self.skipped.append(f"{where}: {article.url} is listed already; the first one is kept")
        else:
            self.articles.append(article)


def read(path: Path) -> Source:
    """The articles at ``path`` (a folder, a ``.csv`` or a sitemap ``.xml``)."""
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".xml":
        return read_sitemap(path)
    raise SourceError(f"{path}: expected a folder of {', '.join(FILE_SUFFIXES)} files, a .csv of url,title[,text], or a sitemap .xml")


# ---- a folder of files -------------------------------------------------------------


def read_folder(folder: Path) -> Source:
    source = Source()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES):
        where = str(path.relative_to(folder))
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            source.skipped.append(f"{where}: cannot read it as UTF-8 text ({type(error).__name__})")
            continue
        html = path.suffix.lower() in (".html", ".htm")
        url, title, text = _from_html(content) if html else _from_text(content, markdown=path.suffix.lower() != ".txt")
        if not url:
            how = '<link rel="canonical" href="https://…">' if html else "front matter (---, url: https://…, ---)"
            source.skipped.append(f"{where}: no URL; add one as {how}")
            continue
        problem = _url_problem(url)
        if problem:
            source.skipped.append(f"{where}: {problem}")
            continue
        source.add(SourceArticle(url=url, title=_title(title or _title_from_name(path)), text=text.strip()), where)
    return source


def _from_text(content: str, *, markdown: bool) -> tuple[str | None, str | None, str]:
    """(url, title, text) of a Markdown or text file: front matter, then the first heading."""
    meta, body = {}, content
    match = _FRONT_MATTER.match(content.replace("\r\n", "\n"))
    if match:
        for line in match.group(1).splitlines():
            key, _, value = line.partition(":")
            meta[key.strip().lower()] = value.strip().strip("\"'")
        body = content.replace("\r\n", "\n")[match.end():]
    heading = _HEADING.search(body) if markdown else None
    return meta.get("url") or None, meta.get("title") or (heading.group(1) if heading else None), body


class _Page(HTMLParser):
    """The title, canonical URL and visible text of an HTML page."""

    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCKS = {"p", "div", "section", "article", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title, self.h1, self.canonical = "", "", None
        self._h1_done = False
        self.parts: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "link" and "canonical" in (values.get("rel") or "").lower().split() and values.get("href"):
            self.canonical = self.canonical or values["href"].strip()
        if tag in self.BLOCKS:
            self.parts.append("\n\n")
        if tag not in ("link", "meta", "br", "img", "input", "hr"):
            self._open.append(tag)

    def handle_endtag(self, tag):
        self._h1_done = self._h1_done or (tag == "h1" and bool(self.h1.strip()))
        if tag in self._open:
            while self._open and self._open.pop() != tag:
                pass
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if "title" in self._open:
            self.title += data
        elif "h1" in self._open and not self._h1_done:
            self.h1 += data
        if not self.SKIP & set(self._open):
            self.parts.append(data)


def _from_html(content: str) -> tuple[str | None, str | None, str]:
    page = _Page()
    page.feed(content)
    page.close()
    text = re.sub(r"[ \t]*\n\s*\n\s*", "\n\n", re.sub(r"[ \t\r\f\v]+", " ", "".join(page.parts)))
    title = " ".join(page.title.split()) or " ".join(page.h1.split()) or None
    return page.canonical, title, text


def _title_from_name(path: Path) -> str:
    return title_from_slug(path.stem) or path.stem


# ---- a CSV of URLs -----------------------------------------------------------------


def read_csv(path: Path) -> Source:
    source = Source(titles_only=True)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SourceError(f"{path}: cannot read it as a UTF-8 CSV ({error})") from None
    for number, row in enumerate(rows, 1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and cells[0].lower() == "url"):
            continue
        where = f"{path.name} line {number}"
        url, title, text = (cells + ["", ""])[:3]
        problem = _url_problem(url) if url else "no URL in the first column"
        if problem:
            source.skipped.append(f"{where}: {problem}")
            continue
        source.titles_only = source.titles_only and not text
        source.add(SourceArticle(url=url, title=_title(title or title_from_url(url)), text=text), where)
    return source


# ---- a sitemap -------------------------------------------------------------------------


def read_sitemap(path: Path) -> Source:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        raise SourceError(f"{path}: not a readable XML sitemap ({error})") from None
    kind = root.tag.rsplit("}", 1)[-1]
    if kind == "sitemapindex":
        raise SourceError(f"{path}: a sitemap index lists other sitemaps, and Conversant fetches nothing over the network: "
                          "import each sitemap file it lists")
    if kind != "urlset":
        raise SourceError(f"{path}: not a sitemap (its root is <{kind}>, expected <urlset>)")
    source = Source(titles_only=True)
    for number, element in enumerate((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "loc"), 1):
        url = (element.text or "").strip()
        problem = _url_problem(url)
        if problem:
            source.skipped.append(f"{path.name} URL {number}: {problem}")
            continue
        source.add(SourceArticle(url=url, title=_title(title_from_url(url)), text=""), f"{path.name} URL {number}")
    return source


# ---- titles and URLs -------------------------------------------------------------------


def title_from_url(url: str) -> str:
    """A title from the URL's path: its last words-bearing segment ("Basic-Troubleshooting-for-the-PS4"
    gives "Basic Troubleshooting for the PS4"), else the host."""
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    words = [title_from_slug(s) for s in reversed(segments) if not _NOT_A_WORD.match(s)]
    return next((w for w in words if w), parts.hostname or url)


def title_from_slug(slug: str) -> str:
    slug = re.sub(r"\.(?:html?|php|aspx?)$", "", slug, flags=re.I)
    words = [w for w in re.split(r"[-_+\s]+", slug) if w]
    if not words or all(w.isdigit() for w in words):
        return ""
    if words[0].isdigit() and len(words) > 1:  # Zendesk's "360034754912-Backing-up-worlds"
        words = words[1:]
    title = " ".join(words)
    return title[0].upper() + title[1:]


def _title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def _url_problem(url: str) -> str | None:
    link = links.find(url)
    if not (len(link) == 1 and link[0].href and link[0].host and link[0].href.startswith(("https://", "http://"))
            and link[0].written == url):
        return f"{url[:100]!r} is not a web address (https://…)"
    if len(url) > 2048:
        return f"{url[:100]}… is longer than 2,048 characters"
    return None
