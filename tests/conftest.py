from __future__ import annotations

import pytest

from model.artifact import ModelArtifact, load_artifact
from model.data import Mnist, load_mnist


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    return load_mnist()


@pytest.fixture(scope="session")
def shipped() -> ModelArtifact:
    return load_artifact()
