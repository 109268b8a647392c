"""The chain layer: one interface (``Chain``), a local SQLite chain for development and tests
(``LocalChain``), the real network through ARC and WhatsOnChain (``NetworkChain``), and the
operator's wallet (``Wallet``)."""

from marketplace.chain._http import RetryPolicy
from marketplace.chain.base import (
    START,
    BlockMined,
    BlockRemoved,
    BroadcastResult,
    Chain,
    ChainEvent,
    Cursor,
    Network,
    Spender,
    TransactionAccepted,
    TransactionDropped,
    TxState,
    TxStatus,
    address_network,
)
from marketplace.chain.local import NULL_TXID, BlockMiner, ChainStats, LocalChain
from marketplace.chain.network import NetworkChain
from marketplace.chain.wallet import Wallet

__all__ = [
    "NULL_TXID",
    "START",
    "BlockMined",
    "BlockMiner",
    "BlockRemoved",
    "BroadcastResult",
    "Chain",
    "ChainEvent",
    "ChainStats",
    "Cursor",
    "LocalChain",
    "Network",
    "NetworkChain",
    "RetryPolicy",
    "Spender",
    "TransactionAccepted",
    "TransactionDropped",
    "TxState",
    "TxStatus",
    "Wallet",
    "address_network",
]
