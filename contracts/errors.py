"""Errors of the contracts layer.

ScriptError                      a Bitcoin Script cannot be built or fails to validate
└── ScriptLimitError             a script breaks a network policy limit
ContractError                    a bounty contract or one of its transactions cannot be built as asked
"""

from __future__ import annotations

from model.errors import BountyError


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
