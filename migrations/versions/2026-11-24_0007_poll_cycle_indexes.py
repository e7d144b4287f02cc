"""Indexes for the poll cycle: conversations not yet linked into turns.

Every poll cycle asks for the conversations whose turn is not known yet
(``bot.pipeline.link_turns``), a handful among everything ever stored. Without
an index that is a full scan: 430 ms a cycle at a million conversations on
PostgreSQL. A partial index holds only those rows, so it stays tiny.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UNLINKED = sa.text("turn IS NULL")


def upgrade() -> None:
    op.create_index("ix_conversations_unlinked", "conversations", ["posted_at", "id"],
                    postgresql_where=UNLINKED, sqlite_where=UNLINKED)


def downgrade() -> None:
    op.drop_index("ix_conversations_unlinked", table_name="conversations")
