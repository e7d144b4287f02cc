"""Several brand accounts per platform, and routing.

A conversation records the account that will reply (``account``; None on older rows: the
platform's first account), the route it was given and its review channel, and the language
the platform gave the post. Cursors are kept per account: the single-account configuration's
account is named after its platform, so the cursors stored so far stay in use.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("account", sa.String(20), nullable=True))
        batch.add_column(sa.Column("route", sa.String(64), nullable=True))
        batch.add_column(sa.Column("review_channel", sa.String(32), nullable=True))
        batch.add_column(sa.Column("language", sa.String(16), nullable=True))
    with op.batch_alter_table("platform_cursors") as batch:
        batch.alter_column("platform", new_column_name="account", existing_type=sa.String(20), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("platform_cursors") as batch:
        batch.alter_column("account", new_column_name="platform", existing_type=sa.String(20), existing_nullable=False)
    with op.batch_alter_table("conversations") as batch:
        for name in ("language", "review_channel", "route", "account"):
            batch.drop_column(name)
