"""Settings for tests that open a runtime in-process.

Migrating a fresh SQLite file to the newest schema takes about 0.3 s (Alembic rebuilds tables to alter them),
and most tests open a runtime on a fresh home. So a home given to `settings_for` without a database URL gets
a copy of a database already at the newest schema, migrated once per set of migration scripts and kept in
the system's temporary folder (keyed by a hash of `migrations/` and the library versions). `open_runtime`
still runs `migrate.upgrade` on it, which finds it at head; the migrations themselves are tested from an
empty database in `tests/integration/test_db.py`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from functools import cache
from pathlib import Path

import alembic
import pytest
import sqlalchemy

from marketplace import migrate
from marketplace.runtime import Runtime, open_runtime
from marketplace.settings import DATABASE_FILE, Settings
from tests.support.databases import reset_schema

CACHE = Path(tempfile.gettempdir()) / "digit-bounty-test-cache"


@cache
def migrated_sqlite() -> Path:
    """An SQLite file at the newest schema, made once per set of migration scripts (and once per process
    looked up)."""
    h = hashlib.sha256(f"{alembic.__version__} {sqlalchemy.__version__} {sqlite3.sqlite_version}".encode())
    for path in sorted(migrate.MIGRATIONS.rglob("*.py")):
        h.update(str(path.relative_to(migrate.MIGRATIONS)).encode() + b"\0" + path.read_bytes())
    template = CACHE / f"schema-{h.hexdigest()[:16]}.sqlite"
    if not template.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        fd, building = tempfile.mkstemp(dir=CACHE, suffix=".sqlite")
        os.close(fd)
        os.unlink(building)
        migrate.upgrade(f"sqlite:///{building}")
        os.replace(building, template)  # atomic: a concurrent session sees the whole file or none
    return template


def seed_sqlite(home: Path) -> None:
    """Give a home that has no database yet a copy of one already at the newest schema."""
    target = home / DATABASE_FILE
    if target.exists() or (home.exists() and not home.is_dir()):
        return
    try:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_sqlite(), target)
    except OSError:
        return  # the runtime migrates this home itself, or says why it cannot


def settings_for(home: Path, database_url: str | None = None, **extra: object) -> Settings:
    """Test settings under `home` (no .env file read); every request in a test comes from one client, so the
    rate limit is raised unless the test sets it (the limit has its own test)."""
    extra.setdefault("rate_limit_per_minute", 100_000)
    if database_url is None:
        seed_sqlite(home)
    return Settings(_env_file=None, home=home, database_url=database_url, **extra)  # type: ignore[arg-type, call-arg]


def runtime_on(backend: str, request: pytest.FixtureRequest, tmp_path: Path, **extra: object) -> Runtime:
    """A runtime under `tmp_path` on SQLite, or on a freshly emptied and migrated PostgreSQL database."""
    url = None
    if backend == "postgresql":
        url = reset_schema(request.getfixturevalue("postgres"))
        migrate.upgrade(url)
    return open_runtime(settings_for(tmp_path / "home", url, **extra))
