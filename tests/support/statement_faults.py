"""A database that fails at a chosen statement: a fault injected at SQLAlchemy's boundary with the driver, so
everything above it (the service, its sessions, its error handling) runs for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError


@contextmanager
def database_fails(engine: Engine, at: Callable[[str], bool], lasting: bool = False,
                   error: str = "database is locked") -> Iterator[list[str]]:
    """Inside the block, the first statement for which `at(statement)` holds fails with an OperationalError
    saying `error`; with `lasting`, so does every statement after it (an outage) until the block ends. Yields the
    list of the statements that failed."""
    failed: list[str] = []

    def fail(conn: object, cursor: object, statement: str, *_: object) -> None:
        if (failed and lasting) or (not failed and at(statement)):
            failed.append(statement)
            raise OperationalError(statement, None, Exception(error))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield failed
    finally:
        event.remove(engine, "before_cursor_execute", fail)
