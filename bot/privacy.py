"""Whether a conversation should be answered privately. Pure functions.

A mention or a draft that holds personal data (an order number, an e-mail address, a phone
number, an account id), or a customer who asks for a private message, is better answered in a
direct message than in public. The model suggests it too (``Triage.private``); this detector is
the deterministic half, so a card never misses an e-mail address because the model did.
"""
from __future__ import annotations

import re

EMAIL = re.compile(r"(?<![\w.+@-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# International or national numbers with at least 8 digits, in the usual groupings; not dates or prices.
PHONE = re.compile(r"(?<![\w/.,:-])(?:\+|00)?\d[\d\s().-]{6,16}\d(?![\w/.,:-])")
ORDER = re.compile(r"\b(?:order|booking|invoice|ticket|case|reference|ref|tracking|confirmation)\s*"
                   r"(?:(?:no|nr|number|num|id)\.?\s*)?[#:]?\s*(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{3,}\b|#\s?\d{5,}\b", re.I)
ACCOUNT = re.compile(r"\b(?:account|acct|customer|member|user|client|subscriber)\s*"
                     r"(?:(?:no|nr|number|num|id)\.?\s*)?[#:]?\s*(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{4,}\b", re.I)
ASKS = re.compile(r"\b(?:dm|pm)\s+(?:me|us)\b|\bslide into (?:my|your) dms\b|\b(?:send|message|write|contact) (?:me|us) "
                  r"(?:in |a )?(?:private(?:ly)?|dm|pm|direct(?:ly)?)\b|\bprivate(?:ly)? message\b|\bdirect message\b"
                  r"|\b(?:check|see|in|sent you a|send you a) (?:my|your|a|the)? ?dms?\b|\bprivately\b", re.I)

EMAIL_REASON = "has an e-mail address"
PHONE_REASON = "has a phone number"
ORDER_REASON = "has an order or case number"
ACCOUNT_REASON = "has an account id"
ASKED_REASON = "asks for a private message"
MODEL_REASON = "the model suggests it"


def reasons(*texts: str | None) -> list[str]:
    """Why these texts should be answered privately, in a fixed order; empty when nothing suggests it."""
    found: list[str] = []
    for text in texts:
        if not text:
            continue
        for reason, pattern in ((ASKED_REASON, ASKS), (EMAIL_REASON, EMAIL), (ORDER_REASON, ORDER), (ACCOUNT_REASON, ACCOUNT)):
            if reason not in found and pattern.search(text):
                found.append(reason)
        if PHONE_REASON not in found and any(_is_phone(m.group(0)) for m in PHONE.finditer(EMAIL.sub(" ", text))):
            found.append(PHONE_REASON)
    order = (ASKED_REASON, EMAIL_REASON, PHONE_REASON, ORDER_REASON, ACCOUNT_REASON)
    return sorted(found, key=order.index)


def suggestion(mention: str, draft: str | None, *, model_says: bool) -> list[str]:
    """The reasons shown on the card: the detector's over the mention and the draft, then the model's."""
    found = reasons(mention, draft)
    return found + [MODEL_REASON] if model_says and not found else found


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 8 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"(?:19|20)\d{2}[-./]\d{1,2}[-./]\d{1,2}", candidate.strip()):  # a date
        return False
    # A plain run of digits is a phone number only when written as one: with + or grouped by spaces, dashes or brackets.
    return candidate.lstrip().startswith(("+", "00", "(")) or bool(re.search(r"\d[\s().-]+\d", candidate))
