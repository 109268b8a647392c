"""Apply and inspect schema migrations from Python, whatever the working directory.

The Alembic configuration is built here rather than read from ``alembic.ini``: the scripts are the
repository's ``migrations/`` folder next to the ``marketplace`` package (the project is installed
editable), and the database URL is passed in. ``migrations/env.py`` runs on the connection opened here,
so a migration and its version stamp commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, make_url
from sqlalchemy import exc as sa_exc

from marketplace.db import make_engine
from marketplace.errors import DatabaseError, DatabaseUnavailable

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic `Config` for the repository's migration scripts and, when given, the database at `url`."""
    if not (MIGRATIONS / "env.py").is_file():
        raise DatabaseError(f"no migration scripts at {MIGRATIONS}: install digit-bounty from its repository "
                            "(pip install -e .)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolates %
    return config


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at `url` up to `revision`; returns the revision it is then at."""
    log.info("upgrading %s to %s", display_url(url), revision)
    return _run(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str) -> str | None:
    """Migrate the database at `url` down to `revision` ("base" drops every table); returns where it is then."""
    log.info("downgrading %s to %s", display_url(url), revision)
    return _run(url, lambda config: command.downgrade(config, revision))


def current(url: str) -> str | None:
    """The revision the database at `url` is at, or None before the first migration."""
    return _run(url, lambda config: None)


def head() -> str:
    """The newest revision among the migration scripts."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    if len(heads) != 1:  # two heads mean two unmerged branches of revisions: a review mistake
        raise DatabaseError(f"the migration scripts have {len(heads)} heads ({', '.join(heads)}), expected one")
    return heads[0]


def display_url(url: str) -> str:
    """`url` with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<malformed database URL>"


def _run(url: str, action: Callable[[Config], None]) -> str | None:
    config = alembic_config(url)
    with _translated(url):
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                sqlite = connection.dialect.name == "sqlite"
                if sqlite:  # SQLite alters a table by rebuilding it: dropping the old copy must not cascade
                    connection.exec_driver_sql("PRAGMA foreign_keys = OFF")  # (a no-op inside a transaction)
                    connection.commit()
                    # pysqlite runs DDL outside any transaction; begin one ourselves so that a failed
                    # migration leaves nothing behind (this connection is closed afterwards)
                    connection.connection.driver_connection.isolation_level = None  # type: ignore[union-attr]
                with connection.begin():
                    if sqlite:
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    config.attributes["connection"] = connection  # env.py runs on it (see migrations/env.py)
                    action(config)
                    if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise DatabaseError(f"a migration of {display_url(url)} would break references between "
                                            "rows; nothing was changed", url=display_url(url))
                    return _current(connection)
        finally:
            engine.dispose()


def _current(connection: Connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()
    return heads[0] if heads else None


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Alembic's and the driver's errors as the project's, with no password in the message."""
    shown = display_url(url)
    try:
        yield
    except CommandError as exc:  # unknown revision, a database stamped with a revision we do not have
        raise DatabaseError(f"{shown}: {exc}", url=shown) from None
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise DatabaseError(f"unusable database URL {shown}: {exc}", url=shown) from None
    except sa_exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        if _transient(exc, url, reason):
            raise DatabaseUnavailable(f"cannot use the database {shown} now: {reason}", url=shown) from None
        raise DatabaseError(f"the database {shown} refused a migration: {reason}", url=shown) from None


def _transient(exc: sa_exc.DBAPIError, url: str, reason: str) -> bool:
    # On PostgreSQL an OperationalError means the server or the connection (down, restarting, lock timeout);
    # SQLite raises it for schema problems too, so there only a lock is worth a retry.
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    if make_url(url).get_backend_name() == "sqlite":
        return "locked" in reason or "busy" in reason
    return True


__all__ = ["MIGRATIONS", "alembic_config", "current", "display_url", "downgrade", "head", "upgrade"]
