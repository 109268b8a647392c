"""Retraining runs as the operator reads them: a `retrain_runs` row turned into a `RetrainReport`.

The service core reads the rows only; the workers write them (`workers.retraining.run`). A run's metrics JSON
grows stage by stage, and its figures have had more than one layout, so every figure is read where it exists
and is None where it does not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from marketplace.errors import NotFound
from marketplace.explorer import linked
from marketplace.runtime import Runtime
from marketplace.schema import RetrainRun, RetrainStatus, RetrainTrigger
from marketplace.views import RetrainRedeploy, RetrainReport

DEPLOYED = "deployed"  # how the operator reads a succeeded run: its model judges the bounties now
SKIPPED = "skipped"
FAILED = str(RetrainStatus.FAILED)
FINISHED = (RetrainStatus.SUCCEEDED, RetrainStatus.REJECTED, RetrainStatus.FAILED)
FIGURES = ("mnist_test_accuracy", "mnist_test_accuracy_before", "crowd_holdout_accuracy_before",
           "crowd_holdout_accuracy_after", "crowd_holdout_images")


def latest_run_id(rt: Runtime) -> int:
    """The highest run id so far (0 before the first run): runs started later have higher ids."""
    with rt.session() as session:
        return int(session.scalar(select(func.max(RetrainRun.id))) or 0)


def manual_run_after(rt: Runtime, run_id: int) -> tuple[int, bool] | None:
    """The first manual run with an id above `run_id`, and whether it finished; None while there is none."""
    with rt.session() as session:
        row = session.execute(select(RetrainRun.id, RetrainRun.status).where(
            RetrainRun.id > run_id, RetrainRun.trigger == RetrainTrigger.MANUAL).order_by(RetrainRun.id)
            .limit(1)).first()
        return (int(row.id), row.status in FINISHED) if row is not None else None


def run_report(rt: Runtime, run_id: int, where: str) -> RetrainReport:
    """The report of run `run_id` as its row stands."""
    with rt.session() as session:
        row = session.get(RetrainRun, run_id)
        if row is None:
            raise NotFound(f"there is no retraining run {run_id}")
        metrics = row.metrics or {}
        status = DEPLOYED if row.status == RetrainStatus.SUCCEEDED else str(row.status)
        rejected = row.status == RetrainStatus.REJECTED
        return linked(RetrainReport(
            status=status, run_id=row.id, version=row.new_model.version if row.new_model else None,
            base_version=row.base_model.version, metrics=figures(metrics), images=images(metrics),
            reasons=gate_reasons(metrics, row.error) if rejected else [],
            redeployed=[RetrainRedeploy(bounty_id=r["bounty_id"], txid=r["migrate_txid"])
                        for r in metrics.get("redeployed", [])],
            error=None if rejected else row.error, where=where), rt.settings)


def report_without_run(status: str, message: str | None, where: str) -> RetrainReport:
    """A call that recorded no run: skipped (`message` says why) or failed before it could record one."""
    skipped = status == SKIPPED
    return RetrainReport(status=status, run_id=None, version=None, base_version=None, metrics=figures({}),
                         images=None, reasons=[message] if skipped and message else [], redeployed=[],
                         error=None if skipped else message, where=where)


def figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: MNIST test accuracy (the challenger's, and the champion's as `_before`) and the
    held-out crowd images' accuracy before and after, with how many there were."""
    found = {name: metrics.get(name) for name in FIGURES}
    # Runs recorded before these figures had top-level keys keep them under "test" and "holdout".
    test, holdout = metrics.get("test") or {}, metrics.get("holdout") or {}
    older = {"mnist_test_accuracy": _accuracy(test, "challenger"),
             "mnist_test_accuracy_before": _accuracy(test, "champion"),
             "crowd_holdout_accuracy_before": _accuracy(holdout, "champion"),
             "crowd_holdout_accuracy_after": _accuracy(holdout, "challenger"),
             "crowd_holdout_images": (holdout.get("challenger") or {}).get("images")}
    return {name: value if value is not None else older[name] for name, value in found.items()}


def images(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """What the run used: trained on, held out, their weight and the epochs (None before its data snapshot)."""
    if isinstance(metrics.get("images"), dict):
        return dict(metrics["images"])
    snapshot = metrics.get("data_snapshot")
    if not snapshot:
        return None
    config = metrics.get("config") or {}
    epochs = config.get("epochs") or config.get("qat_epochs")  # a fine-tuning has no dense epochs, only QAT ones
    return {"trained": snapshot.get("accepted_images"), "held_out": snapshot.get("holdout_images"),
            "weight": snapshot.get("accepted_weight"), "epochs": epochs,
            "left_out": snapshot.get("left_out")}


def gate_reasons(metrics: dict[str, Any], error: str | None) -> list[str]:
    """The gate's failed checks, one sentence each; the run's own message when no check failed (a challenger
    identical to the champion is rejected before the gate)."""
    failed = [f"{check['name']}: {check['detail']}" for check in metrics.get("checks") or [] if not check["passed"]]
    return failed or ([error] if error else [])


def _accuracy(comparison: dict[str, Any], side: str) -> float | None:
    value = (comparison.get(side) or {}).get("accuracy")
    return float(value) if value is not None else None


__all__ = ["DEPLOYED", "FAILED", "SKIPPED", "figures", "gate_reasons", "images", "latest_run_id", "manual_run_after",
           "report_without_run", "run_report"]
