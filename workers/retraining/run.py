"""One retraining run, top to bottom, recorded in a ``retrain_runs`` row (queued -> running -> succeeded,
rejected or failed; the metrics JSON grows stage by stage, so a failed run shows how far it got):

1. **lock**: the lease (`workers.retraining.lease`); a second run while one holds it returns "skipped" and
   writes nothing. The next run marks a crashed holder's run failed ("abandoned").
2. **data**: the snapshot (`workers.retraining.snapshot`). The 10,000 MNIST test images are never trained on.
3. **train**: the candidate recipes (`workers.retraining.recipe`), trained and chosen on validation in a
   child process (`workers.retraining.training`); the challenger is saved under ``{home}/models/{sha[:12]}/``
   with its lineage.
4. **judge**: the gate (`workers.retraining.judge`): the held-out crowd images, MNIST test overall and per
   digit, and the script against its reference. A challenger that fails a check is *rejected*: nothing is
   deployed. Every check is recorded with its numbers.
5. **deploy**: the challenger is registered once (its `models` row: from then on it is that row's id and
   hash) and every active bounty is migrated into a contract it judges, one owner transaction per bounty. If
   a migration fails the run is *failed* and no further bounty is migrated; the bounties already migrated
   stay so (each migration is complete and consistent on its own), and the result lists them.

A run that fails before step 5 deploys nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from marketplace.bounties import redeploy
from marketplace.errors import BountyClosed
from marketplace.lineage_plot import plot_beside_newest_quietly
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    RetrainRun,
    RetrainStatus,
    RetrainTrigger,
)
from model.artifact import ModelArtifact
from model.data import Mnist, load_mnist
from workers.errors import RetrainError
from workers.retraining.judge import Champion, find_champion, judge
from workers.retraining.lease import Lease
from workers.retraining.recipe import candidates
from workers.retraining.result import SKIPPED, Redeployed, RetrainResult, SkippedBounty
from workers.retraining.snapshot import take_snapshot
from workers.retraining.training import save_challenger, train_challenger

log = logging.getLogger(__name__)


class _Run:
    """The ``retrain_runs`` row of one run and the result `retrain` returns, filled in stage by stage."""

    def __init__(self, rt: Runtime, trigger: RetrainTrigger, champion: Champion) -> None:
        self.rt = rt
        self.metrics: dict[str, Any] = {"champion": {"version": champion.version,
                                                     "weights_sha256": champion.weights_sha256}}
        with rt.session() as session:
            row = RetrainRun(status=RetrainStatus.QUEUED, trigger=trigger, base_model_id=champion.model_id)
            session.add(row)
            session.flush()
            self.id = row.id
        self.result = RetrainResult(status=str(RetrainStatus.QUEUED), trigger=str(trigger), run_id=self.id,
                                    base_model_version=champion.version, base_weights_sha256=champion.weights_sha256)
        self.redeployed: list[Redeployed] = []
        self.skipped: list[SkippedBounty] = []

    def start(self) -> None:
        self._write(status=RetrainStatus.RUNNING, started_at=datetime.now(UTC))

    def record(self, **metrics: Any) -> None:
        self.metrics.update(metrics)
        self._write()

    def update(self, **fields: Any) -> None:
        self.result = replace(self.result, **fields)

    def moved(self, entry: Redeployed | SkippedBounty) -> None:
        if isinstance(entry, Redeployed):
            self.redeployed.append(entry)
        else:
            self.skipped.append(entry)
        self.record(redeployed=[asdict(r) for r in self.redeployed], skipped_bounties=[asdict(s) for s in self.skipped])

    def finish(self, status: RetrainStatus, message: str | None = None) -> RetrainResult:
        self._write(status=status, error=message, finished_at=datetime.now(UTC))
        log.info("retrain run %d %s%s", self.id, status, f": {message}" if message else "")
        rejected = status == RetrainStatus.REJECTED
        return replace(self.result, status=str(status), redeployed=tuple(self.redeployed),
                       skipped_bounties=tuple(self.skipped), metrics=json.loads(json.dumps(self.metrics)),
                       reason=message if rejected else None, error=None if rejected else message)

    def _write(self, **columns: Any) -> None:
        with self.rt.session() as session:
            row = session.get(RetrainRun, self.id)
            assert row is not None  # we created it, and runs are never deleted
            for name, value in columns.items():
                setattr(row, name, value)
            row.metrics = json.loads(json.dumps(self.metrics))  # a new object, so the JSON column is written


def retrain(rt: Runtime, trigger: RetrainTrigger, *, data: Mnist | None = None) -> RetrainResult:
    """Run one whole retraining cycle (see the module docstring). `data` is MNIST already loaded (tests
    share theirs). Failures are recorded in the run and returned, not raised: a rerun would only repeat them.
    """
    lease = Lease(rt.engine)
    if not lease.acquire():
        holder = lease.holder() or {}
        log.info("retrain skipped: run lease held by %s pid %s", holder.get("host"), holder.get("pid"))
        return RetrainResult(status=SKIPPED, trigger=str(trigger),
                             reason=f"another retraining run holds the lease until {_when(holder.get('expires'))}")
    try:
        lease.keep_alive()
        _abandon_stale_runs(rt)
        try:
            champion = find_champion(rt)
        except Exception as exc:  # no models row to hang a run on: the configured artifact is unusable
            log.exception("retrain failed before it could be recorded")
            return RetrainResult(status=str(RetrainStatus.FAILED), trigger=str(trigger), error=_describe(exc))
        run = _Run(rt, trigger, champion)
        try:
            return _cycle(rt, run, lease, champion, data)
        except Exception as exc:
            log.exception("retrain run %d failed", run.id)
            return run.finish(RetrainStatus.FAILED, _describe(exc))
    finally:
        lease.release()


def _cycle(rt: Runtime, run: _Run, lease: Lease, champion: Champion, data: Mnist | None) -> RetrainResult:
    run.start()
    settings = rt.settings
    recipes = candidates(settings)
    run.record(recipes=[r.to_json() for r in recipes])
    old = rt.artifact(champion.artifact_path)
    data = data if data is not None else load_mnist()
    snapshot = take_snapshot(rt, data)
    record = snapshot.record
    run.record(data_snapshot=record.to_json(),
               images={"trained": record.accepted_images, "validation": record.validation_images,
                       "held_out": record.holdout_images, **record.left_out})
    log.info("retrain run %d: %d candidate recipes on %d accepted images (%d held out)", run.id, len(recipes),
             record.accepted_images, record.holdout_images)
    trained = train_challenger(data, snapshot, recipes, champion.artifact_path, settings)
    run.record(recipe=trained.selection, images={**run.metrics["images"], "weight": trained.recipe.weight,
                                                 "epochs": trained.recipe.epochs, "scratch": trained.recipe.scratch})
    lease.check()
    if trained.challenger.weights_sha256 == champion.weights_sha256:
        return run.finish(RetrainStatus.REJECTED, "the challenger has the champion's weights: nothing to deploy")
    verdict = judge(old, trained.challenger, data, snapshot, settings)
    challenger = replace(trained.challenger, version=champion.next_version, parent_sha256=champion.weights_sha256,
                         metrics={**trained.challenger.metrics, **verdict.figures(), "recipe": trained.recipe.to_json(),
                                  "data_snapshot": record.to_json()})
    path = save_challenger(challenger, settings.home)
    run.update(weights_sha256=challenger.weights_sha256, artifact_path=str(path))
    run.record(challenger={"version": challenger.version, "weights_sha256": challenger.weights_sha256,
                           "artifact_path": str(path)}, checks=verdict.checks_json(), **verdict.figures())
    if not verdict.passed:
        return run.finish(RetrainStatus.REJECTED, "; ".join(verdict.reasons))
    lease.renew()  # still ours before anything is deployed
    model_id, sha256 = _register(rt, run, challenger, str(path), record.to_json())
    _redeploy_all(rt, run, lease, model_id, sha256)
    finished = run.finish(RetrainStatus.SUCCEEDED)
    plot_beside_newest_quietly(rt)  # the lineage PNG beside the new model; a failure is only logged
    return finished


def _register(rt: Runtime, run: _Run, challenger: ModelArtifact, path: str, snapshot: dict[str, Any]
              ) -> tuple[int, str]:
    """The challenger's `models` row, created once, at the version its artifact carries; its id and hash."""
    with rt.session() as session:
        model = rt.register_model(session, path, version=challenger.version)
        if model.weights_sha256 != challenger.weights_sha256:
            raise RetrainError(f"{path} no longer holds the judged challenger {challenger.weights_sha256[:12]}")
        model.data_snapshot = snapshot
        row = session.get(RetrainRun, run.id)
        assert row is not None
        row.new_model_id = model.id
        registered = model.id, model.version, model.weights_sha256
    run.update(model_id=registered[0], model_version=registered[1])
    log.info("retrain run %d: model version %d registered", run.id, registered[1])
    return registered[0], registered[2]


def _redeploy_all(rt: Runtime, run: _Run, lease: Lease, model_id: int, sha256: str) -> None:
    """Migrate each active bounty, in id order; stop at the first failure (see the module docstring)."""
    for bounty_id in _bounties_to_move(rt, sha256):
        lease.renew()
        try:
            moved = redeploy(rt, bounty_id, model_id)
        except BountyClosed as exc:  # exhausted or withdrawn since we listed it: nothing left to move
            run.moved(SkippedBounty(bounty_id, str(exc)))
            continue
        except Exception as exc:
            raise RetrainError(f"redeploying bounty {bounty_id} failed after {len(run.redeployed)} "
                               f"migrated: {_describe(exc)}") from exc
        run.moved(Redeployed(bounty_id, moved.migrate_txid))
        log.info("retrain run %d: bounty %d migrated in %s", run.id, bounty_id, moved.migrate_txid)


def _bounties_to_move(rt: Runtime, sha256: str) -> list[int]:
    """Active bounties whose live contract another model judges than the registered one with this hash."""
    with rt.session() as session:
        return list(session.scalars(
            select(Bounty.id).join(Deployment, Deployment.bounty_id == Bounty.id)
            .join(ModelVersion, ModelVersion.id == Deployment.model_id)
            .where(Bounty.status == BountyStatus.ACTIVE, Deployment.status == DeploymentStatus.ACTIVE,
                   ModelVersion.weights_sha256 != sha256)
            .order_by(Bounty.id)))


def _abandon_stale_runs(rt: Runtime) -> None:
    """Runs left queued or running belong to a holder that died: we hold the lease now, so none is alive."""
    with rt.session() as session:
        stale = session.scalars(select(RetrainRun).where(
            RetrainRun.status.in_([RetrainStatus.QUEUED, RetrainStatus.RUNNING]))).all()
        for row in stale:
            row.status, row.finished_at = RetrainStatus.FAILED, datetime.now(UTC)
            row.error = "abandoned: its worker stopped before finishing"
            log.warning("retrain run %d marked failed: abandoned by a worker that died", row.id)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _when(epoch: Any) -> str:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat() if epoch is not None else "unknown"


__all__ = ["retrain"]
