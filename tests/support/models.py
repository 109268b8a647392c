"""Models for tests that need more than the shipped one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from marketplace.runtime import Runtime
from model.artifact import ModelArtifact


def register_variants(rt: Runtime, shipped: ModelArtifact, where: Path, count: int) -> list[int]:
    """Models a little different from the shipped one (digit 0's bias k higher), each its own script: versions
    2, 3, ..."""
    ids = []
    with rt.session() as session:
        for k in range(1, count + 1):
            b2 = shipped.integer.b2.copy()
            b2[0] += k
            variant = replace(shipped, integer=replace(shipped.integer, b2=b2), parent_sha256=shipped.weights_sha256)
            ids.append(rt.register_model(session, variant.save(where / f"variant-{k}")).id)
    return ids
