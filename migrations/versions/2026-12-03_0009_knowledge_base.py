"""The knowledge base: the brand's help articles and their chunks, with full-text search.

Drafts are grounded in these articles (issue 17). SQLite gets an FTS5 table over
``article_chunks.text`` kept in sync by triggers; PostgreSQL a GIN index on
``to_tsvector('english', text)``, the expression ``bot/similarity.py`` queries.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE article_chunks_fts USING fts5(text, content='article_chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER article_chunks_fts_insert AFTER INSERT ON article_chunks BEGIN "
    "INSERT INTO article_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER article_chunks_fts_delete AFTER DELETE ON article_chunks BEGIN "
    "INSERT INTO article_chunks_fts(article_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER article_chunks_fts_update AFTER UPDATE OF text ON article_chunks BEGIN "
    "INSERT INTO article_chunks_fts(article_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO article_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
]


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False, index=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "article_chunks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(200), nullable=True),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("CREATE INDEX ix_article_chunks_fts ON article_chunks USING GIN (to_tsvector('english', text))")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("article_chunks_fts_update", "article_chunks_fts_delete", "article_chunks_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS article_chunks_fts")
    op.drop_table("article_chunks")
    op.drop_table("articles")
