"""Cards Slack refused, and cards whose post may have happened without being recorded.

A card Slack refuses (``invalid_blocks``, ``msg_too_long``) is recorded with Slack's reason,
tried again later as a short card, and counted on Home, while the other cards go out. A card
whose ``chat.postMessage`` had no answer (a crash, a timeout) is looked for in the channel's
history before it is posted again.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("card_error", sa.String(255), nullable=True))
        batch.add_column(sa.Column("card_failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("card_retry_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("card_unconfirmed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        for name in ("card_unconfirmed_at", "card_retry_at", "card_failures", "card_error"):
            batch.drop_column(name)
