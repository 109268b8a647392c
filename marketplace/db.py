"""Engines and sessions for the service database (SQLite embedded, PostgreSQL in production).

- `make_engine(url)`: an engine with the backend's settings (SQLite: WAL, foreign keys, busy timeout,
  usable from several threads; PostgreSQL: connections checked before use).
- `get_engine()`: the process-wide engine for ``get_settings().database``, built on first use.
- `session_scope()`: a unit of work for the daemon, workers and CLI (commit, or roll back, then close).
- `get_session()`: the same for the API, as a FastAPI dependency with ``yield``.
- `dispose_engine()`: call it in a child process right after a fork (Celery's ``worker_process_init``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from marketplace.settings import get_settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers queue behind each other for up to this long, then "database is locked"

_engine: Engine | None = None
_engine_lock = threading.Lock()


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
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")  # off by default in SQLite, per connection
        cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer (API, daemon, workers)
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = make_engine(get_settings().database)
            log.debug("database engine created for %r", _engine.url)
        return _engine


def dispose_engine(close: bool = False) -> None:
    """Forget the process-wide engine and its pooled connections; the next `get_engine()` builds a new one
    from the current settings.

    After a fork keep the default ``close=False``: the child must not close connections whose sockets the
    parent still uses, only stop using them. Pass ``close=True`` at shutdown or in tests.
    """
    global _engine
    with _engine_lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.dispose(close=close)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back when it raises.

    ``expire_on_commit=False`` keeps loaded attributes readable after the block (to build a response).
    """
    session = Session(engine or get_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session() -> Iterator[Session]:
    """FastAPI dependency: ``session: Annotated[Session, Depends(get_session)]``.

    It rolls back on an error and closes, but does not commit: FastAPI finishes ``yield`` dependencies after
    the response is sent, when a failed commit could no longer reach the client. Handlers (the service
    functions they call) commit themselves, so a failed commit is the request's error.
    """
    session = Session(get_engine(), expire_on_commit=False)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


__all__ = ["dispose_engine", "get_engine", "get_session", "make_engine", "session_scope"]
