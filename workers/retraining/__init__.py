"""Retraining: accepted images make the next model, which replaces the judge of every bounty if the gate lets it.

One concern per module: `lease` (one run at a time), `snapshot` (the data a run uses), `recipe` (the
candidate recipes and the choice on validation), `training` (the candidates trained in a child process:
TensorFlow never enters the caller's process), `judge`
(champion against challenger), `run` (a run top to bottom and its bookkeeping), `result` (what a run
returns), `trigger` (the count trigger). Results are typed: `RetrainResult`, `JudgeVerdict`, `SnapshotRecord`.
"""

from workers.retraining.judge import Champion, Check, JudgeVerdict, Scores, find_champion, judge, scores
from workers.retraining.lease import LEASE_KEY, LEASE_SECONDS, Lease
from workers.retraining.recipe import Recipe, Validation, candidates, choose
from workers.retraining.result import Redeployed, RetrainResult, SkippedBounty
from workers.retraining.run import retrain
from workers.retraining.snapshot import Snapshot, SnapshotRecord, take_snapshot
from workers.retraining.training import save_challenger
from workers.retraining.trigger import accepted_since_last_run, maybe_retrain

__all__ = ["LEASE_KEY", "LEASE_SECONDS", "Champion", "Check", "JudgeVerdict", "Lease", "Redeployed", "RetrainResult",
           "Scores", "SkippedBounty", "Snapshot", "SnapshotRecord", "accepted_since_last_run", "candidates",
           "choose", "Recipe", "Validation",
           "find_champion", "judge", "maybe_retrain", "retrain", "save_challenger", "scores", "take_snapshot"]
