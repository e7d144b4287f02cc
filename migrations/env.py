"""Alembic environment: the URL comes from ``conversant migrate`` (DATABASE_URL)."""
import os

from alembic import context

from bot.db import make_engine
from bot.models import Base

config = context.config
# `conversant migrate` passes DATABASE_URL; `alembic` by hand uses it too when set, like every command.
url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
