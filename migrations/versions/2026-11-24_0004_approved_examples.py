"""Approved examples: every reply sent, beside the draft it replaced, with full-text search.

SQLite gets an FTS5 table over ``examples.mention_text`` kept in sync by
triggers; PostgreSQL gets a GIN index on ``to_tsvector('english', mention_text)``
(the expression ``bot/examples.py`` queries, so the planner uses it).

A later batch migration that rebuilds ``examples`` on SQLite must recreate the
three ``examples_fts_*`` triggers.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-24 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE examples_fts USING fts5(mention_text, content='examples', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER examples_fts_insert AFTER INSERT ON examples BEGIN "
    "INSERT INTO examples_fts(rowid, mention_text) VALUES (new.id, new.mention_text); END",
    "CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN "
    "INSERT INTO examples_fts(examples_fts, rowid, mention_text) VALUES ('delete', old.id, old.mention_text); END",
    "CREATE TRIGGER examples_fts_update AFTER UPDATE OF mention_text ON examples BEGIN "
    "INSERT INTO examples_fts(examples_fts, rowid, mention_text) VALUES ('delete', old.id, old.mention_text); "
    "INSERT INTO examples_fts(rowid, mention_text) VALUES (new.id, new.mention_text); END",
]


def upgrade() -> None:
    op.create_table('examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('mention_text', sa.Text(), nullable=False),
    sa.Column('draft_text', sa.Text(), nullable=True),
    sa.Column('reply_text', sa.Text(), nullable=False),
    sa.Column('edited', sa.Boolean(), nullable=False),
    sa.Column('edit_distance', sa.Integer(), nullable=True),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('embedding_model', sa.String(length=200), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id', name='uq_example_conversation')
    )
    with op.batch_alter_table('examples', schema=None) as batch_op:
        batch_op.create_index('ix_examples_replied_at', ['replied_at'], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute("CREATE INDEX ix_examples_mention_fts ON examples USING GIN (to_tsvector('english', mention_text))")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for name in ('examples_fts_update', 'examples_fts_delete', 'examples_fts_insert'):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS examples_fts")
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_examples_mention_fts")
    with op.batch_alter_table('examples', schema=None) as batch_op:
        batch_op.drop_index('ix_examples_replied_at')
    op.drop_table('examples')
