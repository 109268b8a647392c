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
    import uvicorn

    from marketplace.api import create_app
    from marketplace.runtime import open_runtime
    from marketplace.settings import get_settings

    rt = open_runtime(get_settings())
    typer.echo(f"digit-bounty on http://{host}:{port}/ (data in {rt.settings.home})", err=True)
    uvicorn.run(create_app(rt), host=host, port=port, log_level="warning")


def daemon(interval: Annotated[float, typer.Option(min=0.05, help="Seconds between idle polls.")] = 1.0) -> None:
    """Follow the chain and keep the books: record spends, confirmations and reorgs."""
    from marketplace.runtime import open_runtime
    from marketplace.settings import get_settings
    from marketplace.submissions import send_queued
    from marketplace.watcher import Watcher

    rt = open_runtime(get_settings())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"watching {rt.settings.chain} chain; database {rt.settings.home}", err=True)
    Watcher(rt, on_block=lambda: send_queued(rt)).run_forever(stop, interval)
