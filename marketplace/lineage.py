"""The value of the data: for each model version, the images bought for it, what they cost, and what it gained.

A retraining run records in its data snapshot the highest training-image id it read (`seen_up_to_id`), and the
model it makes carries that snapshot. The images bought *for* a version are the ones it was the first to read:
ids above every earlier version's `seen_up_to_id`, up to its own. The shipped model read none; images kept since
the newest version read its data are `pending`. So the versions and `pending` split the kept images between them,
and their sats add up to the books: the payouts and fees of the spends that paid for those images.

The held-out gain is read from the run that made the version (its crowd held-out accuracy after, less before, in
points); runs recorded before the crowd gate, and the shipped model, have none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.runtime import Runtime
from marketplace.schema import Deployment, DeploymentStatus, ModelVersion, Payout, RetrainRun, TrainingImage
from marketplace.views import LineageSpend, LineageVersion, ModelLineage

PLOT_FILE = "lineage.png"  # written beside a model's artifact (`marketplace.lineage_plot`)


def model_lineage(rt: Runtime) -> ModelLineage:
    """Every model version with the images bought for it and what it gained, the images not yet used, the totals.
    The configured model is registered on first sight, as every command that uses it does."""
    with rt.session() as session:
        rt.register_model(session)
        return lineage_in(session)


def lineage_in(session: Session) -> ModelLineage:
    models = session.scalars(select(ModelVersion).order_by(ModelVersion.version)).all()
    made_by: dict[int, dict[str, Any]] = {}  # model id -> metrics of the run that made it (the latest, if several)
    judged_as_champion: dict[int, list[dict[str, Any]]] = {}  # model id -> metrics of runs that started from it
    for row in session.scalars(select(RetrainRun).order_by(RetrainRun.id)):
        if row.new_model_id is not None:
            made_by[row.new_model_id] = row.metrics or {}
        judged_as_champion.setdefault(row.base_model_id, []).append(row.metrics or {})
    deployed = set(session.scalars(select(Deployment.model_id).where(Deployment.status == DeploymentStatus.ACTIVE)))

    versions, read_up_to = [], 0
    for model in models:
        # max: a version never claims images an earlier one already read
        upper = max(read_up_to, _seen_up_to(model.data_snapshot))
        spend = _spend(session, read_up_to, upper)
        read_up_to = upper
        run = made_by.get(model.id, {})
        before, after = _figure(run, "crowd_holdout_accuracy_before"), _figure(run, "crowd_holdout_accuracy_after")
        gain = round((after - before) * 100, 6) if before is not None and after is not None else None
        plot = Path(model.artifact_path) / PLOT_FILE
        versions.append(LineageVersion(
            version=model.version, weights_sha256=model.weights_sha256, parent_sha256=model.parent_sha256,
            deployed=model.id in deployed, created_at=model.created_at.isoformat(), **spend.model_dump(),
            mnist_test_accuracy=_mnist_test_accuracy(model, run, judged_as_champion.get(model.id, [])),
            crowd_holdout_accuracy_before=before, crowd_holdout_accuracy_after=after, holdout_gain_points=gain,
            sats_per_point=round(spend.sats_spent / gain, 2) if gain is not None and gain > 0 else None,
            plot=str(plot) if plot.is_file() else None))
    pending = _spend(session, read_up_to, None)
    totals: list[LineageVersion | LineageSpend] = [*versions, pending]
    return ModelLineage(versions=versions, pending=pending, totals=LineageSpend(
        images_bought=sum(v.images_bought for v in totals), sats_spent=sum(v.sats_spent for v in totals),
        payout_sats=sum(v.payout_sats for v in totals), fee_sats=sum(v.fee_sats for v in totals)))


def _spend(session: Session, after_id: int, up_to_id: int | None) -> LineageSpend:
    """The kept images with ids in (after_id, up_to_id] and the payouts and fees of the spends that bought them."""
    query = (select(func.count(TrainingImage.id), func.coalesce(func.sum(Payout.satoshis), 0),
                    func.coalesce(func.sum(Payout.fee_sats), 0))
             .outerjoin(Payout, Payout.submission_id == TrainingImage.submission_id)
             .where(TrainingImage.id > after_id))
    if up_to_id is not None:
        query = query.where(TrainingImage.id <= up_to_id)
    images, payouts, fees = session.execute(query).one()
    payouts, fees = int(payouts), int(fees)  # PostgreSQL sums bigints as numeric
    return LineageSpend(images_bought=int(images), sats_spent=payouts + fees, payout_sats=payouts, fee_sats=fees)


def _seen_up_to(snapshot: dict[str, Any] | None) -> int:
    value = (snapshot or {}).get("seen_up_to_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mnist_test_accuracy(model: ModelVersion, made_by: dict[str, Any], as_champion: list[dict[str, Any]]
                         ) -> float | None:
    """Measured when the version was judged as a challenger, else as it stands in its artifact's metrics, else
    when a later run judged it as the champion (the shipped model's only measurement on the test split).
    Runs recorded before the gate's flat keys nest it under `test`."""
    candidates = [_figure(made_by, "mnist_test_accuracy"), _figure(made_by, "test", "challenger", "accuracy"),
                  _figure(model.metrics, "mnist_test_accuracy")]
    for metrics in as_champion:
        candidates += [_figure(metrics, "mnist_test_accuracy_before"), _figure(metrics, "test", "champion", "accuracy")]
    return next((c for c in candidates if c is not None), None)


def _figure(metrics: dict[str, Any] | None, *path: str) -> float | None:
    """A number at `path` in a metrics JSON, or None if any step is missing or null (older runs lack keys)."""
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


__all__ = ["PLOT_FILE", "lineage_in", "model_lineage"]
