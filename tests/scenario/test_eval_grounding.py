"""`conversant eval --grounding` and `--retrieval`: each brand's knowledge base from the help links its
agents posted, drafts grounded in it, and how often the agent's own article is found and linked."""
from __future__ import annotations

import os
import re

from bot.config import load_settings
from bot.evaluation.knowledge import brand_articles, help_links
from bot.evaluation.replay import compare, format_replay_table, load_brands, run_replay
from tests.conftest import triage
from tests.scenario.test_eval_replay import BY_NUMBER, CONVERSATIONS, sent

XBOX = 98  # RockstarSupport: "playing on Xbox one and getting a message The Rockstar game services are unavailable…"
XBOX_ARTICLE = "https://support.rockstargames.com/articles/204233953/Basic-Troubleshooting-for-the-Xbox-One-Console"


def test_each_brand_knows_every_help_link_its_agents_posted_without_archive_prefixes():
    hp = ("hp.com",)
    assert help_links("Open link: https://web.archive.org/web/20191213044137/https://support.hp.com/us-en/contact-hp?openCLC=true ^Ganesh"
                      " or https://support.hp.com/us-en/contact-hp?openCLC=true! or http://issues.you", hp) == [
        "https://support.hp.com/us-en/contact-hp?openCLC=true"]  # once, and never another site

    articles = brand_articles(CONVERSATIONS, load_brands())
    assert len(articles) == 25
    rockstar = {a.url: a.title for a in articles["RockstarSupport"]}
    assert rockstar[XBOX_ARTICLE] == "Basic Troubleshooting for the Xbox One Console"
    assert all(not a.url.startswith("https://web.archive.org") and a.text == "" for v in articles.values() for a in v)


def test_grounded_drafts_see_the_brands_articles_and_are_scored_on_linking_the_agents_one(model):
    settings = load_settings({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.api_url, "OPENAI_TIMEOUT_SECONDS": "5",
                              "OPENAI_MAX_RETRIES": "0", "OPENAI_CONCURRENCY": "1"}, dotenv_path="/nonexistent/.env")
    other = next(n for n, c in CONVERSATIONS if c.company == "RockstarSupport" and n != XBOX and len(c.turns) == 2)
    drafts = {XBOX: f"Sorry about that! These steps should help: {XBOX_ARTICLE}",
              other: "Please see https://support.rockstargames.com/articles/1/made-up"}

    def respond(request):
        text = sent(request)["text"]
        return triage(next(d for n, d in drafts.items() if BY_NUMBER[n].turns[0].text == text))

    model.responder = respond
    sample = [(XBOX, BY_NUMBER[XBOX]), (other, BY_NUMBER[other])]
    articles = {"RockstarSupport": brand_articles(CONVERSATIONS, load_brands())["RockstarSupport"]}

    grounded = run_replay(settings, sample, articles=articles)
    plain = run_replay(settings, sample)

    prompt = next(r for r in model.chat_requests() if sent(r)["text"] == BY_NUMBER[XBOX].turns[0].text)
    offered = [a["url"] for a in sent(prompt)["help_articles"]]
    assert XBOX_ARTICLE in offered and all(url.startswith("https://support.rockstargames.com/") for url in offered)
    xbox, made_up = (next(r for r in grounded.results if r.id == f"{n}.0") for n in (XBOX, other))
    assert (xbox.top_1, xbox.recall_at_5, xbox.checks["policy"]) == (True, True, True)
    assert xbox.agent_articles == [XBOX_ARTICLE] and XBOX_ARTICLE in xbox.retrieved
    assert made_up.top_1 is False and made_up.checks["policy"] is False
    assert any("not one of the help articles found" in p for p in made_up.problems)
    assert grounded.summary()["help_article"]["top_1"] == {"passed": 1, "applicable": 2, "rate": 0.5}

    # without grounding: the same drafts, no articles in the prompt, no recall figure
    assert "help_articles" not in sent(model.chat_requests()[-1])
    assert plain.summary()["help_article"]["recall_at_5"]["applicable"] == 0
    assert "top-1" in format_replay_table(grounded) and "R@5" in format_replay_table(grounded)
    assert "links the agent's help article" in compare(plain, grounded)


def test_recall_at_5_needs_no_chat_model_full_text_or_embeddings_from_the_model_server(model, tmp_path, monkeypatch, capsys):
    from bot.cli import main

    for name in [n for n in os.environ if n.startswith(("OPENAI_", "BRAND_", "DATABASE_URL"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    assert main(["eval", "--retrieval", "--brands", "RockstarSupport"]) == 0  # no model configured at all
    by_text = capsys.readouterr().out
    assert "by full-text ranking (SQLite FTS5); no drafts" in by_text
    overall = next(line for line in by_text.splitlines() if line.startswith("overall"))
    assert overall.split()[1:3] == ["66", "58"]  # answered turns, and those whose agent linked an article

    monkeypatch.setenv("OPENAI_BASE_URL", model.api_url)
    monkeypatch.setenv("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small")
    assert main(["eval", "--retrieval", "--brands", "RockstarSupport"]) == 0
    by_vector = capsys.readouterr().out
    assert "by embeddings by text-embedding-3-small" in by_vector
    assert re.search(r"^overall +66 +58 +\d+/58 \(\d+%\)$", by_vector, re.M)
    embedded = [text for r in model.requests_to("/v1/embeddings") for text in r.json()["input"]]
    assert "Basic Troubleshooting for the Xbox One Console" in embedded  # the article, by its title
    assert any(text.startswith("@RockstarSupport playing on Xbox one") for text in embedded)  # the customer's turn
    assert model.chat_requests() == []
