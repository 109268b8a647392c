"""`bounty chain ...`: drive the local development chain from the shell (faucet, mine, status).

Thin like the main CLI: parse, call LocalChain, print. Every command takes --json and --path (the
chain file; default $BOUNTY_HOME/chain.sqlite, with BOUNTY_HOME defaulting to ~/.digit-bounty).
Errors the project raises on purpose become one sentence on stderr and exit code 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from marketplace.chain.local import LocalChain
from model.errors import BountyError

chain_app = typer.Typer(help="The local development chain: a SQLite file that validates like a node.",
                        no_args_is_help=True)

F = TypeVar("F", bound=Callable[..., Any])
PathOption = Annotated[Path | None, typer.Option("--path", help="Chain file (default: $BOUNTY_HOME/chain.sqlite).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def default_chain_path() -> Path:
    home = os.environ.get("BOUNTY_HOME") or "~/.digit-bounty"
    return Path(home).expanduser() / "chain.sqlite"


def _friendly(command: F) -> F:
    """The project's own errors as one sentence and exit code 1 (as marketplace.cli does)."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BountyError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return run  # type: ignore[return-value]


def _open(path: Path | None) -> LocalChain:
    return LocalChain(path or default_chain_path())


def _emit(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    typer.echo(json.dumps(result, indent=2) if as_json else "\n".join(lines))


@chain_app.command("faucet")
@_friendly
def faucet(address: Annotated[str, typer.Argument(help="P2PKH address to fund.")],
           amount: Annotated[int, typer.Argument(help="Satoshis to create.")],
           path: PathOption = None, as_json: JsonOption = False) -> None:
    """Pay AMOUNT satoshis to ADDRESS out of nothing (development only)."""
    with _open(path) as chain:
        txid = chain.faucet(address, amount)
    _emit({"txid": txid, "address": address, "amount": amount}, as_json, [f"paid {amount} sats to {address}: {txid}"])


@chain_app.command("mine")
@_friendly
def mine(n: Annotated[int, typer.Argument(help="Blocks to mine.")] = 1,
         path: PathOption = None, as_json: JsonOption = False) -> None:
    """Mine N blocks; the first takes every transaction in the mempool."""
    with _open(path) as chain:
        blocks = chain.mine(n)
    result = {"blocks": [{"height": b.height, "hash": b.block_hash, "transactions": len(b.txids)} for b in blocks],
              "tip_height": blocks[-1].height}
    _emit(result, as_json, [f"block {b.height} {b.block_hash} ({len(b.txids)} transactions)" for b in blocks])


@chain_app.command("status")
@_friendly
def status(path: PathOption = None, as_json: JsonOption = False) -> None:
    """Tip height, mempool size and UTXO count of the chain file."""
    chain_path = path or default_chain_path()
    with LocalChain(chain_path) as chain:
        stats = chain.stats()
    result = {"path": str(chain_path), "tip_height": stats.tip_height, "mempool_size": stats.mempool_size,
              "utxo_count": stats.utxo_count}
    _emit(result, as_json, [f"{key:<14} {value}" for key, value in result.items()])
