"""The one interface the service uses to talk to a chain, and the small values it speaks in.

Two backends implement ``Chain``: ``LocalChain`` (a SQLite file that validates like a node, for
development, tests and demos) and ``NetworkChain`` (ARC and WhatsOnChain, for mainnet and testnet).

Events let a watcher follow the chain without polling blindly: ``events_since(cursor)`` returns what
happened after ``cursor`` in order (transactions accepted, blocks mined, blocks removed, transactions
dropped) and a new cursor. Cursors are opaque strings: store them as they are (they survive restarts),
pass ``START`` to read from the beginning. A cursor only moves forward; a reorg appears as
``BlockRemoved`` events, never as a cursor going back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NewType, Protocol, cast

from bsv import Transaction
from bsv.utils import decode_address

from contracts.transactions import Utxo, address_pkh

Cursor = NewType("Cursor", str)
START = Cursor("")
Network = Literal["mainnet", "testnet"]  # as in Settings.network: which addresses a chain's coins are paid to
NETWORK_NAMES: tuple[Network, ...] = ("mainnet", "testnet")


def address_network(address: str) -> Network:
    """The network a P2PKH address belongs to (its version byte); ContractError for anything else."""
    address_pkh(address)  # the project's one sentence for an address that does not decode
    return cast(Network, str(decode_address(address)[1].value))


class TxState(StrEnum):
    MEMPOOL = "mempool"      # accepted, not in a block yet
    CONFIRMED = "confirmed"  # in a block of the best chain
    UNKNOWN = "unknown"      # never seen, or dropped (conflict after a reorg)


@dataclass(frozen=True)
class TxStatus:
    txid: str
    state: TxState
    block_height: int | None = None  # set when confirmed


@dataclass(frozen=True)
class BroadcastResult:
    """A transaction the chain accepted. `detail` says how ("accepted", "already known", ARC's txStatus)."""

    txid: str
    state: TxState
    detail: str = ""


@dataclass(frozen=True)
class Spender:
    """The transaction input that spends an output."""

    txid: str
    vin: int


@dataclass(frozen=True)
class TransactionAccepted:
    """A transaction entered the mempool (LocalChain: every one; NetworkChain: spenders of watched outputs)."""

    txid: str


@dataclass(frozen=True)
class BlockMined:
    """Block `height` joined the best chain holding `txids` (NetworkChain: only the watched ones)."""

    height: int
    block_hash: str
    txids: tuple[str, ...]


@dataclass(frozen=True)
class BlockRemoved:
    """Block `height` left the best chain (a reorg or a rollback); its transactions are unconfirmed again."""

    height: int
    block_hash: str
    txids: tuple[str, ...]


@dataclass(frozen=True)
class TransactionDropped:
    """A transaction left the mempool without being mined: after a reorg it conflicted with the new chain."""

    txid: str
    reason: str


ChainEvent = TransactionAccepted | BlockMined | BlockRemoved | TransactionDropped


class Chain(Protocol):
    """What the service needs from a chain. Every method may raise ``ChainUnavailable`` (retry later)."""

    def broadcast(self, tx: Transaction | bytes) -> BroadcastResult:
        """Submit a transaction (object or raw bytes). Broadcasting a known transaction again is harmless
        and returns its status. Raises ``TransactionRejected`` with the chain's reason when refused."""
        ...

    def get_transaction(self, txid: str) -> Transaction | None:
        """The transaction with this id, parsed from its raw bytes; None when the chain does not know it."""
        ...

    def status(self, txid: str) -> TxStatus:
        """Mempool, confirmed (with its block height) or unknown."""
        ...

    def spender_of(self, txid: str, vout: int) -> Spender | None:
        """The input spending output `txid:vout` (in the mempool or a block), or None while it is unspent."""
        ...

    def tip_height(self) -> int:
        """Height of the best block."""
        ...

    def confirmations(self, txid: str) -> int:
        """Blocks on top of (and including) the one holding `txid`: 0 while in the mempool or unknown."""
        ...

    def events_since(self, cursor: Cursor = START, limit: int = 1000) -> tuple[list[ChainEvent], Cursor]:
        """Events after `cursor` in order, at most `limit`, and the cursor to pass next time."""
        ...

    def watch(self, txid: str, vout: int | None = None, script_sha256: str | None = None) -> None:
        """Ask for events about a transaction (vout None) or about the spender of one output, whose locking
        script's SHA-256 (hex) may be given: a backend can then check outputs sharing one script together.
        Backends that see everything (LocalChain) need no watch list and ignore it."""
        ...

    def utxos_for_address(self, address: str) -> list[Utxo]:
        """Unspent P2PKH outputs paying `address`, mempool ones included, none already spent in the mempool."""
        ...

    def utxos_for_script(self, script: bytes) -> list[Utxo]:
        """Unspent outputs locked by exactly `script`, mempool ones included."""
        ...

    def close(self) -> None:
        """Release connections; the object is not used afterwards."""
        ...
