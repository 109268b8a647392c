"""Settings for tests that open a runtime in-process."""

from __future__ import annotations

from pathlib import Path

from marketplace.settings import Settings


def settings_for(home: Path, database_url: str | None = None, **extra: object) -> Settings:
    """Test settings under `home` (no .env file read); every request in a test comes from one client, so the
    rate limit is raised unless the test sets it (the limit has its own test)."""
    extra.setdefault("rate_limit_per_minute", 100_000)
    return Settings(_env_file=None, home=home, database_url=database_url, **extra)  # type: ignore[arg-type, call-arg]
