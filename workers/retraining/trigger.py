"""The count trigger: a run once ``retrain_after_images`` new accepted images arrived (beat checks every minute)."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from marketplace.runtime import Runtime
from marketplace.schema import RetrainRun, RetrainStatus, RetrainTrigger, ReviewStatus, TrainingImage
from workers.retraining.result import RetrainResult
from workers.retraining.run import retrain

log = logging.getLogger(__name__)
FINISHED = (RetrainStatus.SUCCEEDED, RetrainStatus.REJECTED, RetrainStatus.FAILED)


def accepted_since_last_run(rt: Runtime) -> int:
    """Accepted images (neither duplicates nor excluded) stored after the snapshot of the last finished run.

    Any finished run counts, not only a succeeded one: after a rejection or a failure the same images would
    only give the same result, so the count starts again (the schedule still retries). "After the snapshot"
    rather than "after the run finished": images that arrived while a run trained were not in it, so they
    count. The snapshot records the highest training-image id it read; ids only grow.
    """
    with rt.session() as session:
        seen = 0
        for metrics in session.scalars(select(RetrainRun.metrics).where(RetrainRun.status.in_(FINISHED))
                                       .order_by(RetrainRun.id.desc())):
            if metrics and "data_snapshot" in metrics:  # a run that failed before its snapshot read nothing
                seen = int(metrics["data_snapshot"]["seen_up_to_id"])
                break
        return int(session.scalar(select(func.count(TrainingImage.id)).where(
            TrainingImage.id > seen, TrainingImage.duplicate_of.is_(None),
            TrainingImage.review != ReviewStatus.EXCLUDED)) or 0)


def maybe_retrain(rt: Runtime) -> RetrainResult | None:
    """Retrain (trigger "count") once ``retrain_after_images`` new accepted images arrived; else None."""
    waiting = accepted_since_last_run(rt)
    if waiting < rt.settings.retrain_after_images:
        log.debug("%d new accepted images, retraining at %d", waiting, rt.settings.retrain_after_images)
        return None
    return retrain(rt, RetrainTrigger.COUNT)


__all__ = ["accepted_since_last_run", "maybe_retrain"]
