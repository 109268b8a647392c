"""Celery tasks: thin, named, taking ids and plain JSON, calling plain functions tests can call directly.

Each is idempotent (delivery is at least once): persisting is keyed by the spend, retraining takes a
lease so runs never overlap. Only transient failures retry, with backoff and a cap.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from marketplace.chain.errors import ChainUnavailable
from marketplace.errors import DatabaseUnavailable
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import RetrainTrigger
from marketplace.settings import get_settings
from workers.app import app
from workers.persistence import persist_accepted, persist_confirmed

TRANSIENT = (OperationalError, DatabaseUnavailable, ChainUnavailable, RedisConnectionError, ConnectionError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 120, "retry_jitter": True,
         "max_retries": 8}
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """One Runtime per worker process (the embedded mode shares the service's, see `use_runtime`)."""
    global _runtime
    if _runtime is None:
        _runtime = open_runtime(get_settings())
    return _runtime


def use_runtime(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def forget_runtime() -> None:
    global _runtime
    _runtime = None


@app.task(name="bounty.persist_accepted", **RETRY)
def persist_accepted_task(submission_id: int) -> int | None:
    """Store a confirmed submission's image for retraining (once per spend, however often delivered)."""
    return persist_accepted(runtime(), submission_id)


@app.task(name="bounty.persist_confirmed", **RETRY)
def persist_confirmed_task() -> int:
    """Sweep: store every confirmed image that no task stored yet (an enqueue lost with Redis down)."""
    return persist_confirmed(runtime())


@app.task(name="bounty.retrain", **RETRY)
def retrain_task(trigger: str = "manual") -> dict[str, Any]:
    from workers.retraining import retrain

    return retrain(runtime(), RetrainTrigger(trigger))


@app.task(name="bounty.maybe_retrain", **RETRY)
def maybe_retrain_task() -> dict[str, Any] | None:
    from workers.retraining import maybe_retrain

    return maybe_retrain(runtime())
