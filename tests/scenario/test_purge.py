"""Retention: mention text is personal data. `conversant purge` and deleted posts blank it; facts stay."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from bot.slack.payloads import ActionId
from bot.examples import Example
from bot.models import AuditEvent, Conversation, State, utcnow
from bot.pipeline import poll_once
from bot.purge import purge
from tests.conftest import eventually, triage
from tests.support import card_text, carded_mention, click, load


def _count(services, model) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_purge_blanks_what_people_wrote_in_settled_conversations_and_keeps_the_facts(services, web, slack, model, bluesky, monkeypatch, capsys):
    replied = carded_mention(services, bluesky, model, text="@brand.test my name is Alice Example and my order 123 is late")
    click(web, ActionId.APPROVE, replied)
    eventually(lambda: load(services, replied.id).state == State.REPLIED.value)
    bluesky.post("alice.test", "@brand.test still waiting for an answer")
    model.reply_with(triage())
    poll_once(services)
    with services.db.session() as session:
        waiting = session.scalars(select(Conversation).where(Conversation.id != replied.id)).one()
    audit_before = _count(services, AuditEvent)
    with services.db.session() as session:  # both arrived 40 days ago
        session.execute(update(Conversation).values(received_at=utcnow() - timedelta(days=40)))

    assert purge(services.db, older_than=timedelta(days=60)).conversations == 0  # inside the window: untouched
    report = purge(services.db, older_than=timedelta(days=30))

    assert (report.conversations, report.examples) == (1, 1)
    gone = load(services, replied.id)
    assert gone.text == "" and gone.draft_text is None and gone.author_name is None
    assert gone.state == State.REPLIED.value and gone.reply_text and gone.replied_at and gone.author_handle == "alice.test"
    assert load(services, waiting.id).text == "@brand.test still waiting for an answer"  # open: kept
    with services.db.session() as session:
        example = session.scalars(select(Example).where(Example.conversation_id == replied.id)).one()
    assert example.mention_text == "" and example.embedding is None and example.edited is False and example.reply_text
    assert _count(services, AuditEvent) == audit_before
    assert purge(services.db, older_than=timedelta(days=30)).conversations == 0  # nothing twice

    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", services.settings.database_url)
    assert main(["purge", "--older-than", "30"]) == 0
    assert "blanked the text of 0 settled conversation(s)" in capsys.readouterr().out


def test_a_mention_its_author_deleted_loses_its_text(services, slack, model, bluesky):
    conv = carded_mention(services, bluesky, model, text="@brand.test something I will regret")
    bluesky.delete(conv.external_id)
    with services.db.session() as session:  # open cards are re-checked every few minutes
        session.execute(update(Conversation).values(checked_at=utcnow() - timedelta(minutes=6)))

    poll_once(services)

    conv = load(services, conv.id)
    assert conv.state == State.DELETED.value and conv.text == "" and conv.draft_text is None
    card = card_text(slack.last("chat.update"))
    assert "regret" not in card and "text no longer stored" in card
