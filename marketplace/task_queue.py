"""The workers' task queue as the service sees it: its name and how many tasks wait in it.

The service core never imports the workers (it enqueues by task name), so the queue's name lives here and
`workers.app` takes it from here. With Redis the depth is the queue's list lengths (kombu keeps one list per
priority step); in the embedded mode it is the in-memory broker's queue in this process, read from kombu's
memory transport (a class-level table: cheap, and empty in a process that runs no embedded workers).
"""

from __future__ import annotations

from redis import Redis

from marketplace.settings import Settings

TASK_QUEUE = "bounty"
PRIORITY_SEPARATOR, PRIORITY_STEPS = "\x06\x16", (3, 6, 9)  # kombu's Redis transport: queue names per priority


def queue_depth(settings: Settings) -> int:
    """Tasks waiting for a worker (taken ones, running or reserved, not counted)."""
    if settings.redis_url is None:
        from kombu.transport.memory import Channel

        queue = Channel.queues.get(TASK_QUEUE)
        return 0 if queue is None else int(queue.qsize())
    keys = [TASK_QUEUE, *(f"{TASK_QUEUE}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)]
    with Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2) as redis:
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return sum(int(n) for n in pipe.execute())


__all__ = ["TASK_QUEUE", "queue_depth"]
