"""`conversant knowledge import PATH`: the brand's help articles into the database, kept in step with the source."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot import flows
from bot.cli import main
from bot.knowledge.models import Article, Chunk
from tests.scenario.test_home_and_commands import open_home
from tests.scenario.test_doctor import doctor
from tests.support import carded_mention


@pytest.fixture
def cli(env, monkeypatch, tmp_path, capsys):
    """``conversant …`` in this process, with the operator's environment; returns (exit code, stdout, stderr)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def write(folder: Path, name: str, content: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")


def articles(services) -> dict[str, Article]:
    with services.db.session() as session:
        return {a.url: a for a in session.scalars(select(Article))}


def chunk_texts(services, url: str) -> list[str]:
    with services.db.session() as session:
        article = session.scalar(select(Article).where(Article.url == url))
        return list(session.scalars(select(Chunk.text).where(Chunk.article_id == article.id).order_by(Chunk.position)))


RESET = "https://help.brand.example/reset-password"
BILLING = "https://support.brand-help.example/billing/refunds"
SHIPPING = "https://help.brand.example/shipping"


def help_centre(folder: Path) -> None:
    write(folder, "reset.md", f"---\nurl: {RESET}\n---\n# Reset your password\n\nOpen Settings, then Security, then Reset.\n")
    write(folder, "billing/refunds.html", f"""<html><head><title>Refunds and billing</title>
        <link rel="canonical" href="{BILLING}"><style>body {{color: red}}</style></head>
        <body><h1>Refunds</h1><p>Refunds take five working days.</p><script>track()</script></body></html>""")
    write(folder, "shipping-times.txt", f"---\nurl: {SHIPPING}\n---\nParcels arrive within three days.\n")
    write(folder, "drafts/notes.md", "# Internal notes\n\nNo URL here.\n")


def test_a_folder_is_imported_and_a_file_without_a_url_is_named(cli, services, tmp_path):
    help_centre(tmp_path / "help")

    code, out, err = cli("knowledge", "import", str(tmp_path / "help"))

    assert code == 1  # imported, but a file was left out: a person must act
    assert "skipped drafts/notes.md: no URL; add one as front matter (---, url: https://…, ---)" in err
    assert "3 added, 0 updated, 0 removed, 0 unchanged; 3 articles in the knowledge base" in out
    stored = articles(services)
    assert {url: a.title for url, a in stored.items()} == {
        RESET: "Reset your password", BILLING: "Refunds and billing", SHIPPING: "Shipping times"}
    assert stored[BILLING].text.split() == ["Refunds", "Refunds", "take", "five", "working", "days."]  # no style, no script
    assert chunk_texts(services, RESET) == ["Reset your password\n\n# Reset your password\n\nOpen Settings, then Security, then Reset."]


def test_importing_again_updates_changed_articles_removes_gone_ones_and_says_so(cli, services, tmp_path):
    folder = tmp_path / "help"
    help_centre(folder)
    (folder / "drafts/notes.md").unlink()
    assert cli("knowledge", "import", str(folder))[0] == 0
    unchanged_at = articles(services)[BILLING].imported_at

    write(folder, "reset.md", f"---\nurl: {RESET}\n---\n# Reset your password\n\nUse the 'Forgot password' link on the sign-in page.\n")
    (folder / "shipping-times.txt").unlink()
    write(folder, "export.md", "---\nurl: https://help.brand.example/export\ntitle: Export your notes\n---\nFile, then Export.\n")
    code, out, _ = cli("knowledge", "import", str(folder))

    assert code == 0
    assert "1 added, 1 updated, 1 removed, 1 unchanged; 3 articles in the knowledge base" in out
    stored = articles(services)
    assert set(stored) == {RESET, BILLING, "https://help.brand.example/export"}
    assert stored["https://help.brand.example/export"].title == "Export your notes"
    assert stored[BILLING].imported_at == unchanged_at
    assert ["Forgot password" in text and "Security" not in text for text in chunk_texts(services, RESET)] == [True]


def test_a_csv_and_a_sitemap_give_titles_without_fetching_anything(cli, services, tmp_path):
    (tmp_path / "articles.csv").write_text(
        "url,title,text\n"
        "https://help.brand.example/a/123-Reset-Password,Reset your password,Use the Forgot password link.\n"
        "not a url,Broken,\n"
        "https://help.brand.example/b/Billing-FAQ,,\n", encoding="utf-8")
    code, out, err = cli("knowledge", "import", str(tmp_path / "articles.csv"))
    assert code == 1 and "skipped articles.csv line 3: 'not a url' is not a web address (https://…)" in err
    assert {a.title for a in articles(services).values()} == {"Reset your password", "Billing FAQ"}

    (tmp_path / "sitemap.xml").write_text("""<?xml version="1.0" encoding="UTF-8"?>
        <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
          <url><loc>https://support.brand.example/articles/204233943/Basic-Troubleshooting-for-the-Console</loc></url>
          <url><loc>https://support.brand.example/hc/en-us/articles/360034754912-Backing-up-worlds-</loc></url>
        </urlset>""", encoding="utf-8")
    code, out, _ = cli("knowledge", "import", str(tmp_path / "sitemap.xml"))
    assert code == 0
    assert "2 added, 0 updated, 2 removed, 0 unchanged" in out
    assert "Conversant fetches nothing over the network, so they are matched on their titles alone" in out
    assert sorted(a.title for a in articles(services).values()) == ["Backing up worlds", "Basic Troubleshooting for the Console"]


def test_an_unreadable_or_empty_source_changes_nothing(cli, services, tmp_path):
    help_centre(tmp_path / "help")
    cli("knowledge", "import", str(tmp_path / "help"))
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty", "a.md", "# No URL\n")
    (tmp_path / "index.xml").write_text('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>')

    for path, said in ((tmp_path / "missing", "no such file or folder"), (tmp_path / "empty", "no article with a URL"),
                       (tmp_path / "index.xml", "fetches nothing over the network: import each sitemap file it lists")):
        code, out, err = cli("knowledge", "import", str(path))
        assert code == 2 and said in err and "nothing changed" in err and "Traceback" not in err
    assert len(articles(services)) == 3


def test_doctor_and_home_show_how_many_articles_and_when_they_were_imported(cli, env, services, web, slack, model, tmp_path):
    _, lines = doctor(env)
    assert any(line.startswith("  note  knowledge base: no help articles imported") for line in lines)
    assert "• Help articles: none imported" in open_home(web, slack)

    help_centre(tmp_path / "help")
    cli("knowledge", "import", str(tmp_path / "help"))

    _, lines = doctor(env)
    assert any(line.startswith("  ok    knowledge base: 3 help article(s), last imported ") and line.endswith(str(tmp_path / "help"))
               for line in lines), lines
    assert "• Help articles: 3, last imported <!date^" in open_home(web, slack)


def test_the_domains_of_imported_articles_may_be_linked(cli, services, bluesky, model, tmp_path):
    conversation = carded_mention(services, bluesky, model)
    text = f"Here is how: {BILLING}"
    assert flows.edit_problems(services, conversation.id, "U_ALICE", text) == [
        "Links to support.brand-help.example, which is not in BRAND_ALLOWED_DOMAINS."]

    help_centre(tmp_path / "help")
    cli("knowledge", "import", str(tmp_path / "help"))

    assert flows.edit_problems(services, conversation.id, "U_ALICE", text) == []
    assert flows.edit_problems(services, conversation.id, "U_ALICE", "See https://evil.example/x") == [
        "Links to evil.example, which is not in BRAND_ALLOWED_DOMAINS."]


def test_with_an_embedding_model_chunks_get_vectors_and_older_ones_get_theirs_at_the_next_import(cli, services, model, monkeypatch, tmp_path):
    help_centre(tmp_path / "help")
    (tmp_path / "help/drafts/notes.md").unlink()
    cli("knowledge", "import", str(tmp_path / "help"))  # no OPENAI_EMBEDDING_MODEL yet
    assert model.requests_to("/v1/embeddings") == []

    monkeypatch.setenv("OPENAI_EMBEDDING_MODEL", "no-such-embedder")  # the endpoint answers 404
    code, out, _ = cli("knowledge", "import", str(tmp_path / "help"))
    assert code == 0 and "0 added, 0 updated, 0 removed, 3 unchanged" in out and "embedded" not in out
    assert len(model.requests_to("/v1/embeddings")) == 1

    monkeypatch.setenv("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small")
    code, out, _ = cli("knowledge", "import", str(tmp_path / "help"))
    assert "conversant knowledge: 3 chunk(s) embedded with text-embedding-3-small" in out
    with services.db.session() as session:
        assert set(session.scalars(select(Chunk.embedding_model))) == {"text-embedding-3-small"}
