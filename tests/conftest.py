"""Fixtures every folder shares, and the markers derived from them (see README, Tests)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from marketplace.chain import LocalChain
from model.artifact import ModelArtifact, load_artifact
from model.data import Mnist
from tests.support import reference
from tests.support.databases import fresh_database

# The MNIST novelty index takes about 30 s to build: every test (and process it starts) shares one built file.
os.environ.setdefault("BOUNTY_NOVELTY_CACHE_DIR", str(Path(tempfile.gettempdir()) / "digit-bounty-test-cache"))


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """MNIST, read-only (loaded once per process: `tests/support/reference.py`)."""
    return reference.mnist()


@pytest.fixture(scope="session")
def shipped() -> ModelArtifact:
    return load_artifact()


@pytest.fixture(scope="session")
def sevens(shipped: ModelArtifact, mnist: Mnist) -> np.ndarray:
    """MNIST test images the shipped model reads as 7, widest margin first."""
    read = reference.reading_of_test_set(shipped.integer)
    found = np.where(read.labels == 7)[0]
    return read.x[found[np.argsort(-read.margins[found])]]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LocalChain]:
    """A fresh embedded dev chain."""
    with LocalChain(tmp_path / "chain.sqlite") as local:
        yield local


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session. An unreachable server fails the tests that need
    it: it is never a reason to skip."""
    with fresh_database() as url:
        yield url


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the `postgres` fixture is marked `postgres` (tests that reach the database through a
    parametrised fixture carry the mark on that parameter)."""
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
