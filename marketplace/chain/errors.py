"""Errors of the chain layer.

ChainError                       the chain cannot do what was asked: bad cursor, unusable chain file
├── TransactionRejected          the chain refused a transaction (caller error): invalid script, double spend, low fee
│   └── MempoolChainTooLong      too many unconfirmed ancestors ("too-long-mempool-chain"): retry after a block
└── ChainUnavailable             retry later: the network timed out, answered 5xx/429, or the chain file stayed locked
WalletError                      the operator wallet cannot be loaded or cannot pay
"""

from __future__ import annotations

from model.errors import BountyError


class ChainError(BountyError):
    """Raised when the chain layer cannot do what was asked: a cursor from another chain, an unusable
    chain file, a rollback past genesis, a network service refusing our credentials."""


class TransactionRejected(ChainError):
    """Raised when the chain refuses a transaction: the caller's transaction is at fault, retrying it
    unchanged will not help. `reason` is the chain's own words, `txid` the refused transaction's id."""

    def __init__(self, reason: str, txid: str | None = None) -> None:
        super().__init__(f"transaction {txid} rejected: {reason}" if txid else f"transaction rejected: {reason}")
        self.reason = reason
        self.txid = txid


class MempoolChainTooLong(TransactionRejected):
    """Raised when a transaction has more unconfirmed ancestors than the chain accepts
    ("too-long-mempool-chain"): the same transaction is accepted once a block confirms its ancestors."""


class ChainUnavailable(ChainError):
    """Raised when the chain cannot answer now (timeouts, HTTP 5xx or 429 after retries, a chain file
    locked past the busy timeout): retry later with the same request."""


class WalletError(BountyError):
    """Raised when the operator wallet cannot be loaded (missing or malformed key, a key file others can
    read) or cannot pay (not enough funds). Never carries the key itself."""
