"""`conversant eval --conversations`: replay real customer-care conversations and compare each
draft with what the brand's agent actually wrote.

The conversations (``data/customer-care-test.json``, see ``data/NOTICE.md``) happened on X.
For every customer turn the brand answered, the drafter gets what production would have:
that turn as the mention (a later turn is a ``reply`` whose parent is the turn before it)
and the turns before it as the thread so far (``bot.context.DraftContext``: each customer
turn with what the brand replied to it). There is no database, so no approved examples
and no earlier conversations of the same customer.

The sample is fixed: the conversations are shuffled with ``--seed`` (default ``SEED``),
filtered by ``--brands``, and the first ``--limit`` taken, so two runs with the same
options replay the same turns. Every check is *pass*, *fail* or *n/a*:

``schema_valid``
    the model's answer was triage JSON that validates (*n/a* when it gave no answer at all:
    a timeout, a connection error);
``needs_reply``
    the model chose to reply (the brand did, so that is the expected answer);
``policy``
    the draft passes the output policy (``bot.policy.check``) with the brand's domains;
``within_limit``
    it fits X's 280 weighted characters;
``no_invented_link``
    every URL in it was in the conversation so far or is under the brand's domains;
``language``
    it is in the customer's language (py3langid, as for mention files; *n/a* when too short);
``asks_back``
    *n/a* unless the agent's real reply asked something; then the draft asks something too.

Besides the checks: lengths (X's weighted count, leading @handles dropped) of the draft and
the agent's reply, and the draft's similarity to the agent's reply: lexical always
(rapidfuzz's ``token_sort_ratio`` over words, 0-1), and the cosine of their embeddings when
``OPENAI_EMBEDDING_MODEL`` is set. With ``--judge``, a judge model reads the conversation and
both replies and says which one the customer would rather get (``prompts/preference.md``),
asked twice with the order swapped: the draft *wins* when both answers pick it, *loses* when
both pick the agent, and it is a *tie* when the two answers disagree.

On the turns whose agent reply links a help article: *top-1*, the draft links that article, and
with ``--grounding`` (drafts grounded in each brand's help articles) *recall at 5*, the article
is among the five found; ``--retrieval`` reports recall at 5 alone, without drafts. See
``bot/evaluation/knowledge.py``.
"""
from __future__ import annotations

import json
import math
import random
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError
from rapidfuzz import fuzz, utils

from bot import links, policy
from bot.config import Settings
from bot.context import DraftContext, Turn
from bot.draft import Prompts, load_prompts, make_draft, prompts_dir
from bot.evaluation import LINKS, EvalFileError, asks_back, detect_language
from bot.evaluation.knowledge import K, KnowledgeBases, brand_articles, help_links, linked, same_article
from bot.knowledge.grounding import Grounding, ground
from bot.llm import Drafter, DraftUnavailable
from bot.models import Conversation
from bot.platforms.formats import PlatformFormat, format_for

SEED = 11
PLATFORM = "x"  # the conversations happened on X (Twitter)
LEADING_HANDLES = re.compile(r"^(?:\s*@\w+)+\s*")
CHECKS = ("schema_valid", "needs_reply", "policy", "within_limit", "no_invented_link", "language", "asks_back")


def data_dir() -> Path:
    return Path(str(files("bot.evaluation") / "data"))


def default_conversations() -> Path:
    return data_dir() / "customer-care-test.json"


# ---- the conversations file -------------------------------------------------------------


class SampleTurn(BaseModel):
    role: Literal["customer", "agent"]
    text: str = Field(min_length=1)
    at: str = ""


class SampleConversation(BaseModel):
    company: str = Field(min_length=1)
    turns: list[SampleTurn] = Field(min_length=2)


@dataclass(frozen=True)
class Brand:
    name: str
    domains: tuple[str, ...]


def is_conversations_file(path: str | Path) -> bool:
    """A list of ``{"company", "turns"}`` objects (else it is a file of mentions)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_file says what is wrong with it
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "turns" in data[0]


def load_conversations(path: str | Path) -> list[tuple[int, SampleConversation]]:
    """Every conversation with its position in the file (its id in the report)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EvalFileError(f"{path}: cannot read it as JSON ({error})") from None
    if not isinstance(data, list) or not data:
        raise EvalFileError(f"{path}: expected a non-empty list of conversations")
    try:
        return [(n, SampleConversation.model_validate(item)) for n, item in enumerate(data)]
    except ValidationError as error:
        first = error.errors()[0]
        raise EvalFileError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def load_brands(path: Path | None = None) -> dict[str, Brand]:
    data = json.loads((path or data_dir() / "brands.json").read_text(encoding="utf-8"))
    return {account: Brand(item["name"], tuple(item["domains"])) for account, item in data.items()}


def select(conversations: list[tuple[int, SampleConversation]], *, seed: int = SEED,
           brands: list[str] | None = None, limit: int | None = None) -> list[tuple[int, SampleConversation]]:
    """The fixed sample: a seeded shuffle, then the brands asked for, then the first ``limit``."""
    chosen = list(conversations)
    random.Random(seed).shuffle(chosen)
    if brands:
        wanted = {b.lower() for b in brands}
        unknown = wanted - {c.company.lower() for _, c in conversations}
        if unknown:
            raise EvalFileError(f"no conversations for {', '.join(sorted(unknown))} "
                                f"(brands: {', '.join(sorted({c.company for _, c in conversations}))})")
        chosen = [(n, c) for n, c in chosen if c.company.lower() in wanted]
    return chosen[:limit] if limit else chosen


# ---- the cases: one per customer turn the brand answered ---------------------------------------


@dataclass(frozen=True)
class Case:
    id: str  # "<conversation>.<turn>"
    account: str
    customer: str
    turn: int
    conversation: Conversation
    context: DraftContext
    seen: str  # every text the drafter saw: a URL in it is not invented
    agent_reply: str


def cases_of(number: int, sample: SampleConversation) -> list[Case]:
    turns = sample.turns
    customer = _customer_handle(number, sample)
    cases = []
    for i, turn in enumerate(turns[:-1]):
        if turn.role != "customer" or turns[i + 1].role != "agent":
            continue
        answer = []
        for later in turns[i + 1:]:
            if later.role != "agent":
                break
            answer.append(later.text)
        parent = turns[i - 1].text if i else None
        conversation = Conversation(
            platform=PLATFORM, author_handle=customer, author_name=None, reason="reply" if i else "mention",
            text=turn.text, parent_text=parent,
        )
        context = DraftContext(thread=_thread(customer, turns[:i]), history=[])
        seen = "\n".join(t.text for t in turns[: i + 1])
        cases.append(Case(f"{number}.{i}", sample.company, customer, i, conversation, context, seen, " ".join(answer)))
    return cases


def _thread(customer: str, earlier: list[SampleTurn]) -> list[Turn]:
    """The earlier turns as production keeps them: each customer post with what we replied to it."""
    thread: list[Turn] = []
    for turn in earlier:
        if turn.role == "customer":
            thread.append(Turn(author=customer, said=turn.text, we_replied=None))
        elif thread:
            last = thread[-1]
            replied = f"{last.we_replied} {turn.text}" if last.we_replied else turn.text
            thread[-1] = Turn(author=last.author, said=last.said, we_replied=replied)
    return thread


def _customer_handle(number: int, sample: SampleConversation) -> str:
    """The handle the agents wrote to (the data replaced real handles), else a stand-in."""
    for turn in sample.turns:
        match = re.match(r"@(customer\w+)", turn.text) if turn.role == "agent" else None
        if match:
            return match.group(1)
    return f"customer{number}x0"


# ---- running it ------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    id: str
    account: str
    brand: str
    turn: int
    customer_text: str
    agent_reply: str
    outcome: Literal["drafted", "skipped", "empty", "invalid", "no_answer"] = "no_answer"
    error: str | None = None
    seconds: float = 0.0
    category: str | None = None
    draft: str | None = None
    expected_language: str | None = None
    draft_language: str | None = None
    draft_length: int | None = None
    agent_length: int = 0
    agent_asks: bool = False
    invented_links: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checks: dict[str, bool | None] = field(default_factory=dict)
    lexical_similarity: float | None = None
    embedding_similarity: float | None = None
    preference: Literal["draft", "tie", "agent"] | None = None
    preference_reasons: list[str] = field(default_factory=list)
    judge_error: str | None = None
    agent_articles: list[str] = field(default_factory=list)  # the help articles the agent's reply linked
    retrieved: list[str] = field(default_factory=list)  # with --grounding: the articles found for the turn
    top_1: bool | None = None  # the draft links the agent's article
    recall_at_5: bool | None = None  # the agent's article is among those found


@dataclass
class ReplayReport:
    model: str
    judge_model: str | None
    embedding_model: str | None
    sample: dict
    results: list[ReplayResult]

    def summary(self, results: list[ReplayResult] | None = None) -> dict:
        return summarise(self.results if results is None else results)

    def by_brand(self) -> dict[str, dict]:
        accounts = sorted({r.account for r in self.results}, key=str.lower)
        return {a: summarise([r for r in self.results if r.account == a]) for a in accounts}

    def as_json(self) -> dict:
        return {"model": self.model, "judge_model": self.judge_model, "embedding_model": self.embedding_model,
                "sample": self.sample, "overall": self.summary(), "brands": self.by_brand(),
                "results": [asdict(r) for r in self.results]}


def run_replay(settings: Settings, conversations: list[tuple[int, SampleConversation]], *, judge: bool = False,
               judge_model: str | None = None, sample: dict | None = None, progress=None,
               checkpoint: Path | None = None, articles: dict | None = None) -> ReplayReport:
    """Draft every answered customer turn (several at once), check each draft, compare it with the agent's.

    With ``articles`` (``knowledge.brand_articles``), drafts are grounded in each brand's help articles.
    With ``checkpoint``, the report of the turns done so far is rewritten there after each one, so a
    long run on a slow model that is stopped part-way still leaves its figures."""
    brands = load_brands()
    cases = [case for number, conv in conversations for case in cases_of(number, conv)]
    # Brand by brand, in the order the sample first meets each: the prompts start with the brand's
    # name, so consecutive drafts for one brand let a local server reuse its prompt cache.
    first_seen = {account: n for n, account in reversed(list(enumerate(c.account for c in cases)))}
    cases.sort(key=lambda case: first_seen[case.account])
    drafter = Drafter(settings)
    judge_model = (judge_model or settings.openai_model) if judge else None
    preference = load_preference_prompt(settings) if judge else None
    progress = progress or Progress(len(cases))
    per_brand = {}  # prompts read once, before any draft: editing them mid-run changes nothing
    for account in {case.account for case in cases}:
        brand = brands.get(account) or Brand(account, ())
        brand_settings = replace(settings, brand_name=brand.name, brand_allowed_domains=brand.domains)
        per_brand[account] = (brand, brand_settings, load_prompts(brand_settings))

    bases = KnowledgeBases.build(articles, _embedder(settings, drafter)) if articles is not None else None

    def one(case: Case) -> ReplayResult:
        brand, brand_settings, prompts = per_brand[case.account]
        grounding = _ground(bases, drafter, brand_settings, case) if bases else None
        result = _replay(drafter, brand_settings, prompts, brand, case, grounding)
        if preference and result.draft:
            _prefer(drafter, preference.replace("{brand}", brand.name), judge_model, case, result)
        progress.done(result)
        if checkpoint:
            with saving:
                done.append(result)
                partial = ReplayReport(settings.openai_model, judge_model, None, {**(sample or {}), "completed": len(done)}, done)
                _write_json(checkpoint, partial.as_json())
        return result

    done: list[ReplayResult] = []
    saving = threading.Lock()

    try:
        with ThreadPoolExecutor(max_workers=settings.openai_concurrency, thread_name_prefix="replay") as pool:
            results = list(pool.map(one, cases))
    finally:
        if bases:
            bases.close()
    if settings.openai_embedding_model:
        _embedding_similarities(drafter, results)
    return ReplayReport(model=settings.openai_model, judge_model=judge_model,
                        embedding_model=settings.openai_embedding_model, sample=sample or {}, results=results)


def run_retrieval(settings: Settings, conversations: list[tuple[int, SampleConversation]], articles: dict) -> dict:
    """Recall at 5 alone, per brand and overall: the articles found for each answered turn, no drafts,
    so no chat model (embeddings only when ``OPENAI_EMBEDDING_MODEL`` is set)."""
    brands = load_brands()
    embedder = Drafter(settings) if settings.openai_embedding_model else None
    bases = KnowledgeBases.build(articles, embedder)
    hits: dict[str, list[bool | None]] = {}
    try:
        for number, conversation in conversations:
            brand = brands.get(conversation.company) or Brand(conversation.company, ())
            brand_settings = replace(settings, brand_name=brand.name, brand_allowed_domains=brand.domains)
            for case in cases_of(number, conversation):
                expected = help_links(case.agent_reply, brand.domains)
                grounding = _ground(bases, embedder, brand_settings, case) if expected else None
                found = [m.url for m in grounding.found] if grounding else []
                hits.setdefault(case.account, []).append(same_article(found, expected) if expected else None)
    finally:
        bases.close()
    by_brand = {account: {"cases": len(v), "recall_at_5": _tally(v)} for account, v in sorted(hits.items(), key=lambda i: i[0].lower())}
    every = [hit for v in hits.values() for hit in v]
    return {"brands": by_brand, "overall": {"cases": len(every), "recall_at_5": _tally(every)}}


def format_retrieval(figures: dict, settings: Settings) -> str:
    how = f"embeddings by {settings.openai_embedding_model}" if settings.openai_embedding_model else "full-text ranking (SQLite FTS5)"
    rows = [(account, str(f["cases"]), str(f["recall_at_5"]["applicable"]), _fraction(f["recall_at_5"]))
            for account, f in list(figures["brands"].items()) + [("overall", figures["overall"])]]
    header = ("brand", "turns", "with an article", "recall@5")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    line = lambda row: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    return "\n".join([f"Retrieval of the help article the agent linked: {K} articles found per answered turn by {how}; no drafts.", "",
                      line(header), *[line(r) for r in rows[:-1]], "-" * len(line(header)), line(rows[-1]), "",
                      "recall@5: the agent's article is among the five found, on the turns whose agent reply links one."])


class Progress:
    """One line per case on stderr, so a long run shows where it is."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.count, self.started = total, 0, time.monotonic()
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def done(self, result: ReplayResult) -> None:
        with self._lock:
            self.count += 1
            elapsed = time.monotonic() - self.started
            what = result.outcome if not result.error else f"{result.outcome}: {result.error}"
            print(f"eval: [{self.count:>3}/{self.total}] {result.account} #{result.id} "
                  f"({result.seconds:.1f} s; {elapsed:.0f} s so far): {what}"
                  + (f": {_clip(result.draft)}" if result.draft else ""), file=self.stream, flush=True)


def _clip(text: str, size: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


def _embedder(settings: Settings, drafter: Drafter) -> Drafter | None:
    return drafter if settings.openai_embedding_model else None


def _ground(bases: KnowledgeBases, drafter: Drafter, settings: Settings, case: Case) -> Grounding | None:
    """The help articles found for the turn, as production finds them; None for a brand whose agents linked none."""
    database = bases.db(case.account)
    return ground(database, _embedder(settings, drafter), settings, case.conversation, case.context) if database else None


def _replay(drafter: Drafter, settings: Settings, prompts: Prompts, brand: Brand, case: Case,
            grounding: Grounding | None = None) -> ReplayResult:
    rules = format_for(PLATFORM)
    agent = strip_handles(case.agent_reply)
    result = ReplayResult(id=case.id, account=case.account, brand=brand.name, turn=case.turn,
                          customer_text=case.conversation.text, agent_reply=case.agent_reply,
                          expected_language=detect_language(case.conversation.text),
                          agent_length=rules.length(agent), agent_asks=asks_back(agent),
                          agent_articles=help_links(case.agent_reply, brand.domains))
    if grounding is not None:
        result.retrieved = [m.url for m in grounding.found]
        result.recall_at_5 = same_article(result.retrieved, result.agent_articles) if result.agent_articles else None
    started = time.monotonic()
    reply_rules = _reply_rules(case, rules, settings, grounding)
    outcome = make_draft(drafter, prompts, case.conversation, reply_rules, context=case.context, grounding=grounding)
    result.seconds = round(time.monotonic() - started, 2)
    triage = outcome.triage
    if triage is None:
        result.error = (outcome.error or "").removeprefix("No draft: ").rstrip(".")
        result.outcome = "invalid" if "not valid triage JSON" in result.error else "no_answer"
        result.checks["schema_valid"] = False if result.outcome == "invalid" else None
        return result
    result.checks.update(schema_valid=True, needs_reply=triage.should_reply)
    result.category = triage.category
    draft = triage.reply.strip() if triage.should_reply else ""
    result.top_1 = same_article(linked(draft), result.agent_articles) if result.agent_articles else None
    if not triage.should_reply:
        result.outcome = "skipped"
        return result
    draft = triage.reply.strip()
    if not draft:
        result.outcome = "empty"
        return result
    result.outcome, result.draft = "drafted", draft
    _check(result, draft, case, rules, reply_rules, settings)
    return result


def _reply_rules(case: Case, rules: PlatformFormat, settings: Settings, grounding: Grounding | None) -> policy.ReplyRules:
    """The rules a reply to the customer must meet, as production would check them."""
    reply_rules = policy.reply_rules(rules, case.conversation, settings.brand_allowed_domains)
    return policy.with_article_links(reply_rules, grounding.urls if grounding else None)


def _check(result: ReplayResult, draft: str, case: Case, rules: PlatformFormat, reply_rules: policy.ReplyRules,
           settings: Settings) -> None:
    result.problems = policy.check(draft, reply_rules)
    result.checks["policy"] = not result.problems
    result.draft_length = rules.length(strip_handles(draft))
    result.checks["within_limit"] = rules.length(draft) <= rules.limit
    result.invented_links = invented_links(draft, case.seen, settings.brand_allowed_domains)
    result.checks["no_invented_link"] = not result.invented_links
    result.draft_language = detect_language(draft)
    if result.expected_language and result.draft_language:
        result.checks["language"] = result.draft_language == result.expected_language
    else:
        result.checks["language"] = None
    result.checks["asks_back"] = asks_back(draft) if result.agent_asks else None
    result.lexical_similarity = lexical_similarity(draft, case.agent_reply)


def strip_handles(text: str) -> str:
    """The reply without the @handles X puts in front of it."""
    return LEADING_HANDLES.sub("", text).strip()


def invented_links(draft: str, seen: str, domains: tuple[str, ...]) -> list[str]:
    """Links in ``draft`` (as X links them) that are neither in ``seen`` nor under ``domains``."""
    known = {_bare(link) for link in links.find(seen, PLATFORM)}
    allowed = {links.host_of(domain) for domain in domains}
    invented = []
    for link in links.find(draft, PLATFORM):
        if _bare(link) in known or (link.host and any(link.host == d or link.host.endswith("." + d) for d in allowed)):
            continue
        invented.append(link.written)
    return list(dict.fromkeys(invented))


def _bare(link: links.Link) -> str:
    return re.sub(r"^(?:https?://)?(?:www\.)?", "", (link.href or link.written).lower()).rstrip("/")


def _comparable(text: str) -> str:
    return LINKS.sub(" ", strip_handles(text))


def lexical_similarity(draft: str, agent: str) -> float:
    """0-1: rapidfuzz's token_sort_ratio (word order ignored, case and punctuation dropped), links left out."""
    return round(fuzz.token_sort_ratio(_comparable(draft), _comparable(agent), processor=utils.default_process) / 100, 3)


def _embedding_similarities(drafter: Drafter, results: list[ReplayResult]) -> None:
    drafted = [r for r in results if r.draft]
    for start in range(0, len(drafted), 16):
        batch = drafted[start:start + 16]
        texts = [t or "-" for r in batch for t in (_comparable(r.draft).strip(), _comparable(r.agent_reply).strip())]
        try:
            vectors = drafter.embed(texts)
        except DraftUnavailable as error:
            print(f"eval: no embedding similarity: {error}", file=sys.stderr)
            return
        for n, result in enumerate(batch):
            result.embedding_similarity = round(_cosine(vectors[2 * n], vectors[2 * n + 1]), 3)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


# ---- the pairwise judge -------------------------------------------------------------------------

PREFERENCE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reason", "better"],
    "properties": {
        "reason": {"type": "string", "maxLength": 300, "description": "one short sentence"},
        "better": {"type": "string", "enum": ["A", "B"]},
    },
}


class _Preference(BaseModel):
    reason: str = Field(default="", max_length=2000)
    better: Literal["A", "B"]


def load_preference_prompt(settings: Settings) -> str:
    path = prompts_dir(settings) / "preference.md"
    if not path.is_file():
        raise EvalFileError(f"{path}: the pairwise judge's prompt is missing")
    return path.read_text(encoding="utf-8")


def _prefer(drafter: Drafter, prompt: str, model: str, case: Case, result: ReplayResult) -> None:
    draft, agent = strip_handles(result.draft), strip_handles(case.agent_reply)
    picks = []
    for first, second, draft_is in ((draft, agent, "A"), (agent, draft, "B")):
        messages = preference_messages(prompt, case, first, second)
        try:
            answer = _Preference.model_validate(drafter.complete_json(messages, name="preference", schema=PREFERENCE_SCHEMA, model=model))
        except DraftUnavailable as error:
            result.judge_error = str(error)
            return
        except ValidationError as error:
            result.judge_error = f"the judge's answer did not fit: {str(error).splitlines()[0][:200]}"
            return
        picks.append("draft" if answer.better == draft_is else "agent")
        result.preference_reasons.append(answer.reason)
    result.preference = picks[0] if picks[0] == picks[1] else "tie"


def preference_messages(prompt: str, case: Case, reply_a: str, reply_b: str) -> list[dict]:
    history = [{"customer": t.said, **({"brand": t.we_replied} if t.we_replied else {})} for t in case.context.thread]
    conversation = {"earlier": history, "customer_now": case.conversation.text} if history else {"customer_now": case.conversation.text}
    user = (f"<untrusted_conversation>\n{_json(conversation)}\n</untrusted_conversation>\n"
            f"<reply_A>\n{_json(reply_a)}\n</reply_A>\n<reply_B>\n{_json(reply_b)}\n</reply_B>\n"
            "Which reply would the customer rather get?")
    return [{"role": "system", "content": prompt.strip()}, {"role": "user", "content": user}]


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1).replace("</", "<\\/")


# ---- the figures ---------------------------------------------------------------------------------


def summarise(results: list[ReplayResult]) -> dict:
    drafted = [r for r in results if r.draft]
    outcomes = {name: sum(r.outcome == name for r in results) for name in ("drafted", "skipped", "empty", "invalid", "no_answer")}
    summary = {
        "cases": len(results),
        "outcomes": outcomes,
        "checks": {name: _tally([r.checks.get(name) for r in results]) for name in CHECKS},
        "draft_asks_something": _tally([asks_back(r.draft) for r in drafted]),
        "length": {
            "draft_median": _median([r.draft_length for r in drafted]),
            "agent_median": _median([r.agent_length for r in drafted]),
            "draft_to_agent_median": _median([r.draft_length / r.agent_length for r in drafted if r.agent_length]),
            "longer_than_agent": _tally([r.draft_length > r.agent_length for r in drafted]),
        },
        "similarity": {
            "lexical_mean": _mean([r.lexical_similarity for r in drafted]),
            "embedding_mean": _mean([r.embedding_similarity for r in drafted]),
        },
        "seconds_median": _median([r.seconds for r in results if r.outcome != "no_answer"]),
        # on the turns whose agent reply links a help article (bot/evaluation/knowledge.py)
        "help_article": {"top_1": _tally([r.top_1 for r in results]), "recall_at_5": _tally([r.recall_at_5 for r in results])},
    }
    judged = [r.preference for r in drafted if r.preference]
    if any(r.preference or r.judge_error for r in drafted):
        summary["preference"] = {
            "judged": len(judged),
            "errors": sum(r.judge_error is not None for r in drafted),
            **{name: sum(p == name for p in judged) for name in ("draft", "tie", "agent")},
            "draft_win_or_tie_rate": round(sum(p != "agent" for p in judged) / len(judged), 3) if judged else None,
        }
    return summary


def _tally(verdicts: list[bool | None]) -> dict:
    applicable = [v for v in verdicts if v is not None]
    passed = sum(applicable)
    return {"passed": passed, "applicable": len(applicable), "rate": round(passed / len(applicable), 3) if applicable else None}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 3) if values else None


COLUMNS = (
    ("valid", lambda s: _rate(s["checks"]["schema_valid"])),
    ("reply", lambda s: _rate(s["checks"]["needs_reply"])),
    ("policy", lambda s: _rate(s["checks"]["policy"])),
    ("no-link", lambda s: _rate(s["checks"]["no_invented_link"])),
    ("lang", lambda s: _rate(s["checks"]["language"])),
    ("asks", lambda s: _rate(s["checks"]["asks_back"])),
    ("limit", lambda s: _rate(s["checks"]["within_limit"])),
    ("len d/a", lambda s: _number(s["length"]["draft_median"], s["length"]["agent_median"])),
    ("sim", lambda s: _similarity(s["similarity"])),
    ("top-1", lambda s: _rate(s["help_article"]["top_1"])),
    ("R@5", lambda s: _rate(s["help_article"]["recall_at_5"])),
    ("pref w/t/l", lambda s: "{draft}/{tie}/{agent}".format(**s["preference"]) if "preference" in s else ""),
)


def _rate(tally: dict) -> str:
    return "" if not tally["applicable"] else f"{tally['rate']:.0%}"


def _number(a, b) -> str:
    return "" if a is None else f"{a:.0f}/{b:.0f}"


def _similarity(s: dict) -> str:
    parts = [f"{s['lexical_mean']:.2f}" if s["lexical_mean"] is not None else ""]
    if s["embedding_mean"] is not None:
        parts.append(f"{s['embedding_mean']:.2f}")
    return "/".join(parts)


def format_replay_table(report: ReplayReport) -> str:
    """Per brand and overall, one row each, then the overall figures in words."""
    header = ["brand", "cases", "drafted"] + [name for name, _ in COLUMNS]
    rows = []
    for account, s in list(report.by_brand().items()) + [("overall", report.summary())]:
        rows.append([account, str(s["cases"]), str(s["outcomes"]["drafted"])] + [cell(s) for _, cell in COLUMNS])
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    line = lambda row: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    out = [f"Replayed {report.summary()['cases']} answered customer turns; drafts by {report.model}"
           + (f", judged by {report.judge_model}" if report.judge_model else "")
           + (f", embeddings by {report.embedding_model}" if report.embedding_model else "") + ":", ""]
    out += [line(header)] + [line(r) for r in rows[:-1]] + ["-" * len(line(header)), line(rows[-1]), ""]
    out += ["valid: schema-valid answers; reply: chose to reply (the agent did); policy: passes the output policy;",
            "no-link: no invented link; lang: the customer's language; asks: asks back where the agent did;",
            "limit: within X's 280; len d/a: median length, draft/agent; sim: similarity to the agent's reply",
            "(lexical[/embeddings], 0-1); top-1: links the help article the agent linked; R@5: that article is among the",
            "five found (--grounding); pref w/t/l: the customer would rather get the draft / can't tell / the agent's.",
            ""]
    out += _overall_lines(report.summary())
    return "\n".join(out)


def _overall_lines(s: dict) -> list[str]:
    o = s["outcomes"]
    lines = [f"Overall: {o['drafted']} drafted, {o['skipped']} not answered by choice, {o['empty']} empty, "
             f"{o['invalid']} invalid, {o['no_answer']} without an answer, of {s['cases']}"]
    labels = {"schema_valid": "schema-valid answers", "needs_reply": "chose to reply, as the agent did",
              "policy": "passes the output policy", "within_limit": "within X's limit",
              "no_invented_link": "invents no link", "language": "in the customer's language",
              "asks_back": "asks back where the agent did"}
    for name in CHECKS:
        lines.append(f"  {labels[name]:<34} {_fraction(s['checks'][name])}")
    lines.append(f"  {'drafts that ask something':<34} {_fraction(s['draft_asks_something'])}")
    length = s["length"]
    if length["draft_median"] is not None:
        lines.append(f"  {'median length, draft / agent':<34} {length['draft_median']:.0f} / {length['agent_median']:.0f} "
                     f"characters; drafts longer than the agent's: {_fraction(length['longer_than_agent'])}")
        sim = s["similarity"]
        lines.append(f"  {'similarity to the agent, lexical':<34} {sim['lexical_mean']:.2f}"
                     + (f"; embeddings {sim['embedding_mean']:.2f}" if sim["embedding_mean"] is not None else ""))
    article = s["help_article"]
    for key, label in (("top_1", "links the agent's help article"), ("recall_at_5", "agent's article among the 5 found")):
        if key == "top_1" or article[key]["applicable"]:
            lines.append(f"  {label:<34} {_fraction(article[key])}")
    if "preference" in s:
        p = s["preference"]
        lines.append(f"  {'customer would rather get':<34} the draft {p['draft']}, can't tell {p['tie']}, the agent's {p['agent']} "
                     f"(of {p['judged']}" + (f"; {p['errors']} not judged" if p["errors"] else "") + ")")
    if s["seconds_median"] is not None:
        lines.append(f"  {'median seconds per draft':<34} {s['seconds_median']:.1f}")
    return lines


def _fraction(tally: dict) -> str:
    return "n/a" if not tally["applicable"] else f"{tally['passed']}/{tally['applicable']} ({tally['rate']:.0%})"


# ---- the command ----------------------------------------------------------------------------------


def run_command(settings: Settings, args) -> int:
    """``conversant eval [CONVERSATIONS] [--limit N] [--brands A,B] [--seed N] [--judge] [--json] [--output FILE]``."""
    path = Path(args.file) if args.file else default_conversations()
    seed = SEED if args.seed is None else args.seed
    brands = [b.strip() for b in (args.brands or "").split(",") if b.strip()]
    if args.limit is not None and args.limit < 1:
        print("conversant eval: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        everything = load_conversations(path)
        chosen = select(everything, seed=seed, brands=brands, limit=args.limit)
        # Each brand's knowledge base holds every help link its agents posted in the whole file.
        sampled = {conversation.company for _, conversation in chosen}
        articles = ({account: found for account, found in brand_articles(everything, load_brands()).items() if account in sampled}
                    if args.grounding or args.retrieval else None)
        if args.retrieval:
            print(format_retrieval(run_retrieval(settings, chosen, articles), settings))
            return 0
        sample = {"file": path.name, "seed": seed, "brands": brands or "all", "limit": args.limit,
                  "conversations": len(chosen), **({"grounding": True} if args.grounding else {})}
        report = run_replay(settings, chosen, judge=args.judge, judge_model=args.judge_model, sample=sample,
                            checkpoint=Path(args.output) if args.output else None, articles=articles)
    except EvalFileError as error:
        print(f"conversant eval: {error}", file=sys.stderr)
        return 2
    data = report.as_json()
    if args.output:
        _write_json(Path(args.output), data)
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else format_replay_table(report))
    if report.results and all(r.outcome == "no_answer" for r in report.results):
        print(f"conversant eval: the model gave no usable answer ({report.results[0].error})", file=sys.stderr)
        return 1
    return 0


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` whole, so a reader never sees half a report."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


# ---- before and after ------------------------------------------------------------------------------


def load_report(path: str | Path) -> ReplayReport:
    """A report written by ``--output`` (whole, or part-way through a run)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return ReplayReport(data["model"], data["judge_model"], data["embedding_model"], data["sample"],
                        [ReplayResult(**r) for r in data["results"]])


def compare(before: ReplayReport, after: ReplayReport) -> str:
    """The overall figures of two runs side by side, over the turns both replayed (a run stopped
    part-way covers fewer)."""
    common = {r.id for r in before.results} & {r.id for r in after.results}
    pick = lambda report: summarise(sorted((r for r in report.results if r.id in common), key=lambda r: r.id))
    b, a = pick(before), pick(after)
    rows = [("answered customer turns, both runs", str(b["cases"]), str(a["cases"]))]
    rows += [(label, _fraction(b["checks"][name]), _fraction(a["checks"][name])) for name, label in (
        ("schema_valid", "schema-valid answers"), ("needs_reply", "chose to reply, as the agent did"),
        ("policy", "passes the output policy"), ("within_limit", "within X's limit"),
        ("no_invented_link", "invents no link"), ("language", "in the customer's language"),
        ("asks_back", "asks back where the agent did"))]
    rows.append(("drafts that ask something", _fraction(b["draft_asks_something"]), _fraction(a["draft_asks_something"])))
    for key, label in (("draft_median", "median draft length"), ("agent_median", "median agent length"),
                       ("draft_to_agent_median", "median draft/agent length")):
        rows.append((label, str(b["length"][key]), str(a["length"][key])))
    rows.append(("drafts longer than the agent's", _fraction(b["length"]["longer_than_agent"]),
                 _fraction(a["length"]["longer_than_agent"])))
    for key, label in (("lexical_mean", "similarity to the agent, lexical"), ("embedding_mean", "similarity, embeddings")):
        rows.append((label, str(b["similarity"][key]), str(a["similarity"][key])))
    if "preference" in b or "preference" in a:
        fmt = lambda s: "{draft}/{tie}/{agent}".format(**s["preference"]) if "preference" in s else "n/a"
        rows.append(("customer prefers draft/tie/agent", fmt(b), fmt(a)))
    for key, label in (("top_1", "links the agent's help article"), ("recall_at_5", "agent's article among the 5 found")):
        rows.append((label, _fraction(b["help_article"][key]), _fraction(a["help_article"][key])))
    rows.append(("median seconds per draft", str(b["seconds_median"]), str(a["seconds_median"])))
    widths = [max(len(row[i]) for row in rows + [("", "before", "after")]) for i in range(3)]
    lines = [f"| {'':<{widths[0]}} | {'before':<{widths[1]}} | {'after':<{widths[2]}} |",
             f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|{'-' * (widths[2] + 2)}|"]
    lines += [f"| {x:<{widths[0]}} | {y:<{widths[1]}} | {z:<{widths[2]}} |" for x, y, z in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bot.evaluation.replay BEFORE.json AFTER.json
    print(compare(load_report(sys.argv[1]), load_report(sys.argv[2])))
