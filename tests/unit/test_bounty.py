"""The bounty contract, judged by bsv-sdk's interpreter: what it pays for, and every way to cheat it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts.bounty import VETTED, BountyContract, BountyTerms, check_claim, chunk_value, push_values
from contracts.classifier import pixel_pushes
from contracts.errors import ContractError, ScriptError
from contracts.fees import fee_for
from contracts.interpreter import validate_input
from contracts.pushtx import preimage_is_signable
from contracts.script import push_only_script
from contracts.transactions import DEFAULT_FEE_RATE, Utxo, address_pkh, deploy, migrate, submission, withdraw
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.support.fees import fee_problem
from tests.support.reference import reading_of_test_set

OWNER, WALLET, USER, THIEF = (PrivateKey(k) for k in (101, 102, 103, 104))
PAYOUT, MAX_FEE, BUDGET = 500, 20_000, 200_000


@pytest.fixture(scope="module")
def images(shipped: ModelArtifact, mnist: Mnist) -> dict[str, np.ndarray]:
    read = reading_of_test_set(shipped.integer)
    x, labels, margins = read.x, read.labels, read.margins
    sevens = np.where((labels == 7) & (mnist.y_test == 7))[0]
    return {"seven": x[sevens[0]], "three": x[np.where(labels == 3)[0][0]],
            "seven_margin": margins[sevens[0]]}


def terms(**changes: object) -> BountyTerms:
    base = BountyTerms(digits=(7,), payout=PAYOUT, min_margin=0, max_fee=MAX_FEE,
                       owner_pubkey=OWNER.public_key().serialize())
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def contract(shipped: ModelArtifact) -> BountyContract:
    return BountyContract(shipped.integer, terms())


def funded(contract: BountyContract, amount: int = BUDGET) -> Utxo:
    """A wallet output from a made-up source, then a real deploy transaction spending it."""
    source = Transaction([TransactionInput(source_txid="11" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), amount + 100_000)])
    tx = deploy(contract, amount, [Utxo.of(source, 0)], WALLET, WALLET.address())
    validate_input(tx, 0)
    return Utxo.of(tx, 0)


def resign(tx: Transaction, contract: BountyContract, image: np.ndarray, pkh: bytes, successor: int) -> Transaction:
    """Re-push a true preimage after tampering, so only the covenant's own rules can refuse the spend."""
    unlock = contract.submission_unlock(image, pkh, successor)
    tx.inputs[0].unlocking_script = None
    tx.inputs[0].unlocking_script_template = unlock
    for locktime in range(256):
        tx.locktime = locktime
        if preimage_is_signable(tx.preimage(0)):
            break
    tx.inputs[0].unlocking_script = unlock.sign(tx, 0)
    return tx


def accepted(contract: BountyContract, images: dict[str, np.ndarray]) -> Transaction:
    return submission(contract, funded(contract), images["seven"], USER.address())


def test_an_image_of_the_target_digit_is_paid(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    validate_input(tx, 0)
    successor, payout = tx.outputs
    assert payout.satoshis == PAYOUT and payout.locking_script.serialize() == P2PKH().lock(USER.address()).serialize()
    assert successor.locking_script.serialize() == contract.lock().serialize()
    fee = BUDGET - successor.satoshis - payout.satoshis
    assert 0 < fee <= MAX_FEE
    assert fee_problem(fee, tx, DEFAULT_FEE_RATE) is None  # what its size needs at the rate, no more


def test_the_successor_accepts_the_next_image(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    first = accepted(contract, images)
    second = submission(contract, Utxo.of(first, 0), images["seven"], THIEF.address())
    validate_input(second, 0)
    fee = first.outputs[0].satoshis - PAYOUT - second.outputs[0].satoshis
    assert second.outputs[1].satoshis == PAYOUT and fee_problem(fee, second, DEFAULT_FEE_RATE) is None


def test_another_digit_is_refused(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = submission(contract, funded(contract), images["three"], USER.address())
    with pytest.raises(ScriptError, match="NUMEQUALVERIFY"):
        validate_input(tx, 0)


def test_a_digit_set_accepts_each_member(shipped: ModelArtifact, images: dict[str, np.ndarray]) -> None:
    both = BountyContract(shipped.integer, terms(digits=(3, 7)))
    for name in ("seven", "three"):
        validate_input(submission(both, funded(both), images[name], USER.address()), 0)
    only_one = BountyContract(shipped.integer, terms(digits=(1, 3)))
    with pytest.raises(ScriptError):
        validate_input(submission(only_one, funded(only_one), images["seven"], USER.address()), 0)


def test_the_margin_must_reach_the_minimum(shipped: ModelArtifact, images: dict[str, np.ndarray]) -> None:
    margin = int(images["seven_margin"])
    exact = BountyContract(shipped.integer, terms(min_margin=margin))
    validate_input(submission(exact, funded(exact), images["seven"], USER.address()), 0)
    above = BountyContract(shipped.integer, terms(min_margin=margin + 1))
    with pytest.raises(ScriptError):
        validate_input(submission(above, funded(above), images["seven"], USER.address()), 0)


def test_a_larger_payout_is_refused(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    tx.outputs[1].satoshis += 1000
    tx.outputs[0].satoshis -= 1000
    with pytest.raises(ScriptError):
        validate_input(resign(tx, contract, images["seven"], address_pkh(USER.address()), tx.outputs[0].satoshis), 0)


def test_a_recipient_changed_after_signing_is_refused(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    tx.outputs[1].locking_script = P2PKH().lock(THIEF.address())  # the pushed preimage no longer matches
    with pytest.raises(ScriptError):
        validate_input(tx, 0)
    # re-pushing a true preimage does not help: the pushed recipient must be the one paid
    with pytest.raises(ScriptError):
        validate_input(resign(tx, contract, images["seven"], address_pkh(USER.address()), tx.outputs[0].satoshis), 0)


def test_an_extra_output_is_refused(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    tx.outputs[0].satoshis -= 1000
    tx.add_output(TransactionOutput(P2PKH().lock(THIEF.address()), 1000))
    with pytest.raises(ScriptError):
        validate_input(resign(tx, contract, images["seven"], address_pkh(USER.address()), tx.outputs[0].satoshis), 0)


def test_a_successor_with_another_script_is_refused(shipped: ModelArtifact, contract: BountyContract,
                                                    images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    tx.outputs[0].locking_script = BountyContract(shipped.integer, terms(payout=PAYOUT * 10)).lock()
    with pytest.raises(ScriptError):
        validate_input(resign(tx, contract, images["seven"], address_pkh(USER.address()), tx.outputs[0].satoshis), 0)


def test_a_fee_above_the_maximum_is_refused(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    fee = BUDGET - tx.outputs[0].satoshis - PAYOUT
    tx.outputs[0].satoshis -= MAX_FEE - fee + 1  # the fee is now MAX_FEE + 1
    with pytest.raises(ScriptError):
        validate_input(resign(tx, contract, images["seven"], address_pkh(USER.address()), tx.outputs[0].satoshis), 0)
    tx.outputs[0].satoshis += 1  # exactly MAX_FEE is allowed
    validate_input(resign(tx, contract, images["seven"], address_pkh(USER.address()), tx.outputs[0].satoshis), 0)


def test_the_builder_refuses_a_spend_whose_fee_would_pass_the_maximum(contract: BountyContract,
                                                                      images: dict[str, np.ndarray]) -> None:
    """At a rate where the image's spend needs more than the maximum fee, nothing is built (the script would
    refuse it anyway, after its signer and the chain had been asked)."""
    rate = DEFAULT_FEE_RATE * 4  # the default classifier's spend is about 65 KB: 26,000 sats at 400 sat/kB
    needed = fee_for(accepted(contract, images).byte_length(), rate)
    assert needed > MAX_FEE
    with pytest.raises(ContractError, match=rf"needs a \d+-sat fee at {rate} sat/kB, above the bounty's maximum "
                                            rf"fee of {MAX_FEE} sats"):
        submission(contract, funded(contract), images["seven"], USER.address(), rate)


def test_a_forged_or_mismatched_preimage_is_refused(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = accepted(contract, images)
    good = tx.preimage(0)
    other = Transaction([tx.inputs[0]], [tx.outputs[1]], version=1)  # the preimage of a different transaction
    forged = good[:-60] + bytes([good[-60] ^ 1]) + good[-59:]  # one bit of hashOutputs flipped
    pixels = pixel_pushes(contract.classifier, images["seven"])
    for preimage in (other.preimage(0), forged):
        tx.inputs[0].unlocking_script = push_only_script(
            [*pixels, address_pkh(USER.address()), tx.outputs[0].satoshis, preimage, 0])
        with pytest.raises(ScriptError):
            validate_input(tx, 0)


def test_the_owner_withdraws_and_nobody_else(contract: BountyContract) -> None:
    utxo = funded(contract)
    tx = withdraw(contract, utxo, OWNER, OWNER.address())
    validate_input(tx, 0)
    assert tx.outputs[0].satoshis == BUDGET - fee_for(tx.byte_length(), DEFAULT_FEE_RATE) and len(tx.outputs) == 1
    with pytest.raises(ContractError):
        withdraw(contract, utxo, THIEF, THIEF.address())
    stolen = withdraw(BountyContract(contract.model, terms(owner_pubkey=THIEF.public_key().serialize())),
                      utxo, THIEF, THIEF.address())  # signed by the wrong key against the real contract
    stolen.inputs[0].locking_script = contract.lock()
    with pytest.raises(ScriptError):
        validate_input(stolen, 0)


def test_the_owner_migrates_into_a_new_contract_with_a_top_up(shipped: ModelArtifact, contract: BountyContract,
                                                              images: dict[str, np.ndarray]) -> None:
    utxo = funded(contract)
    successor = BountyContract(shipped.integer, terms(payout=700))
    wallet = Transaction([TransactionInput(source_txid="22" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), 50_000)])
    tx = migrate(contract, utxo, OWNER, successor, [Utxo.of(wallet, 0)], WALLET, WALLET.address(), top_up=30_000)
    validate_input(tx, 0)
    validate_input(tx, 1)
    assert tx.outputs[0].locking_script.serialize() == successor.lock().serialize()
    assert tx.outputs[0].satoshis == BUDGET + 30_000  # the wallet paid the fee and took its change
    assert 0 < 50_000 - 30_000 - tx.outputs[1].satoshis < 10_000  # the fee: the new script is ~42 KB
    plain = migrate(contract, utxo, OWNER, successor)
    validate_input(plain, 0)
    assert len(plain.outputs) == 1 and 0 < BUDGET - plain.outputs[0].satoshis < 10_000
    paid = submission(successor, Utxo.of(tx, 0), images["seven"], USER.address())
    validate_input(paid, 0)
    assert paid.outputs[1].satoshis == 700


def test_a_migration_pays_its_fee_to_the_satoshi_and_refuses_what_cannot_fund_the_successor(
        shipped: ModelArtifact, contract: BountyContract) -> None:
    successor = BountyContract(shipped.integer, terms(payout=700))
    plain = migrate(contract, funded(contract), OWNER, successor)
    fee = BUDGET - plain.outputs[0].satoshis
    assert fee_problem(fee, plain, DEFAULT_FEE_RATE) is None
    # the fee does not depend on the balance: exactly one payout of the new contract left is enough, a satoshi
    # less is refused
    assert migrate(contract, Utxo("44" * 32, 0, 700 + fee, contract.lock()), OWNER, successor).outputs[0].satoshis \
        == 700
    with pytest.raises(ContractError, match="cannot fund the new contract"):
        migrate(contract, Utxo("44" * 32, 0, 699 + fee, contract.lock()), OWNER, successor)


def test_a_deploy_of_one_payout_is_a_bounty_and_pays_the_rate_asked_for(contract: BountyContract) -> None:
    source = Transaction([TransactionInput(source_txid="48" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), 100_000)])
    coins = [Utxo.of(source, 0)]
    for rate in (50, DEFAULT_FEE_RATE):
        tx = deploy(contract, PAYOUT, coins, WALLET, WALLET.address(), fee_rate=rate)
        validate_input(tx, 0)
        assert tx.outputs[0].satoshis == PAYOUT and tx.outputs[0].locking_script.serialize() == \
            contract.lock().serialize()
        assert fee_problem(100_000 - sum(o.satoshis for o in tx.outputs), tx, rate) is None
    with pytest.raises(ContractError, match=f"a bounty of {PAYOUT - 1} sats cannot pay even one"):
        deploy(contract, PAYOUT - 1, coins, WALLET, WALLET.address())


def test_withdrawing_a_balance_worth_only_its_fee_is_refused(contract: BountyContract) -> None:
    full = withdraw(contract, funded(contract), OWNER, OWNER.address())
    fee = BUDGET - full.outputs[0].satoshis
    assert fee_problem(fee, full, DEFAULT_FEE_RATE) is None  # the fee does not depend on the balance
    with pytest.raises(ContractError, match=f"holds {fee} sats, not enough for the {fee}-sat fee"):
        withdraw(contract, Utxo("45" * 32, 0, fee, contract.lock()), OWNER, OWNER.address())
    assert withdraw(contract, Utxo("45" * 32, 0, fee + 1, contract.lock()), OWNER, OWNER.address()) \
        .outputs[0].satoshis == 1


def test_a_top_up_needs_every_part_and_may_be_one_satoshi(shipped: ModelArtifact, contract: BountyContract) -> None:
    utxo, successor = funded(contract), BountyContract(shipped.integer, terms(payout=700))
    wallet = Transaction([TransactionInput(source_txid="22" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), 50_000)])
    coins, change = [Utxo.of(wallet, 0)], WALLET.address()
    for parts in ({"top_up": 30_000, "wallet_key": WALLET, "change_to": change},                   # no coins
                  {"top_up_coins": coins, "wallet_key": WALLET, "change_to": change},             # no amount
                  {"top_up_coins": coins, "wallet_key": WALLET, "change_to": change, "top_up": -5},
                  {"top_up_coins": coins, "change_to": change, "top_up": 30_000},                 # no key
                  {"top_up_coins": coins, "wallet_key": WALLET, "top_up": 30_000}):               # no change address
        with pytest.raises(ContractError, match="a top-up needs"):
            migrate(contract, utxo, OWNER, successor, **parts)  # type: ignore[arg-type]
    one = migrate(contract, utxo, OWNER, successor, coins, WALLET, change, top_up=1)
    assert one.outputs[0].satoshis == BUDGET + 1 and fee_problem(50_000 - 1 - one.outputs[1].satoshis, one,
                                                                 DEFAULT_FEE_RATE) is None


def test_exhaustion_pays_out_and_ends(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    last = funded(contract, PAYOUT + MAX_FEE)  # after this payout only a fee's worth remains
    tx = submission(contract, last, images["seven"], USER.address())
    validate_input(tx, 0)
    assert len(tx.outputs) == 1 and tx.outputs[0].satoshis == PAYOUT
    # ending early is refused: with more than the maximum fee left, the successor must exist
    early = submission(contract, funded(contract, PAYOUT + MAX_FEE + 1), images["seven"], USER.address())
    early.outputs.pop(0)
    with pytest.raises(ScriptError):
        validate_input(resign(early, contract, images["seven"], address_pkh(USER.address()), 0), 0)
    # below the payout nothing can be paid: the builder says so, the owner withdraws the rest
    for balance in (PAYOUT - 1, PAYOUT + 1000):
        leftover = Utxo("33" * 32, 0, balance, contract.lock())
        with pytest.raises(ContractError, match="less than"):
            submission(contract, leftover, images["seven"], USER.address())


def varint_bytes(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def test_a_submissions_size_estimate_is_exact_but_for_the_preimages_script_length(
        contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    """The fee is priced on the estimate, made before the preimage exists: it counts the preimage's script
    length as 9 bytes (the most a varint takes) and is otherwise exact, so the fee covers the signed spend."""
    tx = accepted(contract, images)
    estimate = contract.submission_unlock(images["seven"], address_pkh(USER.address()),
                                          tx.outputs[0].satoshis).estimated_unlocking_byte_length()
    assert estimate - len(tx.inputs[0].unlocking_script.serialize()) == 9 - varint_bytes(contract.locking_script_bytes)


def test_a_bounty_keeping_exactly_a_last_spends_fee_still_pays(contract: BountyContract,
                                                             images: dict[str, np.ndarray]) -> None:
    """After the payout, a last spend needs its fee: the builder names it, pays with exactly that much left
    (all of it the fee) and refuses a satoshi less, or a balance of just the payout."""
    seven = images["seven"]
    with pytest.raises(ContractError, match=r"keeps 1 sats, less than the (\d+)-sat fee of a last") as caught:
        submission(contract, Utxo("46" * 32, 0, PAYOUT + 1, contract.lock()), seven, USER.address())
    fee = int(str(caught.value).split("-sat fee")[0].rsplit(" ", 1)[1])
    last = submission(contract, Utxo("46" * 32, 0, PAYOUT + fee, contract.lock()), seven, USER.address())
    validate_input(last, 0)
    assert [o.satoshis for o in last.outputs] == [PAYOUT] and fee_problem(fee, last, DEFAULT_FEE_RATE) is None
    for balance in (PAYOUT + fee - 1, PAYOUT):
        with pytest.raises(ContractError, match=f"keeps {balance - PAYOUT} sats, less than the {fee}-sat fee"):
            submission(contract, Utxo("46" * 32, 0, balance, contract.lock()), seven, USER.address())


def test_one_satoshi_above_the_maximum_fee_leaves_a_one_satoshi_successor(shipped: ModelArtifact,
                                                                         images: dict[str, np.ndarray]) -> None:
    """With the maximum fee equal to what the spend needs, a bounty keeping one satoshi more than that after the
    payout is not ended: the spend pays the payout and that fee, and re-creates the contract with 1 sat."""
    max_fee = MAX_FEE
    for _ in range(6):  # the fee depends on the maximum fee's push in the script: a few rounds settle it
        bounded = BountyContract(shipped.integer, terms(max_fee=max_fee))
        tx = submission(bounded, Utxo("47" * 32, 0, PAYOUT + max_fee + 1, bounded.lock()), images["seven"],
                        USER.address())
        fee = PAYOUT + max_fee + 1 - sum(o.satoshis for o in tx.outputs)
        if fee == max_fee:
            break
        max_fee = fee
    assert fee == max_fee, "no maximum fee equal to its spend's fee found"
    validate_input(tx, 0)
    assert [o.satoshis for o in tx.outputs] == [1, PAYOUT]
    assert tx.outputs[0].locking_script.serialize() == bounded.lock().serialize()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.integers(-300, 70_000), st.binary(max_size=40)), max_size=12))
def test_random_unlocking_scripts_never_spend(contract: BountyContract, items: list[int | bytes]) -> None:
    utxo = funded(contract)
    tx = Transaction([TransactionInput(source_txid=utxo.txid, source_output_index=0,
                                       unlocking_script=push_only_script(items))],
                     [TransactionOutput(P2PKH().lock(THIEF.address()), utxo.satoshis - 5000)], version=1)
    tx.inputs[0].satoshis, tx.inputs[0].locking_script = utxo.satoshis, utxo.locking_script
    with pytest.raises(ScriptError):
        validate_input(tx, 0)


@pytest.fixture(scope="module")
def paid_spend(contract: BountyContract, images: dict[str, np.ndarray]) -> Transaction:
    return accepted(contract, images)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_submissions_spend_only_on_the_bountys_terms(contract: BountyContract, paid_spend: Transaction,
                                                              data: st.DataObject) -> None:
    """Overwrite a few bytes of a valid submission's unlocking script, mostly among the pixels, the recipient
    and the successor value (the first ~1 KB), sometimes anywhere (mostly the preimage). A mutant may still
    be valid, but only if what it now says is an image the bounty pays for, to the same recipient, with the
    same successor: the outputs it spends into are unchanged."""
    raw = bytearray(paid_spend.inputs[0].unlocking_script.serialize())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        end = data.draw(st.sampled_from([1_100, len(raw)]), label="region")
        raw[data.draw(st.integers(0, end - 1), label="at")] = data.draw(st.integers(0, 255), label="byte")
    mutant = Transaction.from_hex(paid_spend.hex())
    spent = paid_spend.inputs[0]
    mutant.inputs[0].satoshis, mutant.inputs[0].locking_script = spent.satoshis, spent.locking_script
    mutant.inputs[0].unlocking_script = Script(bytes(raw))
    try:
        validate_input(mutant, 0)
    except ScriptError:
        event("refused")
        return
    event("still valid")
    claim = contract.read_submission(mutant.inputs[0].unlocking_script)
    assert claim is not None
    label, margin = (int(v[0]) for v in classify(contract.model, claim.image))
    assert label in contract.terms.digits and margin >= contract.terms.min_margin
    assert claim.recipient_pkh == address_pkh(USER.address())
    assert claim.successor_satoshis == paid_spend.outputs[0].satoshis


@pytest.mark.parametrize("cut", [b"\x4c", b"\x4d\x01", b"\x4e\x00\x00", b"\x02\x01"])
def test_a_spend_whose_unlocking_script_ends_inside_a_push_is_refused(contract: BountyContract,
                                                                     paid_spend: Transaction, cut: bytes) -> None:
    """bsv-sdk's interpreter reads a push cut short by the end of the script as an empty push, so a paid spend
    whose last byte (its selector, OP_0) becomes a bare OP_PUSHDATA1 still ran; a node refuses it, and the watcher
    could not read it back (it would have been booked as the owner's). Found by the fuzz test above."""
    mutant = Transaction.from_hex(paid_spend.hex())
    spent = paid_spend.inputs[0]
    mutant.inputs[0].satoshis, mutant.inputs[0].locking_script = spent.satoshis, spent.locking_script
    raw = spent.unlocking_script.serialize()
    assert raw[-1:] == b"\x00"  # the selector
    mutant.inputs[0].unlocking_script = Script(raw[:-1] + cut)
    with pytest.raises(ScriptError, match="ends inside a push"):
        validate_input(mutant, 0)


def test_any_submission_can_be_read_back(contract: BountyContract, images: dict[str, np.ndarray]) -> None:
    tx = Transaction.from_hex(accepted(contract, images).hex())  # as the watcher gets it: raw bytes
    claim = contract.read_submission(tx.inputs[0].unlocking_script)
    assert claim is not None
    assert np.array_equal(claim.image, images["seven"])
    assert claim.recipient_pkh == address_pkh(USER.address())
    assert claim.successor_satoshis == tx.outputs[0].satoshis
    owner_spend = withdraw(contract, funded(contract), OWNER, OWNER.address())
    assert contract.read_submission(owner_spend.inputs[0].unlocking_script) is None


def test_only_the_submission_shape_reads_as_a_submission(contract: BountyContract) -> None:
    """Every pixel of a white image (none is 0) is read back; a script of another length or selector is no
    submission."""
    white = np.full(784, 255, dtype=np.uint8)
    pushes, pkh, preimage = pixel_pushes(contract.classifier, white), address_pkh(USER.address()), b"\x01" * 200
    claim = contract.read_submission(push_only_script([*pushes, pkh, 1234, preimage, 0]))
    assert claim is not None and np.array_equal(claim.image, white) and claim.recipient_pkh == pkh
    assert claim.successor_satoshis == 1234 and claim.appeal is None
    for items in ([*pushes, pkh, 1234, preimage, 1], [*pushes[:-1], pkh, 1234, preimage, 0],
                  [*pushes, pkh, 1234, preimage, 0, 0], [b"\x30" * 71, 1]):
        assert contract.read_submission(push_only_script(items)) is None
    for pixel in (256, -1, b"\x07\x00"):  # the unlocking script is anyone's: the reader checks every pixel
        with pytest.raises(ContractError, match="pixels are not numbers 0..255"):
            contract.read_submission(push_only_script([pixel, *pushes[1:], pkh, 1234, preimage, 0]))
    for bad_pkh, successor in ((pkh[:-1], 1234), (pkh + b"\0", 1234), (7, 1234), (pkh, b"\x01" * 9)):
        with pytest.raises(ContractError, match="recipient or successor value is malformed"):
            contract.read_submission(push_only_script([*pushes, bad_pkh, successor, preimage, 0]))


ATTESTOR_KEY = PrivateKey(105).public_key().serialize()


@pytest.mark.parametrize("changes", [
    {"digits": (0,)}, {"digits": (9,)}, {"digits": tuple(range(10))}, {"payout": 1}, {"max_fee": 0},
    {"min_margin": 0}, {"tag": 0}, {"owner_pubkey": b"\x03" + b"\x11" * 32},
    {"mode": VETTED, "attestor_pubkey": ATTESTOR_KEY, "appeal_gap": 0},
    {"mode": VETTED, "attestor_pubkey": b"\x03" + ATTESTOR_KEY[1:]},
])
def test_terms_at_their_limits_make_a_bounty(changes: dict[str, object]) -> None:
    made = terms(**changes)
    assert all(getattr(made, name) == value for name, value in changes.items())


@pytest.mark.parametrize(("changes", "message"), [
    ({"digits": ()}, "distinct digits 0..9"), ({"digits": (7, 7)}, "distinct digits 0..9"),
    ({"digits": (10,)}, "distinct digits 0..9"), ({"digits": (-1, 3)}, "distinct digits 0..9"),
    ({"payout": 0}, "at least 1 satoshi, got 0"),
    ({"min_margin": -1}, "cannot be negative"), ({"max_fee": -1}, "cannot be negative"),
    ({"owner_pubkey": b"\x02" * 32}, "33-byte compressed"), ({"owner_pubkey": b"\x04" * 33}, "33-byte compressed"),
    ({"tag": -1}, "tag cannot be negative"),
    ({"attestor_pubkey": ATTESTOR_KEY}, "open bounty has no attestor key"),
    ({"appeal_gap": 1}, "open bounty has no attestor key and no appeal gap"),
    ({"mode": VETTED}, "attestor's 33-byte"), ({"mode": VETTED, "attestor_pubkey": b"\x04" + ATTESTOR_KEY[1:]},
                                                "attestor's 33-byte"),
])
def test_terms_past_their_limits_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        terms(**changes)


def test_a_claim_brings_what_its_mode_needs() -> None:
    open_terms, vetted = terms(digits=(3, 7)), terms(digits=(3, 7), mode=VETTED, attestor_pubkey=ATTESTOR_KEY)
    check_claim(open_terms, None, None)
    for attestor, appeal in ((THIEF, None), (None, 7), (THIEF, 7)):
        with pytest.raises(ContractError, match="open bounty takes no attestor signature and no appeal"):
            check_claim(open_terms, attestor, appeal)
    for appeal in (None, 3, 7):
        check_claim(vetted, THIEF, appeal)
    with pytest.raises(ContractError, match="pays only with its attestor's signature"):
        check_claim(vetted, None, None)
    with pytest.raises(ContractError, match=r"one of the bounty's digits \[3, 7\], not 5"):
        check_claim(vetted, THIEF, 5)


@pytest.mark.parametrize(("script", "values"), [
    ("00", [0]), ("4f", [-1]), ("51", [1]), ("60", [16]), ("0051604f", [0, 1, 16, -1]),
    ("0102", [2]), ("020001", [256]), ("4c0105", [5]), ("0180", [b"\x80"]),  # negative zero: not a number
    ("50", [b""]), ("61", [b""]),  # OP_RESERVED, OP_NOP: no value
    ("080100000000000001", [2**56 + 1]), ("09010000000000000001", [bytes.fromhex("010000000000000001")]),
])
def test_push_values_reads_the_numbers_a_script_pushes(script: str, values: list[int | bytes]) -> None:
    assert push_values(Script(bytes.fromhex(script))) == values


@pytest.mark.parametrize("script", [
    "00", "4f", "51", "60", "0102", "0180", "020001", "09" + "11" * 9, "4c00", "4c0105", "4d0100ff", "4e01000000aa",
    "0051604f4c00", "4c", "0203", "6a0102", "51630100", "50", "61",  # truncated pushes, OP_RETURN, OP_IF, opcodes
])
def test_push_values_reads_like_the_sdks_chunks(script: str) -> None:
    raw = Script(bytes.fromhex(script))
    assert push_values(raw) == [chunk_value(chunk) for chunk in Script(bytes.fromhex(script)).chunks]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_push_values_reads_any_bytes_like_the_sdks_chunks(raw: bytes) -> None:
    assert push_values(Script(raw)) == [chunk_value(chunk) for chunk in Script(raw).chunks]
