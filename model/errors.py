"""The project's exception tree. Each layer keeps its own errors beside its code; the root lives here,
in the lowest layer, so that every layer can subclass it.

BountyError                      root: every error the project raises on purpose
├── DatasetError                 MNIST cannot be found or fails its checks (model.data)
├── ArtifactError                a model artifact is missing, malformed or tampered (model.artifact)
├── contracts.errors             ScriptError (ScriptLimitError), ContractError
├── marketplace.chain.errors     ChainError (TransactionRejected, MempoolChainTooLong, ChainUnavailable), WalletError
├── marketplace.errors           ConfigError, DatabaseError (DatabaseUnavailable), ImageError,
│                                ServiceError (NotFound, BountyClosed, InvalidRequest, ImageRefused)
└── workers.errors               RetrainError
"""

from __future__ import annotations


class BountyError(Exception):
    """Root of every error digit-bounty raises on purpose."""


class DatasetError(BountyError):
    """Raised when MNIST is missing, unreadable or fails its shape and label checks."""


class ArtifactError(BountyError):
    """Raised when a model artifact is missing, malformed, or its weights hash does not match."""
