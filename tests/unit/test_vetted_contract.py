"""The vetted bounty contract, judged by bsv-sdk's interpreter: the attestor's co-signature, the appeal path,
the exact maximum fee, what a leaked attestor key can and cannot take, and the open contract left as it was."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import pytest
from bsv import P2PKH, PrivateKey, PublicKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.constants import SIGHASH
from bsv.constants import OpCode as OP
from bsv.transaction_preimage import tx_preimage

from contracts.attestor import MAX_SIGNATURE_BYTES, sign_input
from contracts.bounty import OPEN, VETTED, BountyContract, BountyTerms, push_values
from contracts.classifier import as_classifier, pixel_pushes
from contracts.errors import ContractError, ScriptError
from contracts.example import build_example
from contracts.fees import APPEAL, SLACK_BYTES, SUBMISSION, default_max_fee, fee_for, with_max_fee, worst_case_bytes
from contracts.interpreter import validate_input, verify_spend
from contracts.pushtx import preimage_is_signable
from contracts.script import ScriptBuilder, push_only_script
from contracts.transactions import Utxo, address_pkh, appeal, deploy, migrate, submission, withdraw
from model.artifact import ModelArtifact, load_artifact
from model.data import Mnist
from model.reference import classify, logits
from tests.support.fees import fee_problem
from tests.support.reference import ranking_of_test_set, reading_of_test_set

OWNER, WALLET, USER, THIEF, ATTESTOR = (PrivateKey(k) for k in (201, 202, 203, 204, 205))
PAYOUT, BUDGET, DIGIT = 500, 200_000, 7


@dataclass(frozen=True)
class Images:
    seven: np.ndarray       # a 7 the classifier reads as 7
    three: np.ndarray       # read as 3
    fair: np.ndarray        # a 7 the classifier ranks second
    fair_margin: int        # its top - runner-up
    false: np.ndarray       # neither first nor second is 7, top - runner-up within fair_margin
    false_runner_up: int


@pytest.fixture(scope="module")
def images(shipped: ModelArtifact, mnist: Mnist) -> Images:
    read = reading_of_test_set(shipped.integer)
    x, labels, margins = read.x, read.labels, read.margins
    ranked = ranking_of_test_set(shipped.integer)  # ties: lower class first, as on chain
    assert np.array_equal(ranked[:, 0], labels)
    seven = np.where((labels == DIGIT) & (mnist.y_test == DIGIT))[0][0]
    fair = np.where((mnist.y_test == DIGIT) & (ranked[:, 1] == DIGIT) & (margins >= 50) & (margins <= 2_000))[0][0]
    false = np.where((ranked[:, 0] != DIGIT) & (ranked[:, 1] != DIGIT) & (margins <= margins[fair]))[0][0]
    return Images(seven=x[seven], three=x[np.where(labels == 3)[0][0]], fair=x[fair], fair_margin=int(margins[fair]),
                  false=x[false], false_runner_up=int(ranked[false, 1]))


def vetted_terms(gap: int, **changes: object) -> BountyTerms:
    base = BountyTerms(digits=(DIGIT,), payout=PAYOUT, min_margin=0, max_fee=0,
                       owner_pubkey=OWNER.public_key().serialize(), mode=VETTED,
                       attestor_pubkey=ATTESTOR.public_key().serialize(), appeal_gap=gap)
    return replace(base, **changes)  # type: ignore[arg-type]


def exact(contract: BountyContract) -> BountyContract:
    """The contract with the default (exact) maximum fee at 100 sat/kB."""
    return with_max_fee(contract, default_max_fee(contract, 100))


@pytest.fixture(scope="module")
def contract(shipped: ModelArtifact, images: Images) -> BountyContract:
    """Vetted, the appeal gap exactly the fair appeal's margin."""
    return exact(BountyContract(shipped.integer, vetted_terms(images.fair_margin)))


def funded(contract: BountyContract, amount: int = BUDGET) -> Utxo:
    source = Transaction([TransactionInput(source_txid="44" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), amount + 100_000)])
    return Utxo.of(deploy(contract, amount, [Utxo.of(source, 0)], WALLET, WALLET.address()), 0)


def fee_of(tx: Transaction) -> int:
    return int(tx.inputs[0].satoshis - sum(o.satoshis for o in tx.outputs))


def regrind(tx: Transaction) -> None:
    for locktime in range(256):
        tx.locktime = locktime
        if preimage_is_signable(tx.preimage(0)):
            return
    raise AssertionError("no signable nLockTime")


def push(contract: BountyContract, tx: Transaction, image: np.ndarray, payee: PrivateKey, signature: bytes,
         claim: int | None = None) -> Transaction:
    """Set the unlocking script of a vetted spend by hand: the true preimage, `signature` as the attestor's."""
    claims = [] if claim is None else [claim]
    tx.inputs[0].unlocking_script = push_only_script([
        *pixel_pushes(contract.classifier, image), address_pkh(payee.address()), _successor(tx), *claims, signature,
        tx.preimage(0), 0 if claim is None else 1, 0])
    return tx


def _successor(tx: Transaction) -> int:
    return int(tx.outputs[0].satoshis) if len(tx.outputs) == 2 else 0


def forge(contract: BountyContract, utxo: Utxo, outputs: list[TransactionOutput], image: np.ndarray,
          payee: PrivateKey, claim: int | None = None) -> Transaction:
    """What a holder of the attestor key (and not the owner key) can build: any outputs, a true preimage,
    a real attestor signature over exactly this transaction."""
    tx = Transaction([TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout,
                                       unlocking_script=Script(b""))], outputs, version=1)
    tx.inputs[0].satoshis, tx.inputs[0].locking_script = utxo.satoshis, utxo.locking_script
    regrind(tx)
    return push(contract, tx, image, payee, sign_input(ATTESTOR, tx, 0), claim)


def pay(payee: PrivateKey, satoshis: int) -> TransactionOutput:
    return TransactionOutput(P2PKH().lock(payee.address()), satoshis)


# -- the submission path needs the attestor ------------------------------------------------------------------


def test_a_vetted_submission_is_paid_with_the_attestors_signature(contract: BountyContract, images: Images) -> None:
    tx = submission(contract, funded(contract), images.seven, USER.address(), attestor=ATTESTOR)
    validate_input(tx, 0)
    successor, payout = tx.outputs
    assert successor.locking_script.serialize() == contract.lock().serialize()
    assert payout.satoshis == PAYOUT and payout.locking_script.serialize() == P2PKH().lock(USER.address()).serialize()
    assert 0 < fee_of(tx) <= contract.terms.max_fee
    claim = contract.read_submission(Transaction.from_hex(tx.hex()).inputs[0].unlocking_script)
    assert claim is not None and claim.appeal is None and np.array_equal(claim.image, images.seven)


def test_without_the_attestors_signature_it_is_refused(contract: BountyContract, images: Images) -> None:
    with pytest.raises(ContractError, match="attestor"):
        submission(contract, funded(contract), images.seven, USER.address())
    tx = submission(contract, funded(contract), images.seven, USER.address(), attestor=ATTESTOR)
    open_style = [*pixel_pushes(contract.classifier, images.seven), address_pkh(USER.address()), _successor(tx),
                  tx.preimage(0), 0]
    tx.inputs[0].unlocking_script = push_only_script(open_style)  # today's open unlocking script
    with pytest.raises(ScriptError):
        validate_input(tx, 0)
    with pytest.raises(ScriptError):  # an empty signature in its place
        validate_input(push(contract, tx, images.seven, USER, b""), 0)


def test_a_wrong_keys_signature_is_refused(contract: BountyContract, images: Images) -> None:
    utxo = funded(contract)
    with pytest.raises(ContractError, match="not the bounty's attestor key"):
        submission(contract, utxo, images.seven, USER.address(), attestor=THIEF)
    with pytest.raises(ContractError, match="does not verify"):  # a signer holding another key
        submission(contract, utxo, images.seven, USER.address(), attestor=lambda tx, i: sign_input(THIEF, tx, i))
    tx = submission(contract, utxo, images.seven, USER.address(), attestor=ATTESTOR)
    with pytest.raises(ScriptError, match="CHECKSIGVERIFY"):
        validate_input(push(contract, tx, images.seven, USER, sign_input(THIEF, tx, 0)), 0)


def test_the_payee_of_a_broadcast_submission_cannot_be_swapped(contract: BountyContract, images: Images) -> None:
    """The classic theft: copy a broadcast spend, pay yourself, re-push a true preimage, keep its signature."""
    honest = submission(contract, funded(contract), images.seven, USER.address(), attestor=ATTESTOR)
    signature = bytes(honest.inputs[0].unlocking_script.chunks[-4].data)
    stolen = Transaction.from_hex(honest.hex())
    stolen.inputs[0].satoshis, stolen.inputs[0].locking_script = honest.inputs[0].satoshis, contract.lock()
    stolen.outputs[1] = pay(THIEF, PAYOUT)
    regrind(stolen)
    with pytest.raises(ScriptError, match="CHECKSIGVERIFY"):
        validate_input(push(contract, stolen, images.seven, THIEF, signature), 0)


@pytest.mark.parametrize("flag", [SIGHASH.NONE_FORKID, SIGHASH.SINGLE_FORKID, SIGHASH.ALL_ANYONECANPAY_FORKID])
def test_a_signature_of_another_sighash_type_is_refused(contract: BountyContract, images: Images,
                                                         flag: SIGHASH) -> None:
    tx = submission(contract, funded(contract), images.seven, USER.address(), attestor=ATTESTOR)
    tx.inputs[0].sighash = flag
    preimage = tx_preimage(0, tx.inputs, tx.outputs, tx.version, tx.locktime)
    tx.inputs[0].sighash = SIGHASH.ALL_FORKID
    der = ATTESTOR.sign(preimage)
    assert PublicKey(contract.terms.attestor_pubkey).verify(der, preimage)  # a genuine signature, of that type
    with pytest.raises(ScriptError, match="EQUALVERIFY"):
        validate_input(push(contract, tx, images.seven, USER, der + bytes([flag])), 0)


def test_a_vetted_digit_set_with_a_minimum_margin(contract: BountyContract, images: Images) -> None:
    margins = {name: int(classify(contract.model, getattr(images, name))[1][0]) for name in ("seven", "three")}
    weaker = min(margins, key=margins.__getitem__)
    for min_margin, valid in ((margins[weaker], True), (margins[weaker] + 1, False)):
        both = exact(BountyContract(contract.classifier, vetted_terms(images.fair_margin, digits=(3, DIGIT),
                                                                      min_margin=min_margin)))
        utxo = funded(both)
        tx = submission(both, utxo, getattr(images, weaker), USER.address(), attestor=ATTESTOR)
        if valid:
            validate_input(tx, 0)
            other = images.three if weaker == "seven" else images.seven
            validate_input(submission(both, utxo, other, USER.address(), attestor=ATTESTOR), 0)
            validate_input(appeal(both, utxo, images.fair, USER.address(), DIGIT, ATTESTOR), 0)  # no margin rule
        else:
            with pytest.raises(ScriptError, match="truthy after script evaluation"):
                validate_input(tx, 0)


# -- the appeal path -----------------------------------------------------------------------------------------


def test_an_appeal_for_the_runner_up_within_the_gap_is_paid(contract: BountyContract, images: Images) -> None:
    tx = appeal(contract, funded(contract), images.fair, USER.address(), DIGIT, ATTESTOR)
    validate_input(tx, 0)  # the gap is exactly this image's margin
    assert tx.outputs[1].satoshis == PAYOUT and 0 < fee_of(tx) <= contract.terms.max_fee
    claim = contract.read_submission(Transaction.from_hex(tx.hex()).inputs[0].unlocking_script)
    assert claim is not None and claim.appeal == DIGIT and np.array_equal(claim.image, images.fair)


def test_an_appeal_pays_the_fee_of_the_rate_asked_for(contract: BountyContract, images: Images) -> None:
    for rate in (50, 100):
        tx = appeal(contract, funded(contract), images.fair, USER.address(), DIGIT, ATTESTOR, fee_rate=rate)
        validate_input(tx, 0)
        assert fee_problem(fee_of(tx), tx, rate) is None  # to the satoshi


@pytest.mark.parametrize("appealed", [False, True], ids=["submission", "appeal"])
def test_a_vetted_spends_size_estimate_is_exact_but_for_the_signature_and_the_script_length(
        contract: BountyContract, images: Images, appealed: bool) -> None:
    """The estimate the fee is priced on counts the longest signature and a 9-byte script length in the
    preimage; everything else it counts exactly."""
    image, claimed = (images.fair, DIGIT) if appealed else (images.seven, None)
    tx = submission(contract, funded(contract), image, USER.address(), attestor=ATTESTOR, appeal=claimed)
    unlocking = tx.inputs[0].unlocking_script
    signature = push_values(unlocking)[-4]
    estimate = contract.submission_unlock(image, address_pkh(USER.address()), tx.outputs[0].satoshis,
                                          ATTESTOR, claimed).estimated_unlocking_byte_length()
    script_length = contract.locking_script_bytes
    varint = 1 if script_length < 0xFD else 3 if script_length <= 0xFFFF else 5
    assert estimate - len(unlocking.serialize()) == (MAX_SIGNATURE_BYTES - len(signature)) + (9 - varint)


def test_an_appeal_beyond_the_gap_is_refused(contract: BountyContract, images: Images) -> None:
    narrow = exact(BountyContract(contract.classifier, vetted_terms(images.fair_margin - 1)))
    with pytest.raises(ScriptError, match="OP_VERIFY"):
        validate_input(appeal(narrow, funded(narrow), images.fair, USER.address(), DIGIT, ATTESTOR), 0)


def test_an_appeal_for_a_digit_that_is_not_the_runner_up_is_refused(contract: BountyContract,
                                                                     images: Images) -> None:
    wide = exact(BountyContract(contract.classifier, vetted_terms(10**6)))  # only the runner-up rule can refuse
    for image in (images.false, images.seven):  # 7 neither first nor second; 7 first
        tx = appeal(wide, funded(wide), image, USER.address(), DIGIT, ATTESTOR)
        with pytest.raises(ScriptError, match="truthy after script evaluation"):
            validate_input(tx, 0)
    with pytest.raises(ScriptError, match="truthy after script evaluation"):  # within the bounty's own gap too
        validate_input(appeal(contract, funded(contract), images.false, USER.address(), DIGIT, ATTESTOR), 0)


def test_an_appeal_for_a_digit_the_bounty_does_not_pay_is_refused(contract: BountyContract,
                                                                   images: Images) -> None:
    utxo = funded(contract)
    runner_up = images.false_runner_up  # truly the runner-up, within the gap, but not the bounty's digit
    with pytest.raises(ContractError, match="one of the bounty's digits"):
        appeal(contract, utxo, images.false, USER.address(), runner_up, ATTESTOR)
    tx = appeal(contract, utxo, images.fair, USER.address(), DIGIT, ATTESTOR)
    with pytest.raises(ScriptError, match="NUMEQUALVERIFY"):
        validate_input(push(contract, tx, images.false, USER, sign_input(ATTESTOR, tx, 0), runner_up), 0)


def test_the_runner_up_fragment_agrees_with_the_reference(shipped: ModelArtifact, mnist: Mnist) -> None:
    """label, margin and runner-up claimed for a few images, checked by the vetted variant of the classifier."""
    x = mnist.x_test.reshape(-1, 784)[:4]
    ranked = np.argsort(-logits(shipped.integer, x), axis=1, kind="stable")
    labels, margins = classify(shipped.integer, x)
    fragment = as_classifier(shipped.integer, runner_up=True).with_extra_items(3)
    check = ScriptBuilder().add(OP.OP_FROMALTSTACK, OP.OP_NUMEQUALVERIFY, OP.OP_FROMALTSTACK, OP.OP_NUMEQUALVERIFY,
                                OP.OP_FROMALTSTACK, OP.OP_NUMEQUAL).build()
    for image, label, margin, runner_up in zip(x, labels, margins, ranked[:, 1], strict=True):
        claims = [int(label), int(margin), int(runner_up)]  # the label comes back first from the alt stack
        verify_spend(fragment.code + check, push_only_script([*pixel_pushes(fragment, image), *claims]))
        with pytest.raises(ScriptError):
            wrong = [int(label), int(margin), (int(runner_up) + 1) % 10]
            verify_spend(fragment.code + check, push_only_script([*pixel_pushes(fragment, image), *wrong]))


# -- the owner path, and a leaked attestor key ---------------------------------------------------------------


def test_the_owner_withdraws_and_migrates_a_vetted_bounty(contract: BountyContract, images: Images) -> None:
    utxo = funded(contract)
    validate_input(withdraw(contract, utxo, OWNER, OWNER.address()), 0)
    successor = exact(BountyContract(contract.classifier, vetted_terms(0, payout=700)))
    moved = migrate(contract, utxo, OWNER, successor)
    validate_input(moved, 0)
    validate_input(submission(successor, Utxo.of(moved, 0), images.seven, USER.address(), attestor=ATTESTOR), 0)
    assert contract.read_submission(moved.inputs[0].unlocking_script) is None


def test_a_leaked_attestor_key_pays_one_payout_per_spend(contract: BountyContract, images: Images) -> None:
    """With the attestor key the thief takes a payout for an image the classifier accepts; the rest stays."""
    utxo = funded(contract)
    fee = contract.terms.max_fee
    tx = forge(contract, utxo, [TransactionOutput(contract.lock(), BUDGET - PAYOUT - fee), pay(THIEF, PAYOUT)],
               images.seven, THIEF)
    validate_input(tx, 0)  # paid: one payout, at most the maximum fee, the balance in the successor
    more = forge(contract, utxo, [TransactionOutput(contract.lock(), BUDGET - PAYOUT - fee - 1), pay(THIEF, PAYOUT)],
                 images.seven, THIEF)
    with pytest.raises(ScriptError):  # one satoshi more fee than the maximum
        validate_input(more, 0)


def test_a_leaked_attestor_key_cannot_take_the_balance(contract: BountyContract, images: Images) -> None:
    utxo = funded(contract)
    fee = contract.terms.max_fee
    attempts = {
        "withdraw everything": [pay(THIEF, BUDGET - fee)],
        "raise the payout": [TransactionOutput(contract.lock(), BUDGET - 10 * PAYOUT - fee), pay(THIEF, 10 * PAYOUT)],
        "skip the successor": [pay(THIEF, PAYOUT)],  # the rest as fee: above the maximum
        "a successor the thief owns": [pay(THIEF, BUDGET - PAYOUT - fee), pay(THIEF, PAYOUT)],
    }
    for name, outputs in attempts.items():
        with pytest.raises(ScriptError):
            validate_input(forge(contract, utxo, outputs, images.seven, THIEF), 0)
            pytest.fail(name)
    owner_path = withdraw(BountyContract(contract.classifier, replace(
        contract.terms, owner_pubkey=ATTESTOR.public_key().serialize(),
        attestor_pubkey=OWNER.public_key().serialize())), utxo, ATTESTOR, THIEF.address())
    owner_path.inputs[0].locking_script = contract.lock()  # the attestor's signature on the owner path
    with pytest.raises(ScriptError):
        validate_input(owner_path, 0)


# -- exact maximum fees --------------------------------------------------------------------------------------


def test_the_default_max_fee_is_the_largest_spends_fee(contract: BountyContract, images: Images) -> None:
    max_fee = contract.terms.max_fee
    assert default_max_fee(contract, 100) == max_fee  # a fixed point: the bound in the script bounds that script
    worst = max(worst_case_bytes(contract, SUBMISSION), worst_case_bytes(contract, APPEAL))
    assert max_fee == fee_for(worst + SLACK_BYTES, 100)
    utxo = funded(contract)
    white = np.full(784, 255, dtype=np.uint8)  # every pixel pushed in 3 bytes: the largest unlocking script
    largest = appeal(contract, utxo, white, USER.address(), DIGIT, ATTESTOR)
    assert largest.byte_length() <= worst and fee_of(largest) <= max_fee < fee_of(largest) + 10
    for tx in (submission(contract, utxo, images.seven, USER.address(), attestor=ATTESTOR),
               appeal(contract, utxo, images.fair, USER.address(), DIGIT, ATTESTOR)):
        assert tx.byte_length() <= worst and fee_for(tx.byte_length(), 100) <= fee_of(tx) <= max_fee


def test_vetted_submissions_and_appeals_are_told_apart_and_nothing_else_reads_as_one(contract: BountyContract,
                                                                                     images: Images) -> None:
    """A vetted submission ends `<sig> <preimage> 0 0`, an appeal `<digit> <sig> <preimage> 1 0`: each shape is
    read only at its own length and with its own selector (the watcher books what this reads)."""
    pushes, pkh = pixel_pushes(contract.classifier, images.seven), address_pkh(USER.address())
    sig, preimage = b"\x30" * 71, b"\x01" * 200
    plain = contract.read_submission(push_only_script([*pushes, pkh, 900, sig, preimage, 0, 0]))
    appealed = contract.read_submission(push_only_script([*pushes, pkh, 900, DIGIT, sig, preimage, 1, 0]))
    assert plain is not None and plain.appeal is None and np.array_equal(plain.image, images.seven)
    assert appealed is not None and appealed.appeal == DIGIT and np.array_equal(appealed.image, images.seven)
    assert (plain.recipient_pkh, plain.successor_satoshis) == (appealed.recipient_pkh, appealed.successor_satoshis) \
        == (pkh, 900)
    for items in ([*pushes, pkh, 900, sig, preimage, 1, 1], [*pushes, 0, 0], [*pushes, pkh, 900, sig, preimage, 1, 0],
                  [*pushes, pkh, 900, DIGIT, sig, preimage, 0, 1], [sig, 1]):
        assert contract.read_submission(push_only_script(items)) is None
    zero = contract.read_submission(push_only_script([*pushes, pkh, 900, 0, sig, preimage, 1, 0]))
    assert zero is not None and zero.appeal == 0  # 0 is a digit an appeal may claim
    for claimed in (10, -1, b"\x07\x00"):
        with pytest.raises(ContractError, match="appeal does not claim a digit 0..9"):
            contract.read_submission(push_only_script([*pushes, pkh, 900, claimed, sig, preimage, 1, 0]))


def test_the_largest_appeal_counts_the_digit_it_claims(contract: BountyContract) -> None:
    """The maximum fee covers the largest appeal, which pushes one item more than the largest submission: the
    claimed digit (OP_7, one byte)."""
    assert worst_case_bytes(contract, APPEAL) == worst_case_bytes(contract, SUBMISSION) + 1


def test_one_satoshi_above_the_open_default_max_fee_is_refused(contract: BountyContract, images: Images) -> None:
    open_contract = exact(BountyContract(contract.classifier.model, replace(
        contract.terms, mode=OPEN, attestor_pubkey=None, appeal_gap=0)))
    max_fee = open_contract.terms.max_fee
    utxo = funded(open_contract)
    tx = submission(open_contract, utxo, images.seven, USER.address())
    assert fee_of(tx) <= max_fee
    for extra, valid in ((1, False), (0, True)):
        tx.outputs[0].satoshis = BUDGET - PAYOUT - max_fee - extra
        regrind(tx)
        tx.inputs[0].unlocking_script = open_contract.submission_unlock(
            images.seven, address_pkh(USER.address()), tx.outputs[0].satoshis).sign(tx, 0)
        if valid:
            validate_input(tx, 0)
        else:
            with pytest.raises(ScriptError, match="VERIFY"):
                validate_input(tx, 0)


# -- terms, the open contract unchanged, the example ---------------------------------------------------------


def test_the_open_contract_is_byte_identical_to_before() -> None:
    shipped = load_artifact("seed")  # the digests below were taken with the seed's 784-64-10, then the default
    owner = PrivateKey(0xB0B).public_key().serialize()
    plain = BountyTerms(digits=(7,), payout=500, min_margin=0, max_fee=20_000, owner_pubkey=owner)
    tagged = replace(plain, digits=(3, 7), min_margin=1000, tag=12)
    digests = {t: hashlib.sha256(BountyContract(shipped.integer, t).lock().serialize()).hexdigest()
               for t in (plain, tagged)}
    assert plain.mode == OPEN
    assert digests[plain] == "2b3eba1d53cf03b6ef7998e48300fb42df780d337233d1a295269b2b9fe1a182"  # before vetted mode
    assert digests[tagged] == "0d7e9d11b8ba7dbfbce3ddb947a673637ed842f9d72e02246415aa039ba6e9cc"
    attestor = ATTESTOR.public_key().serialize()
    vetted = {t: hashlib.sha256(BountyContract(shipped.integer, t).lock().serialize()).hexdigest() for t in (
        replace(plain, mode=VETTED, attestor_pubkey=attestor, appeal_gap=2_000, max_fee=8_729),
        replace(tagged, mode=VETTED, attestor_pubkey=attestor))}
    assert list(vetted.values()) == [  # before prize pools shared its parts (contracts.pool)
        "3634d2f999379b2b46b595f6173a03d122ffd4a6c66ff17bc6e0caf966b008bd",
        "49895d149d44146ae6da83ff236ea9c5982eed8e41cecc294d944bc46d484c2b"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"attestor_pubkey": None}, "attestor's 33-byte"),
    ({"attestor_pubkey": b"\x02" * 32}, "attestor's 33-byte"),
    ({"attestor_pubkey": OWNER.public_key().serialize()}, "must not be the owner key"),
    ({"appeal_gap": -1}, "appeal gap cannot be negative"),
    ({"mode": OPEN}, "open bounty has no attestor"),
    ({"mode": "sealed"}, "mode must be"),
])
def test_bad_vetted_terms_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        vetted_terms(0, **changes)


def test_the_vetted_example_replays(shipped: ModelArtifact, mnist: Mnist) -> None:
    result = build_example(shipped.integer, mnist.x_test, mnist.y_test, mode=VETTED)
    verdicts = {name: verdict == "valid" for name, verdict in result["bsv_sdk_verdict"].items()}
    assert verdicts == result["expected_valid"]
    assert set(verdicts) >= {"appeal_tx", "false_appeal_tx", "unattested_tx"}
    assert "CHECKSIGVERIFY" in result["bsv_sdk_verdict"]["unattested_tx"]
