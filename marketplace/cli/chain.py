"""`bounty chain ...`: drive the local development chain from the shell (faucet, mine, status).

Thin like the main CLI: parse, call LocalChain, print. Every command takes --json and --path (the
chain file; default $BOUNTY_HOME/chain.sqlite, with BOUNTY_HOME defaulting to ~/.digit-bounty).
The faucet pays addresses of the service's network only (BOUNTY_NETWORK, testnet by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from marketplace.cli._output import JsonOption, emit, friendly

if TYPE_CHECKING:  # imported when a command runs, so `bounty --help` stays quick
    from marketplace.chain.local import LocalChain
    from marketplace.settings import Settings

chain_app = typer.Typer(help="The local development chain: a SQLite file that validates like a node.",
                        no_args_is_help=True)

PathOption = Annotated[Path | None, typer.Option("--path", help="Chain file (default: $BOUNTY_HOME/chain.sqlite).")]


def _settings() -> Settings:
    """The settings as the environment holds them now (not the process's cached copy), bad ones as ConfigError."""
    from marketplace.settings import get_settings

    return get_settings.__wrapped__()


def default_chain_path() -> Path:
    return _settings().chain_path


def _open(path: Path | None, *, for_network: bool = False) -> LocalChain:
    """The chain file; `for_network`: opened for the service's network (its faucet refuses the other's)."""
    from marketplace.chain.local import LocalChain

    if not for_network:
        return LocalChain(path or default_chain_path())
    settings = _settings()
    return LocalChain(path or settings.chain_path, network=settings.network)


@chain_app.command("faucet")
@friendly
def faucet(address: Annotated[str, typer.Argument(help="P2PKH address to fund.")],
           amount: Annotated[int, typer.Argument(help="Satoshis to create.")],
           path: PathOption = None, as_json: JsonOption = False) -> None:
    """Pay AMOUNT satoshis to ADDRESS out of nothing (development only; an address of BOUNTY_NETWORK)."""
    with _open(path, for_network=True) as chain:
        txid = chain.faucet(address, amount)
    emit({"txid": txid, "address": address, "amount": amount}, as_json, "faucet payment")


@chain_app.command("mine")
@friendly
def mine(n: Annotated[int, typer.Argument(help="Blocks to mine.")] = 1,
         path: PathOption = None, as_json: JsonOption = False) -> None:
    """Mine N blocks; the first takes every transaction in the mempool."""
    with _open(path) as chain:
        blocks = chain.mine(n)
    result = {"blocks": [{"height": b.height, "hash": b.block_hash, "transactions": len(b.txids)} for b in blocks],
              "tip_height": blocks[-1].height}
    emit(result, as_json, "mined")


@chain_app.command("status")
@friendly
def status(path: PathOption = None, as_json: JsonOption = False) -> None:
    """Tip height, mempool size and UTXO count of the chain file."""
    with _open(path) as chain:
        stats = chain.stats()
    result = {"path": str(chain.path), "tip_height": stats.tip_height, "mempool_size": stats.mempool_size,
              "utxo_count": stats.utxo_count}
    emit(result, as_json, "local chain")
