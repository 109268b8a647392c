"""`bounty serve` (the HTTP API; in the embedded mode also the watcher, dev-chain miner and workers)
and `bounty daemon` (the watcher alone, for deployments that run it as its own process)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

log = logging.getLogger(__name__)


def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535)] = 8000) -> None:
    """Run the HTTP API and the web page."""
    from marketplace.api import create_app
    from marketplace.api.server import listen, run
    from marketplace.cli.embedded import embedded_services
    from marketplace.runtime import open_runtime

    sock = listen(host, port)  # first: a port in use is said before anything starts
    rt = open_runtime()
    typer.echo(f"digit-bounty on http://{host}:{port}/ (data in {rt.settings.home})", err=True)
    run(create_app(rt, start_background=embedded_services), sock, rt.settings)


def daemon(interval: Annotated[float, typer.Option(min=0.05, help="Seconds between idle polls.")] = 1.0) -> None:
    """Follow the chain and keep the books: record spends, confirmations and reorgs."""
    from marketplace import heartbeat
    from marketplace.pools import keep_forever
    from marketplace.runtime import open_runtime
    from marketplace.submissions import send_queued
    from marketplace.watcher import Watcher

    class BeatingWatcher(Watcher):
        """Touches the heartbeat after each step that got through (`bounty health daemon` reads it)."""

        def run_once(self, limit: int = 200) -> int:
            events = super().run_once(limit)
            heartbeat.beat(pulse)
            return events

    rt = open_runtime()
    pulse = heartbeat.heartbeat_path(rt.settings.home)
    heartbeat.forget(pulse)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"watching the {rt.settings.chain} chain", err=True)

    def hand_over(submission_id: int) -> None:
        from workers.tasks import persist_accepted_task  # confirmed: the workers keep the image

        persist_accepted_task.delay(submission_id)

    keeper = threading.Thread(target=keep_forever, args=(rt, stop), name="pool-keeper", daemon=True)
    keeper.start()  # its own loop: a refill does not wait behind a watcher step
    BeatingWatcher(rt, on_confirmed=hand_over, on_block=lambda: send_queued(rt), keep=False).run_forever(stop, interval)
    keeper.join(timeout=10)


def demo(home: Annotated[str | None, typer.Option(help="A fresh directory for the demo's state "
                                                       "(default: a new temporary one).")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
         shape: Annotated[str, typer.Option(help="The bounty's shape: pool (the default) or chain.")] = "pool",
         ) -> None:
    """The whole loop on the embedded default: fund, submit, confirm, keep, retrain, redeploy, submit again."""
    import json
    import tempfile
    from pathlib import Path

    from marketplace.cli.demo import run_demo
    from marketplace.errors import InvalidRequest
    from marketplace.schema import BountyShape

    if shape not in ("pool", "chain"):
        raise InvalidRequest(f"--shape is pool or chain, not {shape!r}")
    where = Path(home) if home else Path(tempfile.mkdtemp(prefix="digit-bounty-demo-"))
    if where.exists() and any(where.iterdir()):
        raise InvalidRequest(f"{where} is not empty: the demo starts from a fresh BOUNTY_HOME")
    summary = run_demo(where, say=lambda line: typer.echo(f"demo: {line}", err=True), shape=BountyShape(shape))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            typer.echo(f"  {key:<16} {value}")
