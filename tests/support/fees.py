"""Each fee against what its transaction's size and the fee rate in force allow, to the satoshi.

A builder prices a transaction with bsv-sdk's fee model on the size it estimates before signing: every
signature counted at its longest, a submission's preimage with a 9-byte script length. The signed
transaction is at most `ESTIMATE_SLACK_BYTES` shorter than that estimate (4 bytes of preimage varint, up to
3 of signature per input), so its fee lies between the rate's fee for its signed size and for that size plus
the slack: a wallet-only transaction (a withdrawal) estimates its size exactly, and one satoshi more than
either bound fails.
"""

from __future__ import annotations

from typing import Any

from bsv import Transaction

from contracts.fees import fee_for

ESTIMATE_SLACK_BYTES = 8


def fee_paid(chain: Any, tx: Transaction) -> int:
    """What `tx`'s inputs hold (read from the chain) less what its outputs pay."""
    spent = 0
    for tx_input in tx.inputs:
        source = chain.get_transaction(tx_input.source_txid)
        assert source is not None, f"{tx.txid()} spends {tx_input.source_txid}, which the chain does not know"
        spent += int(source.outputs[tx_input.source_output_index].satoshis)
    return spent - sum(int(o.satoshis) for o in tx.outputs)


def fee_problem(fee: int, tx: Transaction, fee_rate: int, last: bool = False) -> str | None:
    """Why `fee` is not what `tx` may pay at `fee_rate` sat/kB, or None. The `last` spend of a contract
    (no successor) gives all that remains after its payout as fee: it may pay more, never less."""
    size = tx.byte_length()
    low, high = fee_for(size, fee_rate), fee_for(size + ESTIMATE_SLACK_BYTES, fee_rate)
    if fee < low or (fee > high and not last):
        return (f"{tx.txid()} ({size} bytes) pays a {fee}-sat fee; at {fee_rate} sat/kB it may pay "
                f"{low}..{high}")
    return None


def assert_fee_allowed(chain: Any, tx: Transaction, fee_rate: int, last: bool = False) -> int:
    fee = fee_paid(chain, tx)
    problem = fee_problem(fee, tx, fee_rate, last)
    assert problem is None, problem
    return fee
