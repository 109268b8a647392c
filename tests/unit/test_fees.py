"""The fee arithmetic a bounty's money rests on: how many images a balance pays for, and fees to the satoshi."""

from __future__ import annotations

import pytest
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.fee_models import SatoshisPerKilobyte

from contracts.bounty import BountyContract, BountyTerms
from contracts.errors import ContractError
from contracts.fees import SLACK_BYTES, default_max_fee, fee_for, images_payable, with_max_fee, worst_case_bytes
from contracts.transactions import DEFAULT_FEE_RATE, Utxo, pay
from model.artifact import ModelArtifact
from tests.support.fees import fee_problem

KEY = PrivateKey(301)


@pytest.mark.parametrize(("balance", "payout", "max_fee", "images"), [
    (10_000, 500, 200, 14),     # 14 x 700 = 9,800: the 200 left cannot pay a fifteenth
    (9_800, 500, 200, 14),      # exactly fourteen
    (9_799, 500, 200, 13),      # one satoshi short of the fourteenth
    (699, 500, 200, 0),
    (5, 1, 0, 5),               # the smallest terms: 1-sat payouts, no fee allowed
    (0, 1, 0, 0),               # an empty balance pays nothing even at the smallest terms
    (0, 500, 200, 0),
    (-700, 500, 200, 0),        # a balance below zero (an overdrawn view) pays nothing, never a negative count
])
def test_images_payable_is_the_whole_spends_the_balance_covers(balance: int, payout: int, max_fee: int,
                                                                images: int) -> None:
    count = images_payable(balance, payout, max_fee)
    assert type(count) is int and count == images


@pytest.mark.parametrize(("payout", "max_fee"), [(0, 200), (-1, 200), (500, -1), (0, -1)])
def test_terms_that_cannot_price_an_image_are_refused(payout: int, max_fee: int) -> None:
    with pytest.raises(ContractError, match=f"got {payout} and {max_fee}"):
        images_payable(10_000, payout, max_fee)


@pytest.mark.parametrize(("size", "rate", "fee"), [
    (0, 100, 0), (1, 100, 1), (10, 100, 1), (11, 100, 2), (1000, 100, 100), (1001, 100, 101),
    (1000, 1, 1), (1001, 1, 2), (250, 50, 13), (42_000, 100, 4_200), (42_001, 100, 4_201),
])
def test_a_fee_is_the_rate_per_kilobyte_rounded_up(size: int, rate: int, fee: int) -> None:
    assert fee_for(size, rate) == fee


@pytest.mark.parametrize("rate", [1, 50, 100, 500])
def test_the_fee_of_a_real_transaction_is_bsv_sdks(rate: int) -> None:
    """What the builders charge (bsv-sdk's fee model on the transaction) and what `fee_for` gives for its size
    agree to the satoshi."""
    source = Transaction([TransactionInput(source_txid="33" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(KEY.address()), 100_000)])
    tx = Transaction([TransactionInput(source_transaction=source, source_output_index=0,
                                       unlocking_script_template=P2PKH().unlock(KEY))],
                     [TransactionOutput(P2PKH().lock(KEY.address()), 30_000) for _ in range(3)])
    assert fee_for(tx.estimated_byte_length(), rate) == SatoshisPerKilobyte(rate).compute_fee(tx)


@pytest.mark.parametrize("rate", [1, 2])
def test_the_lowest_rates_have_their_own_maximum_fee(shipped: ModelArtifact, rate: int) -> None:
    """1 sat/kB is a rate like any other: the maximum fee is the fee of the largest spend of the contract that
    carries it, plus the slack; below 1 sat/kB there is no maximum fee to give."""
    contract = BountyContract(shipped.integer, BountyTerms(digits=(7,), payout=500, min_margin=0, max_fee=0,
                                                           owner_pubkey=KEY.public_key().serialize()))
    bound = default_max_fee(contract, rate)
    assert bound == fee_for(worst_case_bytes(with_max_fee(contract, bound)) + SLACK_BYTES, rate)
    assert bound == default_max_fee(with_max_fee(contract, 12_345), rate)  # its own maximum fee is ignored
    with pytest.raises(ContractError, match="at least 1 sat/kB, got 0"):
        default_max_fee(contract, 0)


def test_a_wallet_payment_keeps_every_satoshi_of_change_and_pays_exactly_its_fee() -> None:
    """Change is what the outputs and the fee leave, to the satoshi: 1 sat is still an output, none is no output
    (the fee stays what it was priced at), and coins that cannot pay both are refused."""
    payee = [TransactionOutput(P2PKH().lock(PrivateKey(302).address()), 10_000)]

    def coins(satoshis: int) -> list[Utxo]:
        source = Transaction([TransactionInput(source_txid="34" * 32, unlocking_script=Script(b""))],
                             [TransactionOutput(P2PKH().lock(KEY.address()), satoshis)])
        return [Utxo.of(source, 0)]

    roomy = pay(payee, coins(50_000), KEY, KEY.address())
    fee = 50_000 - 10_000 - roomy.outputs[1].satoshis
    assert fee_problem(fee, roomy, DEFAULT_FEE_RATE) is None
    assert [o.satoshis for o in pay(payee, coins(10_000 + fee + 1), KEY, KEY.address()).outputs] == [10_000, 1]
    assert [o.satoshis for o in pay(payee, coins(10_000 + fee), KEY, KEY.address()).outputs] == [10_000]
    with pytest.raises(ContractError, match=f"cannot pay 10000 sats of outputs and a {fee}-sat fee"):
        pay(payee, coins(10_000 + fee - 1), KEY, KEY.address())
