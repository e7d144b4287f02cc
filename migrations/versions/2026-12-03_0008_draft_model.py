"""Which model wrote each draft, shown on its card.

A team comparing a local model with a hosted one, or reading a draft after the
model was changed, needs to know which model drafted it.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("draft_model", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("draft_model")
