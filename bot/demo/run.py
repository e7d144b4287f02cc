"""`conversant demo`: the real pipeline on sample mentions, offline, printed to the terminal."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

from sqlalchemy import func, select

from bot import flows
from bot.config import ConfigError, load_settings
from bot.db import Database, migrate
from bot.draft import load_prompts
from bot.llm import Drafter
from bot.models import Conversation, DismissReason, State
from bot.pipeline import poll_once
from bot.platforms.demo import DemoPlatform
from bot.services import Services
from bot.slack.cards import as_text
from bot.slack.views import decision_text

REVIEWER = "U_DEMO"


class ConsolePublisher:
    """Prints cards as they would appear in Slack."""

    def __init__(self, out=print) -> None:
        self.out = out
        self.count = 0

    def post(self, card: dict, *, channel: str | None = None, thread_ts: str | None = None) -> tuple[str, str]:
        self.count += 1
        self._show(f"card {self.count} posted to the review channel", card)
        return "C_DEMO", f"{self.count}.0"

    def update(self, channel: str, ts: str, card: dict) -> None:
        self._show(f"card {ts.split('.')[0]} updated in place", card)

    def notice(self, text: str) -> None:
        self.out(f"\n[notice] {text}")

    def tell(self, channel: str, user: str, text: str) -> None:
        self.out(f"\n[only {user} sees] {text}")

    def _show(self, title: str, card: dict) -> None:
        self.out(f"\n┌── {title} " + "─" * max(0, 60 - len(title)))
        for line in as_text(card).splitlines():
            self.out(f"│ {line}")
        self.out("└" + "─" * 66)


def run_demo(out=print) -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        out(f"conversant demo: configuration error: {error}")
        return 2
    samples = json.loads(files("bot.demo").joinpath("mentions.json").read_text(encoding="utf-8"))
    workdir = Path(tempfile.mkdtemp(prefix="conversant-demo-"))
    url = f"sqlite:///{workdir / 'demo.db'}"
    settings = replace(
        settings,
        database_url=url,
        brand_name=samples["brand"],
        brand_allowed_domains=(samples["brand_handle"],),
        slack_review_channel="C_DEMO",
    )
    out(f"Conversant demo: {len(samples['mentions'])} sample mentions of {samples['brand']}, no network, SQLite in {workdir}")
    if settings.model_configured:
        out(f"Drafts come from the model {settings.openai_model} at {settings.openai_base_url or 'api.openai.com'}.")
    else:
        out("No model is configured (OPENAI_API_KEY / OPENAI_BASE_URL), so cards come without drafts; a reviewer writes the reply with Edit.")

    migrate(url)
    services = Services(
        settings=settings,
        db=Database(url),
        platforms={"bluesky": DemoPlatform(samples, workdir / "replies.jsonl")},
        drafter=Drafter(settings) if settings.model_configured else None,
        prompts=load_prompts(settings),
        publisher=ConsolePublisher(out),
    )
    out("\n== 1. One poll cycle: fetch, triage and draft, post cards ==")
    report = poll_once(services)
    out(f"\nCycle: {report.summary()}")
    if _still_drafting(services):  # a slow local model finishes its drafts after the cycle; the next one cards them
        out("\nSome drafts are still with the model; the next cycle cards them once they are done.")
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while _still_drafting(services) and time.monotonic() < deadline:
            time.sleep(1)
        out(f"Cycle: {poll_once(services).summary()}")

    out("\n== 2. A reviewer approves one card and dismisses another ==")
    _approve_one(services, out)
    _dismiss_one(services, out)

    out("\n== 3. Today's figures ==")
    _figures(services, out)
    out(f"\nReplies the demo platform recorded: {workdir / 'replies.jsonl'}")
    services.db.dispose()
    return 0


MAX_WAIT_SECONDS = 900


def _still_drafting(services: Services) -> bool:
    waiting = (State.NEW.value, State.DRAFTING.value)
    with services.db.session() as session:
        return bool(session.scalar(select(func.count()).where(Conversation.state.in_(waiting))))


def _carded(services: Services) -> list[Conversation]:
    with services.db.session() as session:
        return list(session.scalars(select(Conversation).where(Conversation.state == State.CARDED.value).order_by(Conversation.id)))


def _approve_one(services: Services, out) -> None:
    cards = _carded(services)
    approvable = [c for c in cards if c.draft_text and not c.policy_problems]
    if approvable:
        chosen = approvable[0]
        out(f"\n<@{REVIEWER}> clicks Approve on the reply to @{chosen.author_handle}.")
        result = flows.approve(services, chosen.id, REVIEWER)
    elif cards:
        chosen = next((c for c in cards if "Thank" in c.text or "thank" in c.text), cards[0])
        text = f"@{chosen.author_handle} that's wonderful to hear, thank you for telling us! Where are you heading next?"
        out(f"\n<@{REVIEWER}> clicks Edit on @{chosen.author_handle}'s card and writes the reply by hand:\n  {text}")
        result = flows.approve_edited(services, chosen.id, REVIEWER, text)
    else:
        out("No card is waiting, so there is nothing to approve.")
        return
    if not result.done:
        out(f"Not approved: {decision_text(result.message, result.who)}")


def _dismiss_one(services: Services, out) -> None:
    cards = _carded(services)
    if not cards:
        out("No other card is waiting, so there is nothing to dismiss.")
        return
    chosen = next((c for c in cards if c.category == "spam" or "CLICK HERE" in c.text), cards[-1])
    reason = DismissReason.SPAM if "CLICK HERE" in chosen.text else DismissReason.NOT_RELEVANT
    out(f"\n<@{REVIEWER}> clicks Dismiss on @{chosen.author_handle}'s card: {reason.label.lower()}.")
    flows.dismiss(services, chosen.id, REVIEWER, reason)


def _figures(services: Services, out) -> None:
    with services.db.session() as session:
        counts = dict(session.execute(select(Conversation.state, func.count()).group_by(Conversation.state)).all())
    total = sum(counts.values())
    rows = [
        ("mentions received", total),
        ("replied", counts.get(State.REPLIED.value, 0)),
        ("dismissed", counts.get(State.DISMISSED.value, 0)),
        ("skipped by triage (no reply needed)", counts.get(State.SKIPPED.value, 0)),
        ("already answered elsewhere", counts.get(State.ANSWERED_ELSEWHERE.value, 0)),
        ("waiting for review", counts.get(State.CARDED.value, 0) + counts.get(State.POST_FAILED.value, 0)),
    ]
    for label, value in rows:
        out(f"  {value:>3}  {label}")
