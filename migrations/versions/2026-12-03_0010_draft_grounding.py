"""The help articles each draft was grounded in, kept with the draft.

The card shows the article a draft is based on and offers the others found; the policy
lets a grounded draft link only the articles it was offered (bot/knowledge/grounding.py).

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("grounding", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("grounding")
