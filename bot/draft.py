"""Turn a stored mention into a triaged draft: prompts from ``prompts/``, the model, the policy."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

from bot import policy
from bot.config import ConfigError, Settings
from bot.context import DraftContext
from bot.examples import ApprovedExample, prompt_section
from bot.knowledge.grounding import NO_MATCH, Grounding
from bot.knowledge.grounding import RULES as KNOWLEDGE_RULES
from bot.llm import Drafter, DraftUnavailable, Triage
from bot.metrics import MODEL_LATENCY
from bot.models import Conversation

log = logging.getLogger(__name__)

PROMPT_FILES = ("system.md", "voice.md", "examples.md")


@dataclass(frozen=True)
class Prompts:
    system: str
    voice: str
    examples: str
    brand: str = "the brand"


def prompts_dir(settings: Settings) -> Path:
    """``PROMPTS_DIR``, else ``./prompts`` when present, else the copy shipped with the package."""
    if settings.prompts_dir:
        return settings.prompts_dir
    local = Path("prompts")
    if (local / "system.md").is_file():
        return local
    return Path(str(files("bot.prompts")))


def with_voice(prompts: Prompts, path) -> Prompts:
    """The prompts with an account's own voice file (accounts file ``voice``) in place of voice.md."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if not text.strip():
        raise ConfigError(f"voice file {path} is missing or empty; write the account's voice there, or remove its voice key")
    return replace(prompts, voice=text.replace("{brand}", prompts.brand))


def load_prompts(settings: Settings) -> Prompts:
    """The three prompt files; a missing or empty one stops the command (``ConfigError``): drafting
    with an empty system prompt would go unnoticed until the replies sound wrong."""
    folder = prompts_dir(settings)
    where = f"PROMPTS_DIR={folder}" if settings.prompts_dir else str(folder.resolve())
    if not folder.is_dir():
        raise ConfigError(f"{where} is not a folder: point PROMPTS_DIR at a folder with {', '.join(PROMPT_FILES)}, or unset it")
    texts = {}
    for name in PROMPT_FILES:
        path = folder / name
        texts[name] = path.read_text(encoding="utf-8") if path.is_file() else ""
    missing = [name for name in PROMPT_FILES if not texts[name].strip()]
    if missing:
        raise ConfigError(f"{where}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing or empty; "
                          f"copy {'it' if len(missing) == 1 else 'them'} from the prompts/ folder of Conversant and adapt")
    brand = settings.brand_name or "the brand"
    return Prompts(
        system=texts["system.md"].replace("{brand}", brand),
        voice=texts["voice.md"].replace("{brand}", brand),
        examples=texts["examples.md"].replace("{brand}", brand),
        brand=brand,
    )


def build_messages(prompts: Prompts, conversation: Conversation, rules: policy.ReplyRules, *,
                   examples: Sequence[ApprovedExample] = (), context: DraftContext | None = None,
                   grounding: Grounding | None = None) -> list[dict]:
    """Stable instructions first (providers cache the prefix), then what varies per mention
    (approved replies to similar mentions), the untrusted mention last, with the help articles
    found for it (``grounding``; None when there is no knowledge base)."""
    knowledge_rules = KNOWLEDGE_RULES.format(brand=prompts.brand) if grounding is not None else ""
    system = "\n\n".join(part.strip() for part in (prompts.system, prompts.voice, prompts.examples, knowledge_rules, prompt_section(list(examples))) if part.strip())
    mention = {
        "platform": rules.platform_label,
        "author": {"handle": conversation.author_handle, "name": conversation.author_name},
        "kind": conversation.reason,
        "text": conversation.text,
    }
    if conversation.parent_text:
        mention["in_reply_to"] = conversation.parent_text
    if context:
        mention.update(context.as_prompt_data())  # other people's words too: inside the untrusted block
    if grounding is not None and grounding.offered:
        mention["help_articles"] = grounding.prompt_articles()  # imported text: data, inside the block too
    no_match = f"{NO_MATCH}\n" if grounding is not None and not grounding.offered else ""
    user = (
        f"Draft a reply on {rules.platform_label}; it must be at most {rules.limit} characters.\n{no_match}"
        f"<untrusted_mention>\n{_json_block(mention)}\n</untrusted_mention>"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _json_block(data: dict) -> str:
    """JSON that no text inside can close the delimiting tag of (``</`` is escaped, still valid JSON)."""
    return json.dumps(data, ensure_ascii=False, indent=1).replace("</", "<\\/")


def reply_cap(limit: int) -> int:
    """The longest reply the schema lets the model write: twice the platform's limit, so a reply
    the cap cut short is still over the limit, flagged by the policy and never approved as it stands."""
    return min(2 * limit, 10_000)


@dataclass(frozen=True)
class DraftOutcome:
    triage: Triage | None
    error: str | None


SHORTEN = ("Your reply is {length} characters, over the {limit} that {platform} allows. Write it again in at most "
           "{target} characters, keeping what matters most to them. Answer with the same JSON.")


def make_draft(drafter: Drafter | None, prompts: Prompts, conversation: Conversation, rules: policy.ReplyRules, *,
               examples: Sequence[ApprovedExample] = (), context: DraftContext | None = None,
               grounding: Grounding | None = None) -> DraftOutcome:
    """Triage and draft; a reply over the platform's limit (counted as the platform counts) is
    asked for once more, shorter: small models often miss a limit they were given. (Asking again
    for the policy's other problems, @mentions and links, made no difference; EVAL.md.)"""
    if drafter is None:
        return DraftOutcome(None, "No model is configured (set OPENAI_API_KEY or OPENAI_BASE_URL).")
    messages = build_messages(prompts, conversation, rules, examples=examples, context=context, grounding=grounding)
    try:
        with MODEL_LATENCY.time():
            triage = drafter.triage(messages, reply_max_chars=reply_cap(rules.limit))
    except DraftUnavailable as error:
        log.warning("conversation %s: no draft: %s", conversation.id, error)
        return DraftOutcome(None, f"No draft: {error}.")
    if triage.should_reply and rules.length(triage.reply.strip()) > rules.limit:
        triage = _shorter(drafter, messages, triage, rules) or triage
    return DraftOutcome(triage, None)


def _shorter(drafter: Drafter, messages: list[dict], triage: Triage, rules: policy.ReplyRules) -> Triage | None:
    """The same answer with a shorter reply, or None when the model cannot give one (the long
    draft then stays, and the policy flags it on the card)."""
    over, limit = rules.length(triage.reply.strip()), rules.limit
    # the draft and the request are ours, so trusted: a system message after the untrusted mention
    retry = [*messages, {"role": "system", "content": f"Your draft was:\n{triage.reply.strip()}\n\n"
                         + SHORTEN.format(length=over, limit=limit, platform=rules.platform_label, target=int(limit * 0.85))}]
    try:
        with MODEL_LATENCY.time():
            shorter = drafter.triage(retry, reply_max_chars=reply_cap(limit))
    except DraftUnavailable as error:
        log.warning("draft over the limit (%d/%d) and no shorter one: %s", over, limit, error)
        return None
    if not shorter.should_reply or not shorter.reply.strip() or rules.length(shorter.reply.strip()) >= over:
        return None
    return triage.model_copy(update={"reply": shorter.reply})  # the first answer's triage, the shorter reply
