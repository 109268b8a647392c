"""The project's exception tree.

BountyError                      root: every error the project raises on purpose
├── DatasetError                 MNIST cannot be found or fails its checks (model.data)
├── ArtifactError                a model artifact is missing, malformed or tampered (model.artifact)
└── ScriptError                  a Bitcoin Script cannot be built or fails to validate (contracts)
    └── ScriptLimitError         a script breaks a network policy limit
└── ContractError                a bounty contract or one of its transactions cannot be built as asked

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
