"""One SQLite file shared by several processes (the API, a watcher, workers) at once.

WAL mode lets readers run while one process writes; every write is a ``BEGIN IMMEDIATE`` transaction,
so two processes never both read-then-write the same state (SQLite serialises the writers, waiting up
to the busy timeout). Nothing lives only in memory: another process sees every committed change.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from marketplace.chain.errors import ChainError, ChainUnavailable

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write to finish

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class Database:
    """A SQLite file with a schema, one connection per process, and short read/write transactions.

    `kind` names what the file holds ("local-chain", "network-journal"): opening a file made for
    something else is refused instead of silently mixing tables. Each file gets a random id at creation;
    event cursors carry it, so a cursor from another (or a re-created) file is recognised.
    """

    def __init__(self, path: Path | str, kind: str, schema: list[str],
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()  # one connection per process, shared by its threads in turn
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._inherited: list[sqlite3.Connection] = []
        with self.write() as conn:  # schema changes are transactional: a refused file is left as it was
            conn.execute(_META)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('kind', ?), ('id', ?)", (kind, uuid.uuid4().hex[:16]))
            if (found := self.meta(conn, "kind")) != kind:
                raise ChainError(f"{self.path} holds a {found}, not a {kind}")
            for statement in schema:
                conn.execute(statement)
            self.id = self.meta(conn, "id")

    @staticmethod
    def meta(conn: sqlite3.Connection, key: str) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise ChainError(f"the chain file has no {key!r} entry")
        return str(row[0])

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:
                # Opened before a fork: the parent still uses it. Closing it here could release the
                # parent's file locks, so keep it referenced and never touch it again.
                self._inherited.append(self._conn)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # BOUNTY_HOME under a file, on a read-only disk, ...
                raise ChainError(f"cannot create {self.path.parent} for the chain file ({exc.strerror or exc}): "
                                 "check BOUNTY_HOME") from None
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across crashes of the process
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated(self.path, self.busy_timeout):
            conn = self._connection()
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction: taken at once (BEGIN IMMEDIATE), committed on exit, rolled back on error."""
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: every query inside sees the same snapshot."""
        return self._transaction("BEGIN")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None



@contextmanager
def _translated(path: Path, busy_timeout: float) -> Iterator[None]:
    """SQLite's errors in the project's words: a lock held too long is retry-later, the rest is not."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise ChainUnavailable(f"the chain file {path} stayed locked for more than {busy_timeout:g} s") from exc
        raise ChainError(f"the chain file {path} cannot be used: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise ChainError(f"the chain file {path} cannot be used: {exc}") from exc
