"""Alembic's entry point for every migration run.

The database comes from the Alembic config's ``sqlalchemy.url`` when set (``marketplace.migrate`` and tests
set it), otherwise from the service settings (``BOUNTY_DATABASE_URL``, or the SQLite file under
``BOUNTY_HOME``). When ``marketplace.migrate`` passes an open connection in ``config.attributes``, the
migration runs on it, inside the caller's transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from marketplace.db import make_engine
from marketplace.schema import Base
from marketplace.settings import Settings

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().database


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = make_engine(database_url())
    try:
        with engine.begin() as connection:
            run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
