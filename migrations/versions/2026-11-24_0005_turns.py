"""Turns: a follow-up in a thread is the next turn of its first conversation; stale drafts.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("turn", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("first_turn_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("draft_stale", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("slack_thread_ts", sa.String(length=32), nullable=True))
        batch.create_foreign_key("fk_conversations_first_turn", "conversations", ["first_turn_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_conversations_first_turn_id", ["first_turn_id"])
    # Conversations stored before turns existed are each the first turn of their thread.
    op.execute("UPDATE conversations SET turn = 1")


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_first_turn_id")
        batch.drop_constraint("fk_conversations_first_turn", type_="foreignkey")
        batch.drop_column("slack_thread_ts")
        batch.drop_column("draft_stale")
        batch.drop_column("first_turn_id")
        batch.drop_column("turn")
