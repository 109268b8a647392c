"""The project's exception tree.

BountyError                      root: every error the project raises on purpose
├── DatasetError                 MNIST cannot be found or fails its checks (model.data)
├── ArtifactError                a model artifact is missing, malformed or tampered (model.artifact)
├── ScriptError                  a Bitcoin Script cannot be built or fails to validate (contracts)
│   └── ScriptLimitError         a script breaks a network policy limit
├── ContractError                a bounty contract or one of its transactions cannot be built as asked
├── ChainError                   the chain cannot do what was asked (marketplace.chain): bad cursor, unusable chain file
│   ├── TransactionRejected      the chain refused a transaction (caller error): invalid script, double spend, low fee
│   │   └── MempoolChainTooLong  too many unconfirmed ancestors ("too-long-mempool-chain"): retry after a block
│   └── ChainUnavailable         retry later: the network timed out, answered 5xx/429, or the chain file stayed locked
├── WalletError                  the operator wallet cannot be loaded or cannot pay (marketplace.chain.wallet)
├── ConfigError                  the BOUNTY_* settings are invalid (marketplace.settings)
├── DatabaseError                the service database cannot do as asked: bad URL, unknown revision (marketplace.db)
│   └── DatabaseUnavailable      retry later: the database server cannot be reached, or the file stayed locked
├── ImageError                   an upload is refused: too large, not PNG/JPEG, corrupt, blank (marketplace.images)
├── RetrainError                 a retraining run cannot go on: lease lost, a migration failed (workers.retraining)
└── ServiceError                 the marketplace refuses a request (caller misuse; the API answers 4xx)
    ├── NotFound                 no such bounty or submission
    ├── BountyClosed             the bounty is exhausted, withdrawn or has no live contract
    ├── InvalidRequest           malformed input: an address of the wrong network, bad terms
    └── ImageRefused             the contract would not pay for this image (carries label and margin)

Other packages add their own subclasses next to their code and list them here.
"""

from __future__ import annotations


class BountyError(Exception):
    """Root of every error digit-bounty raises on purpose."""


class DatasetError(BountyError):
    """Raised when MNIST is missing, unreadable or fails its shape and label checks."""


class ArtifactError(BountyError):
    """Raised when a model artifact is missing, malformed, or its weights hash does not match."""


class ScriptError(BountyError):
    """Raised when a script cannot be compiled, or the interpreter rejects a spend.

    `reason` carries the interpreter's own words when there are any.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message if reason is None else f"{message}: {reason}")
        self.reason = reason


class ScriptLimitError(ScriptError):
    """Raised when a script would break a network policy limit (size, number length, ops)."""


class ContractError(BountyError):
    """Raised when bounty terms are invalid or a contract transaction cannot be built as asked
    (caller misuse: the balance cannot pay, the fee would exceed the bounty's maximum, a wrong key)."""


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


class ConfigError(BountyError):
    """Raised when the settings (``BOUNTY_*`` variables or ``.env``) fail validation. The message names each
    variable and what is wrong with it, never its value (it may be a secret)."""


class DatabaseError(BountyError):
    """Raised when the service database cannot do what was asked: a malformed URL or missing driver, an unknown
    migration revision, a schema newer than this code. Retrying unchanged will not help. `url` has no password."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class DatabaseUnavailable(DatabaseError):
    """Raised when the database cannot answer now (server unreachable or refusing connections, a SQLite file
    locked past the busy timeout): retry later with the same request."""


class ImageError(BountyError):
    """Raised when an uploaded image is refused (caller error, never worth retrying unchanged): too many
    bytes or pixels, not a PNG or JPEG, truncated or corrupt, or blank. The message is one sentence a
    client can be shown as it is (the API layer answers it with a 4xx)."""


class RetrainError(BountyError):
    """Raised inside a retraining run that cannot go on: another worker took over its expired lease, or a
    bounty's migration to the new model failed (the message names the bounty and the cause). The run is
    recorded as failed and nothing further is deployed."""


class ServiceError(BountyError):
    """Raised when the marketplace refuses a request; nothing was written or paid."""


class NotFound(ServiceError):
    """Raised for an unknown bounty or submission id."""


class BountyClosed(ServiceError):
    """Raised when a bounty cannot take submissions: exhausted, withdrawn, or no live contract."""


class InvalidRequest(ServiceError):
    """Raised for malformed input the schema could not catch: a wrong-network address, impossible terms."""


class ImageRefused(ServiceError):
    """Raised when the reference model says the contract would refuse the image, before any money moves."""

    def __init__(self, message: str, label: int, margin: int) -> None:
        super().__init__(message)
        self.label = label
        self.margin = margin
