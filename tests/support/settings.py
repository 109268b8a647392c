"""Settings for tests that open a runtime in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace import migrate
from marketplace.runtime import Runtime, open_runtime
from marketplace.settings import Settings
from tests.support.databases import reset_schema


def settings_for(home: Path, database_url: str | None = None, **extra: object) -> Settings:
    """Test settings under `home` (no .env file read); every request in a test comes from one client, so the
    rate limit is raised unless the test sets it (the limit has its own test)."""
    extra.setdefault("rate_limit_per_minute", 100_000)
    return Settings(_env_file=None, home=home, database_url=database_url, **extra)  # type: ignore[arg-type, call-arg]


def runtime_on(backend: str, request: pytest.FixtureRequest, tmp_path: Path, **extra: object) -> Runtime:
    """A runtime under `tmp_path` on SQLite, or on a freshly emptied and migrated PostgreSQL database."""
    url = None
    if backend == "postgresql":
        url = reset_schema(request.getfixturevalue("postgres"))
        migrate.upgrade(url)
    return open_runtime(settings_for(tmp_path / "home", url, **extra))
