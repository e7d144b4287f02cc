"""Private replies: the suggestion on the card, and a direct message sent exactly once.

``private_hint`` lists why a conversation should be answered privately (personal data, or the
customer asked). ``reply_private`` marks an approval sent as a direct message; the message is
recorded in ``private_message_id`` / ``private_sent_at`` before the short public note
(``notice_text``) is posted, so a lost answer never sends a second message.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("private_hint", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reply_private", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("notice_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("private_message_id", sa.String(512), nullable=True))
        batch.add_column(sa.Column("private_sent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        for name in ("private_sent_at", "private_message_id", "notice_text", "reply_private", "private_hint"):
            batch.drop_column(name)
