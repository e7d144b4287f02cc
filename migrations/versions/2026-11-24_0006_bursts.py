"""Bursts: similar mentions in a short window share one card.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bursts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slack_channel", sa.String(length=32), nullable=True),
        sa.Column("slack_ts", sa.String(length=32), nullable=True),
        sa.Column("opened_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("burst_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_conversations_burst", "bursts", ["burst_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_conversations_burst_id", ["burst_id"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_burst_id")
        batch.drop_constraint("fk_conversations_burst", type_="foreignkey")
        batch.drop_column("burst_id")
    op.drop_table("bursts")
