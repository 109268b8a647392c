"""The embedded mode's background services, composed here in the CLI (the service core never imports the
workers): in threads of the serving process, the watcher, the pool keeper, the workers (Celery on an in-memory
broker, with beat) and, on the dev chain, a block miner. `bounty serve` and the demo hand `embedded_services` to
`create_app`."""

from __future__ import annotations

import threading
from collections.abc import Callable

from marketplace.pools import keep_forever
from marketplace.runtime import Runtime
from marketplace.submissions import send_queued
from marketplace.watcher import Watcher


def embedded_services(rt: Runtime) -> Callable[[], None]:
    """Start them; returns `stop`. The workers are imported here, so a `bounty serve` on Redis (which runs
    none of this) never loads them."""
    from workers.app import start_embedded
    from workers.tasks import persist_accepted_task, use_runtime

    use_runtime(rt)
    stop_workers = start_embedded(rt.settings)
    stop = threading.Event()
    watcher = Watcher(rt, on_confirmed=lambda submission_id: persist_accepted_task.delay(submission_id),
                      on_block=lambda: send_queued(rt), keep=False)
    threads = [threading.Thread(target=watcher.run_forever, args=(stop, 0.5), name="watcher", daemon=True),
               threading.Thread(target=keep_forever, args=(rt, stop), name="pool-keeper", daemon=True)]
    for thread in threads:
        thread.start()
    chain = rt.local_chain
    miner = chain.mine_every(rt.settings.block_interval) if chain is not None else None

    def shutdown() -> None:
        stop.set()
        if miner is not None:
            miner.stop()
        for thread in threads:
            thread.join(timeout=10)
        stop_workers()

    return shutdown
