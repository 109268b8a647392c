"""Celery tasks: thin, named, taking ids and plain JSON, calling plain functions tests can call directly.

Each is idempotent (delivery is at least once): persisting is keyed by the spend, retraining takes a
lease so runs never overlap. Only transient failures retry, with backoff and a cap. Results leave as plain
JSON: the typed values of the functions they call are turned into it here, at the edge.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from marketplace.chain.errors import ChainUnavailable
from marketplace.errors import DatabaseUnavailable
from marketplace.schema import RetrainTrigger
from workers.app import app
from workers.context import runtime, use_runtime
from workers.persistence import persist_accepted, persist_confirmed

TRANSIENT = (OperationalError, DatabaseUnavailable, ChainUnavailable, RedisConnectionError, ConnectionError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 120, "retry_jitter": True,
         "max_retries": 8}
# Time limits, per task (seconds): at the soft one the task gets SoftTimeLimitExceeded (retraining records its run
# as failed, kills its training child and frees the lease); at the hard one the worker kills the pool child. A task
# past its limit is acknowledged, not run again. Enforced by the prefork pool (production workers); the embedded
# workers' thread pool cannot interrupt a thread and ignores them. Retraining takes 1.5 to a few minutes here
# (README, Retraining); both stay below the Redis visibility timeout (1 h), after which a task would run twice.
PERSIST_LIMITS = {"soft_time_limit": 60, "time_limit": 90}  # one image, or a sweep of those no task stored
RETRAIN_LIMITS = {"soft_time_limit": 40 * 60, "time_limit": 45 * 60}  # a whole cycle, training child included


@app.task(name="bounty.persist_accepted", **RETRY, **PERSIST_LIMITS)
def persist_accepted_task(submission_id: int) -> int | None:
    """Store a confirmed submission's image for retraining (once per spend, however often delivered)."""
    return persist_accepted(runtime(), submission_id)


@app.task(name="bounty.persist_confirmed", **RETRY, **PERSIST_LIMITS)
def persist_confirmed_task() -> int:
    """Sweep: store every confirmed image that no task stored yet (an enqueue lost with Redis down)."""
    return persist_confirmed(runtime())


@app.task(name="bounty.retrain", **RETRY, **RETRAIN_LIMITS)
def retrain_task(trigger: str = "manual") -> dict[str, Any]:
    """One retraining run (its training step in a child process: see `workers.retraining.training`)."""
    from workers.retraining import retrain

    return retrain(runtime(), RetrainTrigger(trigger)).to_json()


@app.task(name="bounty.maybe_retrain", **RETRY, **RETRAIN_LIMITS)  # it may run one
def maybe_retrain_task() -> dict[str, Any] | None:
    from workers.retraining import maybe_retrain

    result = maybe_retrain(runtime())
    return result.to_json() if result is not None else None


# `use_runtime` stays importable from here for the callers that wire the embedded mode (it lives in
# workers.context, which workers.app uses too without importing the tasks).
__all__ = ["maybe_retrain_task", "persist_accepted_task", "persist_confirmed_task", "retrain_task", "use_runtime"]
