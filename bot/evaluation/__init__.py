"""`conversant eval FILE [--judge]`: run the drafter over sample mentions and check every draft.

The drafts are made exactly as for a real mention (the same prompts from
``prompts/`` and the same structured triage) but without a database: no approved
examples and no thread beyond the ``parent`` given in the file. Each draft is
checked as it would be posted (on Mastodon with the ``@author`` prefix), and each
check is *pass*, *fail* or *n/a*:

``within_limit``
    the draft fits the platform's limit, counted as the platform counts
    (Bluesky 300 graphemes, X 280 weighted characters, Mastodon 500 with links
    as 23, Reddit 10,000).
``policy``
    it passes the output policy (``bot.policy.check``): the limit, links only to
    the allowed domains, no @mention but the author, no mass pings.
``addresses_author``
    it speaks *to* the author, not *about* them: it uses their @handle or their
    first name (the first word of their display name), or a second-person word
    of the draft's language ("you", "du", "vous", "tú", "je", "あなた", …),
    and it never calls them "the user", "the customer" or the like (that fails
    whatever else it does). Spanish, Portuguese, Italian, Polish, Japanese,
    Korean and Chinese often leave "you" to the verb or drop it, so there a
    draft with no such word is *n/a* rather than a failure; so is any language
    without a word list here.
``asks_back``
    *n/a* unless the mention is a question (the file's ``question``, else a
    question mark in its text, in any script); then the draft must ask
    something back (it holds a question mark).
``language``
    the draft is in the mention's language: the file's ``lang``, else the
    language detected in the mention. Detection uses py3langid (a naive Bayes
    model shipped inside the package, no download) over the common languages
    in ``LANGUAGES``; a text with fewer than 12 letters is too short to tell
    (*n/a*).
``no_hype``
    no hashtags and none of ``MARKETING_PHRASES``.

A mention the model decides not to answer gets *n/a* everywhere; the file's
``expect_reply`` says whether that was right (``triage_agrees``). With
``--judge``, a judge model (``--judge-model``, else ``OPENAI_MODEL``) scores each
draft 1–5 on every criterion of ``prompts/judge.md`` (its ``## `` headings) and
overall, as structured output validated here.
"""
from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from bot import policy
from bot.config import Settings
from bot.draft import load_prompts, make_draft, prompts_dir
from bot.llm import Drafter, DraftUnavailable
from bot.models import Conversation
from bot.platforms.formats import PlatformFormat, format_for

CHECKS = ("within_limit", "policy", "addresses_author", "asks_back", "language", "no_hype")
CHECK_LABELS = {
    "within_limit": "limit", "policy": "policy", "addresses_author": "author",
    "asks_back": "asks", "language": "lang", "no_hype": "no-hype",
}

# ---- the eval file -------------------------------------------------------------


class EvalFileError(Exception):
    """The eval file cannot be read; the message says what to fix."""


class SampleMention(BaseModel):
    id: str
    platform: Literal["bluesky", "mastodon", "x", "reddit"] = "bluesky"
    author: str = Field(min_length=1)
    name: str | None = None
    reason: Literal["mention", "reply", "quote", "keyword"] = "mention"
    text: str = Field(min_length=1)
    parent: str | None = None
    lang: str | None = None  # the language a reply should be in; detected from the text when absent
    question: bool | None = None  # whether the mention asks something; a question mark when absent
    expect_reply: bool = True  # False for spam and posts that need no answer
    note: str | None = None


class EvalFile(BaseModel):
    brand: str | None = None
    allowed_domains: list[str] | None = None
    mentions: list[SampleMention] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "EvalFile":
        ids = [m.id for m in self.mentions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"mention ids must be unique; repeated: {', '.join(repeated)}")
        return self


def load_file(path: str | Path) -> EvalFile:
    """``{"brand": …, "allowed_domains": […], "mentions": […]}``, or just the list of mentions."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvalFileError(f"{path}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise EvalFileError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    try:
        return EvalFile.model_validate({"mentions": data} if isinstance(data, list) else data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise EvalFileError(f"{path}: {where + ': ' if where else ''}{first['msg']}") from None


# ---- platforms without credentials ------------------------------------------------


# ---- the checks ------------------------------------------------------------------

QUESTION_MARKS = re.compile(r"[?？¿؟]")
LINKS = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
HANDLES = re.compile(r"(?<![\w])@[\w.@-]+")
HASHTAG = re.compile(r"(?<![\w#&/])#(?=\w*[^\W\d_])\w+")
MARKETING_PHRASES = (
    # English
    "we're thrilled", "we are thrilled", "we're excited to announce", "we are excited to announce", "exciting news",
    "stay tuned", "game changer", "game-changer", "next level", "world-class", "best-in-class", "cutting-edge",
    "revolutionary", "seamless experience", "don't miss", "limited time", "act now", "sign up now", "click here",
    "check out our", "unlock the power", "elevate your", "valued customer", "we value your feedback",
    "we apologize for any inconvenience", "we apologise for any inconvenience", "your satisfaction is our",
    # German, French, Spanish, Portuguese, Italian, Dutch
    "wir freuen uns riesig", "jetzt zugreifen", "nicht verpassen", "ne manquez pas", "restez connectés",
    "nous sommes ravis d'annoncer", "no te lo pierdas", "estamos encantados de anunciar", "não perca",
    "non perdere", "mis het niet",
)
# Second-person words by language. In the pro-drop languages the verb often carries "you" alone.
SECOND_PERSON = {
    "en": "you your yours you're youre you've you'll you'd yourself",
    "de": "du dich dir dein deine deinen deinem deiner deines euch euer eure Sie Ihnen Ihr Ihre Ihren Ihrem Ihrer",
    "fr": "tu te toi ton ta tes vous votre vos t'",
    "es": "tú tu tus te ti contigo usted ustedes vos os vosotros vuestro vuestra",
    "pt": "você vocês tu te ti teu tua teus tuas contigo vos",
    "it": "tu te ti tuo tua tuoi tue voi vi vostro vostra Lei",
    "nl": "je jij jou jouw jullie u uw",
    "sv": "du dig din ditt dina ni er era",
    "da": "du dig din dit dine jer jeres",
    "no": "du deg din ditt dine dere",
    "pl": "ty ciebie cię ci tobie twój twoja twoje twojego twojej pan pani państwo wam was",
    "ja": "あなた さん 様",
    "ko": "님 당신",
    "zh": "你 您",
}
UNSPACED = {"ja", "ko", "zh"}  # matched as substrings: no spaces between words
PRO_DROP = {"es", "pt", "it", "pl", "ja", "ko", "zh"}
THIRD_PERSON = re.compile(r"\b(the|this|that) (user|customer|author|poster|person|client)\b|\bthe op\b", re.I)
CASE_SENSITIVE = {"Sie", "Ihnen", "Ihr", "Ihre", "Ihren", "Ihrem", "Ihrer", "Lei"}

LANGUAGES = (
    "en de fr es pt it nl sv da no fi pl cs sk hu ro el tr ru uk ar he fa hi ja ko zh id vi th ca bg hr sr sl et lv lt"
).split()
MIN_LETTERS = 12
_identifier = None
_identifier_lock = threading.Lock()


def detect_language(text: str) -> str | None:
    """The language of ``text`` among ``LANGUAGES``, or None when it is too short to tell."""
    global _identifier
    cleaned = HANDLES.sub(" ", LINKS.sub(" ", text))
    if sum(ch.isalpha() for ch in cleaned) < MIN_LETTERS:
        return None
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages(LANGUAGES)
            _identifier = identifier
        language, _ = _identifier.classify(cleaned)
    return language


def is_question(mention: SampleMention) -> bool:
    if mention.question is not None:
        return mention.question
    return bool(QUESTION_MARKS.search(LINKS.sub(" ", mention.text)))


def asks_back(draft: str) -> bool:
    return bool(QUESTION_MARKS.search(LINKS.sub(" ", draft)))


def addresses_author(draft: str, mention: SampleMention, language: str | None) -> tuple[bool | None, str]:
    """(verdict, why) as defined in the module docstring."""
    body = draft
    if mention.platform == "mastodon":  # the @author prefix is added for everyone; it says nothing here
        body = format_for(mention.platform).compose(draft, mention.author).removeprefix("@" + mention.author.lstrip("@")).strip()
    if THIRD_PERSON.search(body):
        return False, f"talks about the author in the third person ({THIRD_PERSON.search(body).group(0)!r})"
    handle = mention.author.lstrip("@").lower()
    if f"@{handle}" in body.lower():
        return True, "uses their handle"
    first_name = (mention.name or "").split()[0] if (mention.name or "").split() else ""
    if len(first_name) >= 2 and re.search(rf"(?<!\w){re.escape(first_name)}(?!\w)", body, re.I):
        return True, "uses their name"
    words = SECOND_PERSON.get(language or "", "").split()
    if language in UNSPACED:
        if any(word in body for word in words):
            return True, "speaks to them"
    elif words:
        tokens = re.findall(r"[\w']+", body)
        lowered = {t.lower() for t in tokens} | {t.lower().split("'")[0] + "'" for t in tokens if "'" in t}
        if any(word in tokens if word in CASE_SENSITIVE else word.lower() in lowered for word in words):
            return True, "speaks to them"
    if not words or language in PRO_DROP:
        return None, "cannot tell in this language without a second-person word"
    return False, "never speaks to the author (no 'you', no name)"


def hype(draft: str) -> list[str]:
    """Hashtags and marketing phrases in ``draft``."""
    found = [f"hashtag {tag}" for tag in HASHTAG.findall(draft)]
    lowered = draft.lower().replace("’", "'")
    found += [f"marketing phrase {phrase!r}" for phrase in MARKETING_PHRASES if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", lowered)]
    return found


# ---- running it -------------------------------------------------------------------


@dataclass
class JudgeScore:
    overall: int
    criteria: dict[str, int]
    summary: str


@dataclass
class DraftResult:
    id: str
    platform: str
    author: str
    text: str
    expected_language: str | None
    question: bool
    expect_reply: bool
    should_reply: bool | None = None  # None: no draft could be made
    category: str | None = None
    draft: str | None = None
    error: str | None = None
    draft_language: str | None = None
    length: int | None = None
    limit: int | None = None
    checks: dict[str, bool | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    judge: JudgeScore | None = None
    judge_error: str | None = None

    @property
    def triage_agrees(self) -> bool | None:
        return None if self.should_reply is None else self.should_reply == self.expect_reply


@dataclass
class Report:
    model: str
    judge_model: str | None
    results: list[DraftResult]

    def totals(self) -> dict:
        drafted = [r for r in self.results if r.draft]
        totals = {
            "mentions": len(self.results),
            "drafted": len(drafted),
            "skipped_by_triage": sum(r.should_reply is False for r in self.results),
            "no_draft": sum(r.should_reply is None or (r.should_reply and not r.draft) for r in self.results),
            "triage_agrees": _tally([r.triage_agrees for r in self.results]),
            "checks": {name: _tally([r.checks.get(name) for r in drafted]) for name in CHECKS},
        }
        all_pass = [all(v is not False for v in r.checks.values()) for r in drafted]
        totals["drafts_passing_every_check"] = _tally(all_pass)
        if self.judge_model:
            scores = [r.judge.overall for r in self.results if r.judge]
            totals["judge"] = {
                "model": self.judge_model,
                "scored": len(scores),
                "errors": sum(r.judge_error is not None for r in self.results),
                "mean_overall": round(sum(scores) / len(scores), 2) if scores else None,
            }
        return totals

    def as_json(self) -> dict:
        return {"model": self.model, "judge_model": self.judge_model, "totals": self.totals(),
                "results": [{**asdict(r), "triage_agrees": r.triage_agrees} for r in self.results]}


def _tally(verdicts: list[bool | None]) -> dict:
    applicable = [v for v in verdicts if v is not None]
    passed = sum(applicable)
    return {"passed": passed, "applicable": len(applicable), "rate": round(passed / len(applicable), 3) if applicable else None}


def run_eval(settings: Settings, sample: EvalFile, *, judge: bool = False, judge_model: str | None = None) -> Report:
    """Draft every mention (several at once), check each draft, and score it with the judge if asked."""
    brand = sample.brand or settings.brand_name
    settings = replace(settings, brand_name=brand)
    if sample.allowed_domains is not None:
        settings = replace(settings, brand_allowed_domains=tuple(d.lower().removeprefix("www.") for d in sample.allowed_domains))
    drafter = Drafter(settings)
    prompts = load_prompts(settings)
    rubric = load_rubric(settings) if judge else None
    judge_model = (judge_model or settings.openai_model) if judge else None
    with ThreadPoolExecutor(max_workers=settings.openai_concurrency, thread_name_prefix="eval") as pool:
        results = list(pool.map(lambda m: _draft_and_check(drafter, prompts, settings, m), sample.mentions))
        if rubric:
            list(pool.map(lambda r: _judge(drafter, rubric, judge_model, r), [r for r in results if r.draft]))
    return Report(model=settings.openai_model, judge_model=judge_model, results=results)


def _draft_and_check(drafter: Drafter, prompts, settings: Settings, mention: SampleMention) -> DraftResult:
    rules = format_for(mention.platform)
    expected = mention.lang or detect_language(mention.text)
    result = DraftResult(id=mention.id, platform=mention.platform, author=mention.author, text=mention.text,
                         expected_language=expected, question=is_question(mention), expect_reply=mention.expect_reply,
                         limit=rules.limit)
    conversation = Conversation(
        platform=mention.platform, author_handle=mention.author, author_name=mention.name,
        reason=mention.reason, text=mention.text, parent_text=mention.parent,
    )
    reply_rules = policy.reply_rules(rules, conversation, settings.brand_allowed_domains)
    outcome = make_draft(drafter, prompts, conversation, reply_rules)
    if outcome.triage is None:
        result.error = outcome.error
        return result
    triage = outcome.triage
    result.should_reply, result.category = triage.should_reply, triage.category
    if not triage.should_reply:
        return result
    if not triage.reply.strip():
        result.error = "the model wanted to reply but wrote nothing"
        return result
    draft = rules.compose(triage.reply.strip(), mention.author)
    result.draft = draft
    _check(result, draft, mention, rules, reply_rules)
    return result


def _check(result: DraftResult, draft: str, mention: SampleMention, rules: PlatformFormat, reply_rules: policy.ReplyRules) -> None:
    result.length = rules.length(draft)
    result.checks["within_limit"] = result.length <= rules.limit
    if not result.checks["within_limit"]:
        result.problems.append(f"{result.length}/{rules.limit} characters")
    problems = policy.check(draft, reply_rules)
    result.checks["policy"] = not problems
    result.problems += [p for p in problems if not p.startswith("Too long")]
    result.draft_language = detect_language(draft)
    verdict, why = addresses_author(draft, mention, result.draft_language or result.expected_language)
    result.checks["addresses_author"] = verdict
    if verdict is False:
        result.problems.append(why)
    result.checks["asks_back"] = asks_back(draft) if result.question else None
    if result.checks["asks_back"] is False:
        result.problems.append("the mention asks something; the draft asks nothing back")
    if result.expected_language and result.draft_language:
        result.checks["language"] = result.draft_language == result.expected_language
        if not result.checks["language"]:
            result.problems.append(f"written in {result.draft_language}, the mention is in {result.expected_language}")
    else:
        result.checks["language"] = None
    found = hype(draft)
    result.checks["no_hype"] = not found
    result.problems += found


# ---- the judge ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rubric:
    text: str
    criteria: tuple[str, ...]


def load_rubric(settings: Settings) -> Rubric:
    path = prompts_dir(settings) / "judge.md"
    if not path.is_file():
        raise EvalFileError(f"{path}: the judge's rubric is missing")
    text = path.read_text(encoding="utf-8").replace("{brand}", settings.brand_name or "the brand")
    criteria = tuple(dict.fromkeys(m.strip() for m in re.findall(r"^## +(.+)$", text, re.M)))
    if not criteria:
        raise EvalFileError(f"{path}: the rubric names no criteria (one '## Name' heading per criterion)")
    return Rubric(text=text, criteria=criteria)


JUDGE_REASON_CHARS = 150  # one short sentence; five of them and the summary fit well within OPENAI_MAX_TOKENS


def judge_schema(rubric: Rubric) -> dict:
    """Exactly one entry per criterion and short reasons: with structured output the server
    cannot generate past these bounds, so a looping judge ends instead of filling max_tokens."""
    score = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    reason = {"type": "string", "maxLength": JUDGE_REASON_CHARS}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["criteria", "overall", "summary"],
        "properties": {
            "criteria": {
                "type": "array",
                "minItems": len(rubric.criteria),
                "maxItems": len(rubric.criteria),
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "score", "reason"],
                    "properties": {"name": {"type": "string", "enum": list(rubric.criteria)}, "score": score,
                                   "reason": reason},
                },
            },
            "overall": score,
            "summary": {**reason, "description": "one sentence"},
        },
    }


class _Criterion(BaseModel):
    name: str
    score: int = Field(ge=1, le=5)
    reason: str = ""


class _Verdict(BaseModel):
    criteria: list[_Criterion]
    overall: int = Field(ge=1, le=5)
    summary: str = Field(default="", max_length=2000)


def parse_verdict(answer: dict, rubric: Rubric) -> JudgeScore:
    """Validate the judge's answer: every criterion of the rubric scored once, 1–5."""
    verdict = _Verdict.model_validate(answer)
    scores = {c.name: c.score for c in verdict.criteria}
    names = [c.name for c in verdict.criteria]
    missing = [c for c in rubric.criteria if c not in scores]
    unknown = [n for n in scores if n not in rubric.criteria]
    if missing or unknown or len(names) != len(scores):
        raise ValueError(f"criteria do not match the rubric (missing: {missing or 'none'}, unknown: {unknown or 'none'})")
    return JudgeScore(overall=verdict.overall, criteria={c: scores[c] for c in rubric.criteria}, summary=verdict.summary)


def _data(value) -> str:
    """JSON in which no text can close the tag around it."""
    return json.dumps(value, ensure_ascii=False, indent=1).replace("</", "<\\/")


def _judge(drafter: Drafter, rubric: Rubric, model: str, result: DraftResult) -> None:
    rules = format_for(result.platform)
    case = {"platform": rules.label, "limit": rules.limit, "mention": {"author": result.author, "text": result.text}}
    messages = [
        {"role": "system", "content": rubric.text.strip() + "\n\nAnswer only with the JSON object the schema asks for: "
         "every criterion above scored once, from 1 to 5, and an overall score."},
        {"role": "user", "content": (
            f"<untrusted_mention>\n{_data(case)}\n</untrusted_mention>\n<draft_reply>\n{_data(result.draft)}\n</draft_reply>"
        )},
    ]
    try:
        answer = drafter.complete_json(messages, name="judge", schema=judge_schema(rubric), model=model)
        result.judge = parse_verdict(answer, rubric)
    except DraftUnavailable as error:
        result.judge_error = str(error)
    except (ValidationError, ValueError) as error:
        result.judge_error = f"the judge's answer did not fit the rubric: {str(error).splitlines()[0][:200]}"


# ---- output ---------------------------------------------------------------------------

MARK = {True: "✓", False: "✗", None: "·"}


def format_table(report: Report) -> str:
    """A readable report: one row per mention, the totals, then each draft with what failed."""
    judged = report.judge_model is not None
    header = ["#", "id", "platform", "reply?"] + [CHECK_LABELS[c] for c in CHECKS] + (["judge"] if judged else [])
    rows = []
    for n, r in enumerate(report.results, 1):
        if r.should_reply is None:
            reply = "error"
        elif not r.should_reply:
            reply = "skip" + ("" if r.triage_agrees else "!")
        else:
            reply = "yes" + ("" if r.triage_agrees else "!")
        marks = [MARK[r.checks.get(c)] if r.draft else "" for c in CHECKS]
        if r.draft and r.expected_language:
            marks[CHECKS.index("language")] += f" {r.draft_language or '?'}"
        score = f"{r.judge.overall}/5" if r.judge else ("err" if r.judge_error else "")
        rows.append([str(n), r.id, r.platform, reply] + marks + ([score] if judged else []))
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = [f"Drafts by {report.model}" + (f", judged by {report.judge_model}" if judged else "") + ":", ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header] + rows]
    lines += ["", "✓ pass  ✗ fail  · not applicable;  reply?: skip = the model chose not to answer, ! = not what the file expects", ""]
    lines += format_totals(report)
    details = [_details(n, r) for n, r in enumerate(report.results, 1)]
    lines += ["", "Drafts:"] + [line for block in details for line in block]
    return "\n".join(lines)


def format_totals(report: Report) -> list[str]:
    totals = report.totals()
    lines = [f"Totals: {totals['drafted']} drafted, {totals['skipped_by_triage']} skipped by triage, "
             f"{totals['no_draft']} without a draft, of {totals['mentions']} mentions"]
    labels = {"within_limit": "within the platform limit", "policy": "passes the output policy",
              "addresses_author": "addresses the author", "asks_back": "asks back (question mentions)",
              "language": "answers in the mention's language", "no_hype": "no hashtags or marketing phrases"}
    for name in CHECKS:
        lines.append(f"  {labels[name]:<36} {_fraction(totals['checks'][name])}")
    lines.append(f"  {'every check passed':<36} {_fraction(totals['drafts_passing_every_check'])}")
    lines.append(f"  {'reply / skip as the file expects':<36} {_fraction(totals['triage_agrees'])}")
    if "judge" in totals:
        judge = totals["judge"]
        mean = f"{judge['mean_overall']:.2f}/5" if judge["mean_overall"] is not None else "n/a"
        lines.append(f"  {'judge: mean overall score':<36} {mean} over {judge['scored']} drafts"
                     + (f" ({judge['errors']} not scored)" if judge["errors"] else ""))
    return lines


def _fraction(tally: dict) -> str:
    if not tally["applicable"]:
        return "n/a"
    return f"{tally['passed']}/{tally['applicable']} ({tally['rate']:.0%})"


def _details(n: int, r: DraftResult) -> list[str]:
    head = f"{n:>3}. {r.id} ({r.platform}, @{r.author})"
    if r.error:
        return [f"{head}: no draft: {r.error}"]
    if not r.should_reply:
        return [f"{head}: skipped by triage ({r.category})"]
    lines = [f"{head}: {r.draft}"]
    lines += [f"       ✗ {problem}" for problem in r.problems]
    if r.judge:
        criteria = ", ".join(f"{name} {score}" for name, score in r.judge.criteria.items())
        lines.append(f"       judge {r.judge.overall}/5 ({criteria}): {r.judge.summary}")
    elif r.judge_error:
        lines.append(f"       judge: {r.judge_error}")
    return lines
