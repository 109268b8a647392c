"""`bounty retrain` through the workers on Redis: does a worker answer, hand it a run, follow the run it records.

Results are not kept by Celery here (``task_ignore_result``, no result backend), so the run is followed in the
database: the first manual run recorded after the request is ours. A task that ends without recording one
(the lease was held, so it skipped; or it broke before its run existed) is noticed when it is neither waiting
in the queue nor on any worker while no new run appeared.
"""

from __future__ import annotations

import time

from marketplace.errors import ServiceError
from marketplace.retrain_report import FAILED, SKIPPED, manual_run_after, report_without_run, run_report
from marketplace.runtime import Runtime
from marketplace.settings import Settings
from marketplace.views import RetrainReport

WORKERS = "workers"
ANSWER_SECONDS = 1.0  # how long a ping or a query waits for the workers' replies
POLL_SECONDS = 1.0
GONE_POLLS = 2  # polls in a row that must find the task nowhere: a worker may be between taking it and starting


def workers_answer(settings: Settings) -> bool:
    """A Celery worker answers a ping on the configured Redis (False at once when Redis itself does not answer:
    Celery would keep retrying the connection)."""
    import redis

    assert settings.redis_url is not None  # only asked with Redis configured
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError:
        return False
    from workers.app import app

    return bool(app.control.ping(timeout=ANSWER_SECONDS))


def send_retrain() -> str:
    """Queue one manual run for the workers; the task's id."""
    from marketplace.schema import RetrainTrigger
    from workers.tasks import retrain_task

    return str(retrain_task.delay(str(RetrainTrigger.MANUAL)).id)


def follow(rt: Runtime, task_id: str, after_run_id: int, timeout: float) -> RetrainReport:
    """Wait for the run task `task_id` records (the first manual run above `after_run_id`) to finish."""
    deadline = time.monotonic() + timeout
    lease_was_held = _lease_held(rt)
    nowhere, found = 0, None
    while time.monotonic() < deadline:
        found = manual_run_after(rt, after_run_id)
        if found is not None and found[1]:
            return run_report(rt, found[0], WORKERS)
        if found is None:
            lease_was_held = lease_was_held or _lease_held(rt)
            nowhere = nowhere + 1 if _nowhere(task_id) else 0
            if nowhere >= GONE_POLLS:
                if lease_was_held:
                    return report_without_run(SKIPPED, "another retraining run held the lease", WORKERS)
                return report_without_run(FAILED, "the workers took the request but recorded no run (their log "
                                          "says why)", WORKERS)
        time.sleep(POLL_SECONDS)
    where = f"run {found[0]}" if found is not None else f"task {task_id}"
    raise ServiceError(f"the retraining ({where}) did not finish within {timeout:.0f} s; it goes on on the workers")


def _lease_held(rt: Runtime) -> bool:
    from workers.retraining.lease import Lease

    holder = Lease(rt.engine).holder()
    return holder is not None and float(holder.get("expires", 0)) > time.time()


def _nowhere(task_id: str) -> bool:
    """The task is on no worker (active, reserved or waiting for a retry) and nothing waits in its queue."""
    from kombu.exceptions import ChannelError

    from workers.app import app

    replies = app.control.inspect(timeout=ANSWER_SECONDS).query_task(task_id) or {}
    if any(task_id in (reply or {}) for reply in replies.values()):
        return False
    with app.connection_for_read() as conn:
        try:
            queued = conn.default_channel.queue_declare(queue=app.conf.task_default_queue, passive=True).message_count
        except ChannelError:  # Redis keeps no empty list: a queue with nothing in it is "not found"
            return True
    return int(queued) == 0


__all__ = ["WORKERS", "follow", "send_retrain", "workers_answer"]
