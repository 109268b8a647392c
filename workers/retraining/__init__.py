"""Retraining: accepted images make the next model, which replaces the judge of every bounty if it is no worse.

One concern per module: `lease` (one run at a time), `snapshot` (the data a run uses), `training` (the
recipe, and the training itself in a child process: TensorFlow never enters the caller's process), `judge`
(champion against challenger), `run` (a run top to bottom and its bookkeeping), `result` (what a run
returns), `trigger` (the count trigger). Results are typed: `RetrainResult`, `JudgeVerdict`, `SnapshotRecord`.
"""

from workers.retraining.judge import Champion, Check, JudgeVerdict, Scores, find_champion, judge, scores
from workers.retraining.lease import LEASE_KEY, LEASE_SECONDS, Lease
from workers.retraining.result import Redeployed, RetrainResult, SkippedBounty
from workers.retraining.run import retrain
from workers.retraining.snapshot import Snapshot, SnapshotRecord, take_snapshot
from workers.retraining.training import choose_config, save_challenger
from workers.retraining.trigger import accepted_since_last_run, maybe_retrain

__all__ = ["LEASE_KEY", "LEASE_SECONDS", "Champion", "Check", "JudgeVerdict", "Lease", "Redeployed", "RetrainResult",
           "Scores", "SkippedBounty", "Snapshot", "SnapshotRecord", "accepted_since_last_run", "choose_config",
           "find_champion", "judge", "maybe_retrain", "retrain", "save_challenger", "scores", "take_snapshot"]
