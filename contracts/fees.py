"""A bounty's maximum fee from the real size of its spends, not a guess (both shapes).

The contract refuses any spend whose fee is above the maximum written in its script, so the maximum
is what a miner (or anyone building the spend) can take from the bounty per image beyond the payout.
`default_max_fee` makes it the fee, at the configured rate, of the largest spend the contract allows:
every pixel pushed in 3 bytes (128..255), the successor value as large as all bitcoin, the longest
signature (vetted), an appeal's claim (vetted), measured exactly as bsv-sdk's fee model sizes the
transaction the builder signs; plus `SLACK_BYTES` of headroom for a builder whose estimate differs.
The maximum fee is pushed inside the script it bounds, so the figure is found as a fixed point.

A pool bounty (contracts.pool) keeps the maximum fee out of its script: it is each prize's fee allowance,
so a prize holds payout + maximum fee. Its largest spend is the largest claim `contracts.transactions.claim`
builds: every pixel in 3 bytes, the longest signature and an appeal's claim (vetted), the payout output and
the output that returns the unused allowance to the owner.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TypeAlias, TypeVar

import numpy as np
from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput

from contracts.bounty import PKH_BYTES, BountyContract
from contracts.errors import ContractError
from contracts.interpreter import TX_VERSION
from contracts.pool import PoolContract
from model.reference import PIXELS

MAX_MONEY = 21_000_000 * 100_000_000  # the largest successor value anyone could push (7 bytes)
SLACK_BYTES = 10  # headroom for another builder's size estimate: 1 sat at 100 sat/kB
SUBMISSION, APPEAL = "submission", "appeal"
_WORST_IMAGE = np.full(PIXELS, 255, dtype=np.uint8)
Contract: TypeAlias = "BountyContract | PoolContract"
C = TypeVar("C", BountyContract, PoolContract)


def spend_kinds(contract: Contract) -> tuple[str, ...]:
    return (SUBMISSION, APPEAL) if contract.terms.vetted else (SUBMISSION,)


def worst_case_bytes(contract: Contract, kind: str = SUBMISSION) -> int:
    """The size bsv-sdk's fee model gives the largest submission (or appeal, or a pool's claim) this contract
    accepts."""
    if kind not in spend_kinds(contract):
        raise ContractError(f"a {contract.terms.mode} bounty has no {kind} path")
    terms = contract.terms
    if isinstance(contract, PoolContract):
        claim = contract.claim_unlock(_WORST_IMAGE, attestor=_never_called if terms.vetted else None,
                                      appeal=terms.digits[0] if kind == APPEAL else None)
        spend = TransactionInput(source_txid="00" * 32, source_output_index=0,
                                 unlocking_script=Script(bytes(claim.estimated_unlocking_byte_length())))
        outputs = [TransactionOutput(P2PKH().lock(b"\0" * PKH_BYTES), terms.payout),  # the payee
                   TransactionOutput(P2PKH().lock(b"\0" * PKH_BYTES), MAX_MONEY)]  # the allowance left over
        return int(Transaction([spend], outputs, version=TX_VERSION).byte_length())
    template = contract.submission_unlock(
        _WORST_IMAGE, b"\0" * PKH_BYTES, MAX_MONEY, attestor=_never_called if terms.vetted else None,
        appeal=terms.digits[0] if kind == APPEAL else None)
    estimate = template.estimated_unlocking_byte_length()
    spend = TransactionInput(source_txid="00" * 32, source_output_index=0, unlocking_script=Script(bytes(estimate)))
    outputs = [TransactionOutput(contract.lock(), MAX_MONEY),
               TransactionOutput(P2PKH().lock(b"\0" * PKH_BYTES), terms.payout)]
    return int(Transaction([spend], outputs, version=TX_VERSION).byte_length())


def _never_called(tx: Transaction, index: int) -> bytes:
    raise AssertionError("an estimate never signs")


def fee_for(size: int, fee_rate: int) -> int:
    """bsv-sdk's SatoshisPerKilobyte fee of `size` bytes (the same rounding: up)."""
    return math.ceil((size / 1000) * fee_rate)


def max_fee_bound(contract: Contract, fee_rate: int) -> int:
    """The fee, at `fee_rate` sat/kB, of this contract's largest spend plus the slack."""
    return fee_for(max(worst_case_bytes(contract, kind) for kind in spend_kinds(contract)) + SLACK_BYTES, fee_rate)


def default_max_fee(contract: C, fee_rate: int) -> int:
    """The maximum fee for `contract`'s terms at `fee_rate` sat/kB (its own `max_fee` is ignored): the
    smallest bound that covers the largest spend of the contract that has this very bound in its script
    (a pool's script holds no bound: the first round settles it)."""
    if fee_rate < 1:
        raise ContractError(f"the fee rate must be at least 1 sat/kB, got {fee_rate}")
    max_fee = 0
    for _ in range(8):  # the push of the bound grows a byte at a time: two or three rounds settle it
        bound = max_fee_bound(with_max_fee(contract, max_fee), fee_rate)
        if bound == max_fee:
            return max_fee
        max_fee = bound
    raise ContractError("the maximum fee did not settle")  # cannot happen: the bound only grows, by bytes


def with_max_fee(contract: C, max_fee: int) -> C:
    """The same contract (same shape) with another maximum fee (the compiled classifier is reused)."""
    if contract.terms.max_fee == max_fee:
        return contract
    return type(contract)(contract.classifier, replace(contract.terms, max_fee=max_fee))


def images_payable(balance: int, payout: int, max_fee: int) -> int:
    """How many images a contract holding `balance` pays for whatever the images are: each spend takes the
    payout and at most `max_fee` of fee (a spend's fee is bounded by the contract, and the last one, which
    ends the contract, takes all that remains after its payout as fee). Cheaper spends can leave room for
    one more than this; none can pay for fewer."""
    if payout < 1 or max_fee < 0:
        raise ContractError(f"a bounty needs a payout of at least 1 sat and a maximum fee of at least 0, got "
                            f"{payout} and {max_fee}")
    return max(balance, 0) // (payout + max_fee)
