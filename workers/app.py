"""The Celery app: Redis as broker in production, an in-memory broker inside the service process in the
embedded default. Tasks are acknowledged late and requeued when their worker dies, so every task is
written to be idempotent (see workers.tasks).

    celery -A workers.app worker     # production worker
    celery -A workers.app beat       # production scheduler
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.exceptions import SecurityWarning
from celery.signals import setup_logging, worker_process_init

from marketplace.logs import configure_logging
from marketplace.settings import Settings, get_settings
from marketplace.task_queue import TASK_QUEUE
from workers.context import forget_runtime

PERSIST_SWEEP_SECONDS = 60.0  # how often beat re-offers confirmed images that no task stored yet
COUNT_CHECK_SECONDS = 60.0  # how often beat checks whether enough new images arrived to retrain


# The in-memory transport polls, one task per worker thread per poll: kombu's default (1 s) would cap the
# embedded workers at two tasks a second. Redis blocks on its queue instead, so this is for memory only.
MEMORY_POLL_SECONDS = 0.05
# At one task per thread per poll, 2 threads capped the embedded workers at 40 tasks a second, and a retraining
# holds its thread for minutes: the stored images fell behind the claims (embedded pool, 8 clients, this machine
# shared with another job: 31 accepted a second end to end, median 7 s; with 8 threads 45 a second, 1.5 s).
EMBEDDED_THREADS = 8


def celery_config(settings: Settings) -> dict[str, Any]:
    transport: dict[str, float] = {"visibility_timeout": settings.task_visibility_timeout}
    if settings.embedded:
        transport["polling_interval"] = MEMORY_POLL_SECONDS
    return {
        "broker_url": settings.redis_url or "memory://localhost/",
        "task_acks_late": True,  # a task whose worker is killed runs again...
        "task_reject_on_worker_lost": True,  # ...at once when only the pool child died
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_default_queue": TASK_QUEUE,
        "broker_connection_retry_on_startup": True,
        # a whole worker killed: its tasks come back after this many seconds (longer than any task runs)
        "broker_transport_options": transport,
        "beat_schedule": {
            "retrain-on-schedule": {"task": "bounty.retrain", "schedule": settings.retrain_every_seconds,
                                    "args": ("schedule",)},
            "retrain-on-count": {"task": "bounty.maybe_retrain", "schedule": COUNT_CHECK_SECONDS},
            "persist-sweep": {"task": "bounty.persist_confirmed", "schedule": PERSIST_SWEEP_SECONDS},
        },
        "worker_hijack_root_logger": False,
        "beat_schedule_filename": str(settings.home / "celerybeat-schedule"),  # beat's state: with the rest
    }


def make_celery(settings: Settings) -> Celery:
    celery = Celery("digit_bounty", include=["workers.tasks"])
    celery.conf.update(celery_config(settings))
    return celery


app = make_celery(get_settings())


@setup_logging.connect
def _logging(**_kwargs: object) -> None:
    """`celery worker` and `celery beat` log like every other process (BOUNTY_LOG_LEVEL, BOUNTY_LOG_FORMAT). Inside
    a process that set up its logging already (`bounty serve`'s embedded workers, a test) nothing changes."""
    if not logging.getLogger().handlers:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)


@worker_process_init.connect
def _after_fork(**_kwargs: object) -> None:
    """A forked pool child must not share the parent's database connections."""
    forget_runtime()


def start_embedded(settings: Settings) -> Callable[[], None]:
    """Run a worker (threads) and beat inside this process, on the in-memory broker; returns `stop`."""
    from celery.beat import Service

    # The service's settings, not those read at import: `bounty demo` runs in its own BOUNTY_HOME.
    celery = app
    celery.conf.update(celery_config(settings))
    # Celery warns against running a worker as root (its tasks would run as root). Here the tasks are the
    # service's own, run by the service's own process, which the operator started with the privileges it has.
    warnings.filterwarnings("ignore", message="You're running the worker with superuser privileges",
                            category=SecurityWarning)
    celery.set_default()
    celery.set_current()
    worker = celery.Worker(pool="threads", concurrency=EMBEDDED_THREADS, loglevel="WARNING", quiet=True,
                           without_heartbeat=True, without_mingle=True, without_gossip=True,
                           hostname="embedded@localhost", redirect_stdouts=False)  # its output stays this process's
    beat = Service(celery, max_interval=5)
    threads = [threading.Thread(target=worker.start, name="celery-worker", daemon=True),
               threading.Thread(target=beat.start, name="celery-beat", daemon=True)]
    for thread in threads:
        thread.start()

    def stop() -> None:
        beat.stop()
        worker.stop(in_sighandler=False)

    return stop
