"""This machine's PostgreSQL for the tests (and bench/): a fresh database per use, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

# Trust authentication on this machine's server (.ci/run starts it); override for another server.
PG_ADMIN = os.environ.get("BOUNTY_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


@contextmanager
def fresh_database(prefix: str = "bounty_test", before_drop: Callable[[], None] = lambda: None) -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); its SQLAlchemy URL. Every step connects afresh,
    because the fault tests restart the server in between."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = admin.info
        url = f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
    try:
        yield url
    finally:
        before_drop()
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=30) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_schema(url: str) -> str:
    """Empty the database behind `url` (whatever an earlier test left) and return the URL."""
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url
