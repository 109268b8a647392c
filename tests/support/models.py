"""Models for tests that need more than the shipped one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from marketplace.runtime import Runtime
from model.artifact import ModelArtifact


def variant_artifact(shipped: ModelArtifact, where: Path, k: int) -> Path:
    """A model a little different from the shipped one (digit 0's bias k higher), so its own script; saved,
    not registered."""
    b2 = shipped.integer.b2.copy()
    b2[0] += k
    variant = replace(shipped, integer=replace(shipped.integer, b2=b2), parent_sha256=shipped.weights_sha256)
    return variant.save(where / f"variant-{k}")


def register_variants(rt: Runtime, shipped: ModelArtifact, where: Path, count: int) -> list[int]:
    """`count` variants (`variant_artifact`), registered: versions 2, 3, ..."""
    with rt.session() as session:
        return [rt.register_model(session, variant_artifact(shipped, where, k)).id for k in range(1, count + 1)]
