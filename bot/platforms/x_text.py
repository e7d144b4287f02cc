"""How X counts a post's length: twitter-text's weighted length (config v3).

The rules, from twitter/twitter-text config/v3.json and js/src/parseTweet.js:

- the text is NFC-normalised first;
- every URL counts as ``transformedURLLength`` = 23, however long it is (t.co wraps it);
- every emoji, including ZWJ sequences, skin tones, flags and keycaps, counts 2;
- any other code point counts 1 in the ranges below (Latin, Greek, Cyrillic, Hebrew,
  Arabic and the rest of U+0000–U+10FF, plus some general punctuation) and 2 elsewhere
  (CJK, Hangul, most other scripts, symbols).

The weights are 100 and 200 over a scale of 100 with a limit of 280, i.e. 1 and 2
against 280. As in twitter-text, a host whose labels do not fit DNS (63 characters once
punycode-encoded) is no URL. One simplification, which only matters for links written
without ``https://``: twitter-text recognises a bare domain only when its TLD is on
IANA's list (about 1,500 names); here a bare domain counts as a URL when its TLD is a
country code or one of the common generic TLDs below, so ``acme.community`` counts 14,
not 23. With ``http(s)://`` any alphabetic TLD is accepted.
"""
from __future__ import annotations

import unicodedata

import regex

LIMIT = 280
URL_WEIGHT = 23
EMOJI_WEIGHT = 2
# Code point ranges weighing 1 (weight 100 in config v3 "ranges"); all others weigh 2.
LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

COUNTRY_TLDS = (
    "ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl "
    "bm bn bo bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx "
    "cy cz de dj dk dm do dz ec ee eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg "
    "gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is "
    "it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma "
    "mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni "
    "nl np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb "
    "sc sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl "
    "tm tn to tp tr tt tv tw tz ua ug uk um us uy uz va vc ve vg vi vn vu wf ws ye yt za "
    "zm zw"
).split()
COMMON_GENERIC_TLDS = (
    "com net org edu gov mil int info biz name pro mobi app dev page blog shop store online "
    "site website tech cloud xyz art design studio agency digital news live world club social "
    "media email link help support team company business services solutions systems network"
).split()

_PATH_CHAR = r"[a-z0-9\u00c0-\u024f\u0400-\u04ff!*';:=+,.$/%#\[\]\-\u2013_~@|&]"
_PATH_END = r"[a-z0-9\u00c0-\u024f\u0400-\u04ff+\-=_#/]"
_PARENS = r"\([^\s()]*\)"
_PATH = rf"/(?:(?:{_PATH_CHAR}|{_PARENS})*(?:{_PATH_END}|{_PARENS}))?"
_QUERY = r"\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/]"
_PORT = r"(?::[0-9]{1,5})?"
_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{N}_-]{0,61}[\p{L}\p{N}])?"
_ASCII_LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_TLD_END = r"(?![\p{L}\p{N}@+\-])"

_HOST = rf"(?:{_LABEL}\.)+(?:\p{{L}}{{2,}}|xn--[a-z0-9-]+){_TLD_END}"
_BARE_HOST = rf"(?:{_ASCII_LABEL}\.)+(?:{'|'.join(COUNTRY_TLDS + COMMON_GENERIC_TLDS)}){_TLD_END}"
# twitter-text's validUrlPrecedingChars: no URL right after a letter, digit, @, $ or #
# (nor, without a scheme, after - _ . /).
_URL = regex.compile(
    rf"(?:(?<![a-z0-9@＠$#＃])https?://(?P<host>{_HOST})"
    rf"|(?<![a-z0-9@＠$#＃\-_./])(?P<bare_host>{_BARE_HOST}))"
    rf"{_PORT}(?:{_PATH})?(?:{_QUERY})?",
    regex.IGNORECASE,
)
_CLUSTER = regex.compile(r"\X")
_EMOJI_PART = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")


def weighted_length(text: str) -> int:
    """The length X counts against its 280 limit."""
    text = unicodedata.normalize("NFC", text)
    total, position = 0, 0
    while position < len(text):
        url = _URL.match(text, position)
        if url and _fits_dns(url.group("host") or url.group("bare_host")):
            total += URL_WEIGHT
            position = url.end()
        else:
            cluster = _CLUSTER.match(text, position)
            total += _cluster_weight(cluster.group())
            position = cluster.end()
    return total


def _fits_dns(host: str) -> bool:
    try:
        host.encode("idna")  # fails when a label is longer than 63 characters in punycode
    except UnicodeError:
        return False
    return True


def _cluster_weight(cluster: str) -> int:
    # A multi-code-point emoji (ZWJ family, skin tone, flag, keycap, tag sequence) is one emoji.
    if len(cluster) > 1 and _EMOJI_PART.search(cluster):
        return EMOJI_WEIGHT
    return sum(_code_point_weight(ord(char)) for char in cluster)


def _code_point_weight(code_point: int) -> int:
    return 1 if any(first <= code_point <= last for first, last in LIGHT_RANGES) else 2
