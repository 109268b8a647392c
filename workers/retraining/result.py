"""What a retraining call returns: plain frozen values, turned into JSON only at the Celery edge (`to_json`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SKIPPED = "skipped"  # the status of a call that found the lease held: no run, nothing written


@dataclass(frozen=True)
class Redeployed:
    bounty_id: int
    migrate_txid: str


@dataclass(frozen=True)
class SkippedBounty:
    """A bounty listed for migration that closed (exhausted or withdrawn) before its turn."""

    bounty_id: int
    reason: str


@dataclass(frozen=True)
class RetrainResult:
    """What one call of `retrain` did. `status` is a run's final status (succeeded, rejected, failed) or
    "skipped"; `reason` says why a challenger was rejected or a call skipped, `error` why a run failed;
    `metrics` is the run's recorded JSON (config, data snapshot, checks and figures, redeploys)."""

    status: str
    trigger: str
    run_id: int | None = None
    base_model_version: int | None = None
    base_weights_sha256: str | None = None
    model_id: int | None = None  # the challenger's `models` row, once registered
    model_version: int | None = None
    weights_sha256: str | None = None
    artifact_path: str | None = None
    reason: str | None = None
    error: str | None = None
    redeployed: tuple[Redeployed, ...] = ()
    skipped_bounties: tuple[SkippedBounty, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (what the Celery task returns)."""
        return json.loads(json.dumps(asdict(self)))


__all__ = ["SKIPPED", "Redeployed", "RetrainResult", "SkippedBounty"]
