"""The append-only event log both backends keep in their SQLite file, and the cursors into it.

Events are numbered by an AUTOINCREMENT key inside write transactions that SQLite serialises, so
numbers follow commit order and a reader never sees event n+1 before event n. A cursor is
"<file id>:<last event number read>": opaque to callers, durable, and only ever moving forward.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict

from marketplace.chain.base import (
    START,
    BlockMined,
    BlockRemoved,
    ChainEvent,
    Cursor,
    TransactionAccepted,
    TransactionDropped,
)
from marketplace.chain.errors import ChainError

SCHEMA = "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, " \
         "body TEXT NOT NULL)"

_KINDS: dict[str, type[ChainEvent]] = {cls.__name__: cls for cls in (TransactionAccepted, BlockMined, BlockRemoved,
                                                                    TransactionDropped)}


def append(conn: sqlite3.Connection, event: ChainEvent) -> None:
    """Record an event; call inside the write transaction that makes it true."""
    conn.execute("INSERT INTO events (kind, body) VALUES (?, ?)", (type(event).__name__, json.dumps(asdict(event))))


def read(conn: sqlite3.Connection, file_id: str, cursor: Cursor, limit: int) -> tuple[list[ChainEvent], Cursor]:
    after = _position(file_id, cursor)
    rows = conn.execute("SELECT seq, kind, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after, max(1, limit))).fetchall()
    events = [_decode(kind, body) for _seq, kind, body in rows]
    last = rows[-1][0] if rows else after
    return events, Cursor(f"{file_id}:{last}")


def _position(file_id: str, cursor: Cursor) -> int:
    if cursor == START:
        return 0
    owner, _, number = cursor.partition(":")
    if not number.isdigit():
        raise ChainError(f"{cursor!r} is not an event cursor")
    if owner != file_id:
        raise ChainError(f"cursor {cursor!r} belongs to another chain file (this one is {file_id}); "
                         "start again from the beginning")
    return int(number)


def _decode(kind: str, body: str) -> ChainEvent:
    fields = json.loads(body)
    if "txids" in fields:
        fields["txids"] = tuple(fields["txids"])
    return _KINDS[kind](**fields)
