"""Engines and sessions for the service database (SQLite embedded, PostgreSQL in production).

- `make_engine(url)`: an engine with the backend's settings (SQLite: WAL, foreign keys, busy timeout,
  usable from several threads; PostgreSQL: connections checked before use).
- `session_scope(engine)`: a unit of work (commit, or roll back, then close); each process's `Runtime` owns
  its engine (a forked Celery child opens its own, see `workers.context.forget_runtime`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from marketplace.errors import DatabaseError

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers queue behind each other for up to this long, then "database is locked"


def make_engine(url: str | URL) -> Engine:
    """A new engine for `url`; the caller disposes of it. Creates a SQLite file's directory."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)  # survive server restarts and idle timeouts


def _sqlite_engine(url: URL) -> Engine:
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if url.database in (None, "", ":memory:"):
        options["poolclass"] = StaticPool  # one shared connection, or every checkout sees an empty database
    else:
        folder = Path(url.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # BOUNTY_HOME under a file, on a read-only disk, ...
            raise DatabaseError(f"cannot create {folder} for the SQLite database ({exc.strerror or exc}): check "
                                "BOUNTY_HOME") from None
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")  # off by default in SQLite, per connection
        cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer (API, daemon, workers)
        # no disk flush at each commit, only at checkpoints: durable across crashes of the process, not of the
        # machine (a power cut may lose the last commits; the watcher books again what the chain holds). A flush
        # per commit held SQLite's one write lock through it: claims and the workers queued behind each other.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back when it raises.

    ``expire_on_commit=False`` keeps loaded attributes readable after the block (to build a response).
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
