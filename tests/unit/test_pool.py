"""Prize-pool bounties, judged by bsv-sdk's interpreter: K independent prizes under one script, claims in open and
vetted mode, appeals, the owner's reclaim, exact fee allowances, and every way to cheat a claim."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
from bsv import P2PKH, PrivateKey, PublicKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.constants import SIGHASH
from bsv.transaction_preimage import tx_preimage
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts.attestor import MAX_SIGNATURE_BYTES, sign_input
from contracts.bounty import OPEN, VETTED, BountyContract, BountyTerms, push_values
from contracts.classifier import pixel_pushes
from contracts.errors import ContractError, ScriptError
from contracts.example import build_pool_example
from contracts.fees import APPEAL, SLACK_BYTES, SUBMISSION, default_max_fee, fee_for, with_max_fee, worst_case_bytes
from contracts.interpreter import validate_input
from contracts.pool import PoolContract
from contracts.script import encode_item, push_only_script
from contracts.transactions import Utxo, appeal_claim, claim, deploy_prizes, pool_move, reclaim
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.support.fees import fee_problem
from tests.support.reference import ranking_of_test_set, reading_of_test_set

OWNER, WALLET, USER, THIEF, ATTESTOR = (PrivateKey(k) for k in (301, 302, 303, 304, 305))
PAYOUT, DIGIT, PRIZES = 500, 7, 3


@dataclass(frozen=True)
class Images:
    seven: np.ndarray       # a 7 the classifier reads as 7
    seven_margin: int
    three: np.ndarray       # read as 3
    fair: np.ndarray        # a 7 the classifier ranks second
    fair_margin: int
    false: np.ndarray       # neither first nor second is 7, top - runner-up within fair_margin


@pytest.fixture(scope="module")
def images(shipped: ModelArtifact, mnist: Mnist) -> Images:
    read = reading_of_test_set(shipped.integer)
    x, labels, margins = read.x, read.labels, read.margins
    ranked = ranking_of_test_set(shipped.integer)  # ties: lower class first, as on chain
    seven = np.where((labels == DIGIT) & (mnist.y_test == DIGIT))[0][0]
    fair = np.where((mnist.y_test == DIGIT) & (ranked[:, 1] == DIGIT) & (margins >= 50) & (margins <= 2_000))[0][0]
    false = np.where((ranked[:, 0] != DIGIT) & (ranked[:, 1] != DIGIT) & (margins <= margins[fair]))[0][0]
    return Images(seven=x[seven], seven_margin=int(margins[seven]), three=x[np.where(labels == 3)[0][0]],
                  fair=x[fair], fair_margin=int(margins[fair]), false=x[false])


def terms(mode: str = OPEN, **changes: object) -> BountyTerms:
    base = BountyTerms(digits=(DIGIT,), payout=PAYOUT, min_margin=0, max_fee=0,
                       owner_pubkey=OWNER.public_key().serialize(), tag=14)
    if mode == VETTED:
        base = replace(base, mode=VETTED, attestor_pubkey=ATTESTOR.public_key().serialize())
    return replace(base, **changes)  # type: ignore[arg-type]


def pool_of(shipped: ModelArtifact, bounty_terms: BountyTerms) -> PoolContract:
    """A pool whose prizes carry the exact fee allowance at 100 sat/kB."""
    pool = PoolContract(shipped.integer, bounty_terms)
    return with_max_fee(pool, default_max_fee(pool, 100))


@pytest.fixture(scope="module")
def open_pool(shipped: ModelArtifact) -> PoolContract:
    return pool_of(shipped, terms())


@pytest.fixture(scope="module")
def vetted(shipped: ModelArtifact, images: Images) -> PoolContract:
    """Vetted, the appeal gap exactly the fair appeal's margin."""
    return pool_of(shipped, terms(VETTED, appeal_gap=images.fair_margin))


def prizes(pool: PoolContract, count: int = PRIZES) -> list[Utxo]:
    """A wallet output from a made-up source, then a real deploy of `count` prizes spending it."""
    source = Transaction([TransactionInput(source_txid="55" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), count * pool.prize_satoshis + 200_000)])
    tx = deploy_prizes(pool, count, [Utxo.of(source, 0)], WALLET, WALLET.address())
    validate_input(tx, 0)
    return [Utxo.of(tx, i) for i in range(count)]


def fee_of(tx: Transaction) -> int:
    return int(sum(i.satoshis for i in tx.inputs) - sum(o.satoshis for o in tx.outputs))


def pay(payee: PrivateKey, satoshis: int) -> TransactionOutput:
    return TransactionOutput(P2PKH().lock(payee.address()), satoshis)


def spend(prize: Utxo, outputs: list[TransactionOutput], unlocking: Script | None = None) -> Transaction:
    """A hand-made transaction spending `prize` into `outputs`."""
    tx = Transaction([TransactionInput(source_txid=prize.txid, source_output_index=prize.vout,
                                       unlocking_script=unlocking or Script(b""))], outputs, version=1)
    tx.inputs[0].satoshis, tx.inputs[0].locking_script = prize.satoshis, prize.locking_script
    return tx


def vetted_push(pool: PoolContract, tx: Transaction, image: np.ndarray, signature: bytes,
                appeal: int | None = None) -> Transaction:
    """Set a vetted claim's unlocking script by hand, `signature` as the attestor's."""
    claims = [] if appeal is None else [appeal]
    tx.inputs[0].unlocking_script = push_only_script([*pixel_pushes(pool.classifier, image), *claims, signature,
                                                      0 if appeal is None else 1, 0])
    return tx


# -- the script and the deploy -------------------------------------------------------------------------------


def test_the_prize_script_is_the_classifier_and_little_else(open_pool: PoolContract, vetted: PoolContract,
                                                            shipped: ModelArtifact) -> None:
    chain = BountyContract(shipped.integer, replace(open_pool.terms, max_fee=20_000))
    assert open_pool.locking_script_bytes - open_pool.classifier.locking_script_bytes < 60
    assert open_pool.locking_script_bytes < chain.locking_script_bytes - 150  # no OP_PUSH_TX, no covenant
    assert vetted.locking_script_bytes - vetted.classifier.locking_script_bytes < 140
    open_pool.script.check_limits()
    vetted.script.check_limits()
    # the payout and the fee allowance are not in the script: they live in each prize's value
    richer = PoolContract(shipped.integer, replace(open_pool.terms, payout=900, max_fee=1))
    assert richer.lock().serialize() == open_pool.lock().serialize()
    other_bounty = PoolContract(shipped.integer, replace(open_pool.terms, tag=15))
    assert other_bounty.lock().serialize() != open_pool.lock().serialize()


def test_a_deploy_creates_k_prizes_the_reserve_and_change(open_pool: PoolContract) -> None:
    source = Transaction([TransactionInput(source_txid="66" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), 1_000_000)])
    tx = deploy_prizes(open_pool, 4, [Utxo.of(source, 0)], WALLET, WALLET.address(), reserve=300_000,
                       reserve_to=OWNER.address())
    validate_input(tx, 0)
    *made, reserve, change = tx.outputs
    assert len(made) == 4
    assert all(o.locking_script.serialize() == open_pool.lock().serialize() for o in made)
    assert all(o.satoshis == open_pool.prize_satoshis == PAYOUT + open_pool.terms.max_fee for o in made)
    assert reserve.satoshis == 300_000
    assert reserve.locking_script.serialize() == P2PKH().lock(OWNER.address()).serialize()
    assert fee_of(tx) == fee_for(tx.byte_length(), 100)
    assert change.satoshis == 1_000_000 - 4 * open_pool.prize_satoshis - 300_000 - fee_of(tx)
    for bad in ({"count": 0}, {"count": 1, "reserve": 5}, {"count": 1, "reserve_to": OWNER.address()}):
        with pytest.raises(ContractError):
            deploy_prizes(open_pool, wallet=[Utxo.of(source, 0)], wallet_key=WALLET, change_to=WALLET.address(),
                          **bad)  # type: ignore[arg-type]


# -- open mode -----------------------------------------------------------------------------------------------


def test_an_accepted_image_takes_a_prize_in_a_small_claim(open_pool: PoolContract, images: Images) -> None:
    prize = prizes(open_pool, 1)[0]
    tx = claim(open_pool, prize, images.seven, USER.address(), change_to=OWNER.address())
    validate_input(tx, 0)
    payee, leftover = tx.outputs
    assert payee.satoshis == PAYOUT and payee.locking_script.serialize() == P2PKH().lock(USER.address()).serialize()
    assert leftover.locking_script.serialize() == P2PKH().lock(OWNER.address()).serialize()
    assert len(tx.inputs) == 1 and tx.byte_length() < 1_300  # the pixels, and no copy of the script
    assert fee_of(tx) == fee_for(tx.byte_length(), 100)  # open claims sign nothing: the estimate is exact
    assert leftover.satoshis == open_pool.terms.max_fee - fee_of(tx) > 0
    whole = claim(open_pool, prize, images.seven, USER.address())  # no change address: the allowance is the fee
    validate_input(whole, 0)
    assert len(whole.outputs) == 1 and fee_of(whole) == open_pool.terms.max_fee


def test_each_prize_is_spent_on_its_own(open_pool: PoolContract, images: Images) -> None:
    first, second, third = prizes(open_pool)
    for prize, payee in ((third, USER), (first, THIEF)):  # any order, any payee, one transaction each
        tx = claim(open_pool, prize, images.seven, payee.address())
        validate_input(tx, 0)
        assert [(i.source_txid, i.source_output_index) for i in tx.inputs] == [(prize.txid, prize.vout)]
        assert all(o.locking_script.serialize() != open_pool.lock().serialize() for o in tx.outputs)  # no successor
    back = reclaim(open_pool, [second], OWNER, OWNER.address())
    validate_input(back, 0)
    assert back.outputs[0].satoshis == open_pool.prize_satoshis - fee_of(back)


def test_in_open_mode_anyone_with_an_accepted_image_takes_the_whole_prize(open_pool: PoolContract,
                                                                          images: Images) -> None:
    """Nothing binds an open claim's outputs: copy a broadcast claim's pixels, pay yourself everything."""
    prize = prizes(open_pool, 1)[0]
    honest = Transaction.from_hex(claim(open_pool, prize, images.seven, USER.address()).hex())
    read = open_pool.read_claim(honest.inputs[0].unlocking_script)
    assert read is not None and np.array_equal(read.image, images.seven) and read.appeal is None
    unlocking = push_only_script([*pixel_pushes(open_pool.classifier, read.image), 0])
    stolen = spend(prize, [pay(THIEF, prize.satoshis - 150)], unlocking)
    validate_input(stolen, 0)


def test_another_digit_or_a_low_margin_is_refused(shipped: ModelArtifact, open_pool: PoolContract,
                                                  images: Images) -> None:
    with pytest.raises(ScriptError, match="NUMEQUALVERIFY"):
        validate_input(claim(open_pool, prizes(open_pool, 1)[0], images.three, USER.address()), 0)
    for min_margin, valid in ((images.seven_margin, True), (images.seven_margin + 1, False)):
        strict = pool_of(shipped, terms(min_margin=min_margin))
        tx = claim(strict, prizes(strict, 1)[0], images.seven, USER.address())
        if valid:
            validate_input(tx, 0)
        else:
            with pytest.raises(ScriptError, match="truthy after script evaluation"):
                validate_input(tx, 0)
    both = pool_of(shipped, terms(digits=(3, DIGIT)))
    for image in (images.seven, images.three):
        validate_input(claim(both, prizes(both, 1)[0], image, USER.address()), 0)


def test_tampered_pixels_are_refused(open_pool: PoolContract, images: Images) -> None:
    prize = prizes(open_pool, 1)[0]
    pixels = pixel_pushes(open_pool.classifier, images.seven)  # deepest first: the first ones no weight reads
    non_minimal = Script(b"".join(encode_item(p) for p in pixels[:-1]) + b"\x02\x05\x00" + b"\x00")
    attempts = {
        "a pixel of 256": [*pixels[:-1], 256, 0],
        "a negative pixel": [*pixels[:-1], -1, 0],
        "an unread pixel of 256": [256, *pixels[1:], 0],
        "783 pixels": [*pixels[:-1], 0],
        "785 pixels": [0, *pixels, 0],
        "another digit's pixels in the order": [*pixel_pushes(open_pool.classifier, images.three), 0],
    }
    for name, items in attempts.items():
        with pytest.raises(ScriptError):
            validate_input(spend(prize, [pay(USER, PAYOUT)], push_only_script(items)), 0)
            pytest.fail(name)
    with pytest.raises(ScriptError):  # a pixel pushed in two bytes where one is minimal
        validate_input(spend(prize, [pay(USER, PAYOUT)], non_minimal), 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.integers(-300, 70_000), st.binary(max_size=40)), max_size=12))
def test_random_unlocking_scripts_never_claim(open_pool: PoolContract, items: list[int | bytes]) -> None:
    prize = Utxo("77" * 32, 0, open_pool.prize_satoshis, open_pool.lock())
    with pytest.raises(ScriptError):
        validate_input(spend(prize, [pay(THIEF, PAYOUT)], push_only_script(items)), 0)


@pytest.fixture(scope="module")
def paid_claim(open_pool: PoolContract, images: Images) -> Transaction:
    return claim(open_pool, prizes(open_pool, 1)[0], images.seven, USER.address())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_claims_spend_only_for_an_accepted_image(open_pool: PoolContract, paid_claim: Transaction,
                                                         data: st.DataObject) -> None:
    """Overwrite a few bytes of a valid claim's unlocking script: a mutant may still be valid, but only if it
    now pushes an image the bounty pays for."""
    raw = bytearray(paid_claim.inputs[0].unlocking_script.serialize())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        raw[data.draw(st.integers(0, len(raw) - 1), label="at")] = data.draw(st.integers(0, 255), label="byte")
    mutant = Transaction.from_hex(paid_claim.hex())
    mutant.inputs[0].satoshis = paid_claim.inputs[0].satoshis
    mutant.inputs[0].locking_script = paid_claim.inputs[0].locking_script
    mutant.inputs[0].unlocking_script = Script(bytes(raw))
    try:
        validate_input(mutant, 0)
    except ScriptError:
        event("refused")
        return
    event("still valid")
    read = open_pool.read_claim(mutant.inputs[0].unlocking_script)
    assert read is not None
    label, _margin = (int(v[0]) for v in classify(open_pool.model, read.image))
    assert label in open_pool.terms.digits


# -- vetted mode ---------------------------------------------------------------------------------------------


def test_a_vetted_claim_is_paid_with_the_attestors_signature(vetted: PoolContract, images: Images) -> None:
    prize = prizes(vetted, 1)[0]
    tx = claim(vetted, prize, images.seven, USER.address(), attestor=ATTESTOR, change_to=OWNER.address())
    validate_input(tx, 0)
    assert tx.outputs[0].satoshis == PAYOUT and tx.byte_length() < 1_400
    assert fee_for(tx.byte_length(), 100) <= fee_of(tx) <= vetted.terms.max_fee
    read = vetted.read_claim(Transaction.from_hex(tx.hex()).inputs[0].unlocking_script)
    assert read is not None and read.appeal is None and np.array_equal(read.image, images.seven)
    with pytest.raises(ContractError, match="attestor"):
        claim(vetted, prize, images.seven, USER.address())
    with pytest.raises(ContractError, match="open bounty"):
        claim(pool_of_open(vetted), Utxo(prize.txid, 0, prize.satoshis, pool_of_open(vetted).lock()),
              images.seven, USER.address(), attestor=ATTESTOR)


def pool_of_open(pool: PoolContract) -> PoolContract:
    return PoolContract(pool.model, replace(pool.terms, mode=OPEN, attestor_pubkey=None, appeal_gap=0))


def test_without_or_with_a_wrong_signature_a_vetted_claim_is_refused(vetted: PoolContract, images: Images) -> None:
    prize = prizes(vetted, 1)[0]
    tx = claim(vetted, prize, images.seven, USER.address(), attestor=ATTESTOR)
    open_style = push_only_script([*pixel_pushes(vetted.classifier, images.seven), 0])
    for unlocking in (open_style, vetted_push(vetted, tx, images.seven, b"").inputs[0].unlocking_script):
        tx.inputs[0].unlocking_script = unlocking
        with pytest.raises(ScriptError):
            validate_input(tx, 0)
    with pytest.raises(ContractError, match="not the bounty's attestor key"):
        claim(vetted, prize, images.seven, USER.address(), attestor=THIEF)
    with pytest.raises(ContractError, match="does not verify"):  # a signer holding another key
        claim(vetted, prize, images.seven, USER.address(), attestor=lambda t, i: sign_input(THIEF, t, i))
    for key in (THIEF, OWNER):
        with pytest.raises(ScriptError, match="CHECKSIGVERIFY"):
            validate_input(vetted_push(vetted, tx, images.seven, sign_input(key, tx, 0)), 0)


def test_outputs_changed_after_the_attestor_signed_are_refused(vetted: PoolContract, images: Images) -> None:
    honest = claim(vetted, prizes(vetted, 1)[0], images.seven, USER.address(), attestor=ATTESTOR,
                   change_to=OWNER.address())
    signature = bytes(honest.inputs[0].unlocking_script.chunks[-3].data)
    payout, leftover = honest.outputs
    changes = {
        "the payee swapped": [pay(THIEF, PAYOUT), leftover],
        "the payout raised from the leftover": [pay(USER, PAYOUT + 50), pay(OWNER, leftover.satoshis - 50)],
        "the leftover taken": [payout, pay(THIEF, leftover.satoshis)],
        "the leftover left to the fee": [payout],
        "an output added": [payout, pay(OWNER, leftover.satoshis - 20), pay(THIEF, 20)],
    }
    for name, outputs in changes.items():
        tx = Transaction.from_hex(honest.hex())
        tx.inputs[0].satoshis, tx.inputs[0].locking_script = honest.inputs[0].satoshis, vetted.lock()
        tx.outputs = outputs
        with pytest.raises(ScriptError, match="CHECKSIGVERIFY"):
            validate_input(vetted_push(vetted, tx, images.seven, signature), 0)
            pytest.fail(name)
    relocked = Transaction.from_hex(honest.hex())  # the same outputs with another nLockTime: signed no more
    relocked.inputs[0].satoshis, relocked.inputs[0].locking_script = honest.inputs[0].satoshis, vetted.lock()
    relocked.locktime += 1
    with pytest.raises(ScriptError, match="CHECKSIGVERIFY"):
        validate_input(relocked, 0)


@pytest.mark.parametrize("flag", [SIGHASH.NONE_FORKID, SIGHASH.SINGLE_FORKID, SIGHASH.ALL_ANYONECANPAY_FORKID])
def test_a_signature_of_another_sighash_type_is_refused(vetted: PoolContract, images: Images, flag: SIGHASH) -> None:
    tx = claim(vetted, prizes(vetted, 1)[0], images.seven, USER.address(), attestor=ATTESTOR)
    tx.inputs[0].sighash = flag
    preimage = tx_preimage(0, tx.inputs, tx.outputs, tx.version, tx.locktime)
    tx.inputs[0].sighash = SIGHASH.ALL_FORKID
    der = ATTESTOR.sign(preimage)
    assert PublicKey(vetted.terms.attestor_pubkey).verify(der, preimage)  # a genuine signature, of that type
    with pytest.raises(ScriptError, match="EQUALVERIFY"):
        validate_input(vetted_push(vetted, tx, images.seven, der + bytes([flag])), 0)


def test_a_vetted_claim_of_another_digit_is_refused(vetted: PoolContract, images: Images) -> None:
    tx = claim(vetted, prizes(vetted, 1)[0], images.three, USER.address(), attestor=ATTESTOR)
    with pytest.raises(ScriptError, match="NUMEQUALVERIFY"):
        validate_input(tx, 0)


def test_an_appeal_within_the_gap_is_paid_and_one_outside_refused(shipped: ModelArtifact, vetted: PoolContract,
                                                                  images: Images) -> None:
    tx = appeal_claim(vetted, prizes(vetted, 1)[0], images.fair, USER.address(), DIGIT, ATTESTOR)
    validate_input(tx, 0)  # the gap is exactly this image's margin
    read = vetted.read_claim(Transaction.from_hex(tx.hex()).inputs[0].unlocking_script)
    assert read is not None and read.appeal == DIGIT and np.array_equal(read.image, images.fair)
    narrow = pool_of(shipped, terms(VETTED, appeal_gap=images.fair_margin - 1))
    with pytest.raises(ScriptError, match="OP_VERIFY"):
        validate_input(appeal_claim(narrow, prizes(narrow, 1)[0], images.fair, USER.address(), DIGIT, ATTESTOR), 0)


def test_an_appeal_for_a_digit_that_is_not_the_runner_up_is_refused(shipped: ModelArtifact,
                                                                     images: Images) -> None:
    wide = pool_of(shipped, terms(VETTED, appeal_gap=10**6))  # only the runner-up rule can refuse
    first, second = prizes(wide, 2)
    for prize, image in ((first, images.false), (second, images.seven)):  # 7 neither first nor second; 7 first
        with pytest.raises(ScriptError, match="truthy after script evaluation"):
            validate_input(appeal_claim(wide, prize, image, USER.address(), DIGIT, ATTESTOR), 0)
    with pytest.raises(ContractError, match="one of the bounty's digits"):
        appeal_claim(wide, first, images.false, USER.address(), 3, ATTESTOR)


# -- the owner's path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [OPEN, VETTED])
def test_the_owner_reclaims_prizes_and_nobody_else_can(open_pool: PoolContract, vetted: PoolContract,
                                                       mode: str) -> None:
    pool = vetted if mode == VETTED else open_pool
    made = prizes(pool)
    back = reclaim(pool, made, OWNER, OWNER.address())  # every prize in one transaction
    for index in range(len(made)):
        validate_input(back, index)
    assert back.outputs[0].satoshis == PRIZES * pool.prize_satoshis - fee_of(back)
    assert fee_for(back.byte_length(), 100) <= fee_of(back) <= fee_for(back.byte_length() + 2 * PRIZES, 100)
    assert pool.read_claim(back.inputs[0].unlocking_script) is None
    with pytest.raises(ContractError, match="not the bounty owner's"):
        reclaim(pool, made, THIEF, THIEF.address())
    for key in (THIEF, ATTESTOR):  # another key signing the owner path, against the real script
        swap = {"attestor_pubkey": OWNER.public_key().serialize()} if pool.terms.vetted and key == ATTESTOR else {}
        forged_terms = replace(pool.terms, owner_pubkey=key.public_key().serialize(), **swap)  # type: ignore[arg-type]
        forged = PoolContract(pool.classifier, forged_terms)
        stolen = reclaim(forged, [Utxo(p.txid, p.vout, p.satoshis, forged.lock()) for p in made[:1]], key,
                         THIEF.address())
        stolen.inputs[0].locking_script = pool.lock()
        with pytest.raises(ScriptError):
            validate_input(stolen, 0)
    with pytest.raises(ContractError, match="not a prize of this pool"):
        reclaim(pool, [Utxo(made[0].txid, 0, 1_000, P2PKH().lock(OWNER.address()))], OWNER, OWNER.address())


# -- exact fee allowances ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [OPEN, VETTED])
def test_the_prize_holds_the_largest_claims_exact_fee(open_pool: PoolContract, vetted: PoolContract,
                                                      images: Images, mode: str) -> None:
    pool = vetted if mode == VETTED else open_pool
    attestor = ATTESTOR if mode == VETTED else None
    kinds = (SUBMISSION, APPEAL) if mode == VETTED else (SUBMISSION,)
    worst = max(worst_case_bytes(pool, kind) for kind in kinds)
    assert pool.terms.max_fee == fee_for(worst + SLACK_BYTES, 100) == default_max_fee(pool, 100)
    assert pool.prize_satoshis == PAYOUT + pool.terms.max_fee
    white = np.full(784, 255, dtype=np.uint8)  # every pixel pushed in 3 bytes: the largest unlocking script
    prize = prizes(pool, 1)[0]
    largest = claim(pool, prize, white, USER.address(), attestor=attestor, change_to=OWNER.address(),
                    appeal=DIGIT if mode == VETTED else None)
    assert largest.byte_length() <= worst and fee_for(largest.byte_length(), 100) <= fee_of(largest)
    assert pool.terms.max_fee - fee_of(largest) <= fee_for(SLACK_BYTES, 100) + 1  # the slack, and a signature byte
    for tx in (claim(pool, prize, images.seven, USER.address(), attestor=attestor, change_to=OWNER.address()),
               claim(pool, prize, images.seven, USER.address(), attestor=attestor)):
        validate_input(tx, 0)
        assert tx.byte_length() <= worst and fee_for(tx.byte_length(), 100) <= fee_of(tx) <= pool.terms.max_fee
        assert tx.outputs[0].satoshis == PAYOUT
    dearer = 10 * 100  # sat/kB: the claim's fee outgrows the allowance fixed at 100 sat/kB
    with pytest.raises(ContractError, match="beyond the payout"):
        claim(pool, prize, white, USER.address(), fee_rate=dearer, attestor=attestor)
    assert default_max_fee(pool, dearer) == fee_for(worst + SLACK_BYTES, dearer)


def test_an_open_claim_is_read_back_exactly_and_nothing_else_reads_as_one(open_pool: PoolContract,
                                                                         images: Images) -> None:
    """The watcher books a prize's spend from what `read_claim` makes of it: every pixel of a claim (a white
    image: no pixel is 0), and None for whatever is not a claim of this shape."""
    white = np.full(784, 255, dtype=np.uint8)
    for image in (white, images.seven):
        spend = claim(open_pool, prizes(open_pool, 1)[0], image, USER.address())
        read = open_pool.read_claim(spend.inputs[0].unlocking_script)
        assert read is not None and np.array_equal(read.image, image) and read.appeal is None
    pushes = pixel_pushes(open_pool.classifier, white)
    for items in ([*pushes, 1], [*pushes[:-1], 0], [*pushes, 0, 0], [1]):  # the owner's selector, a pixel short,
        assert open_pool.read_claim(push_only_script(items)) is None          # an item too many, an owner path


def test_a_vetted_pools_claims_and_appeals_are_told_apart_and_nothing_else_reads_as_one(vetted: PoolContract,
                                                                                       images: Images) -> None:
    """A vetted claim ends `<sig> 0 0`, an appeal `<digit> <sig> 1 0`: each shape is read only at its own
    length, and with its own selector."""
    pushes, sig = pixel_pushes(vetted.classifier, images.seven), b"\x30" * 71
    plain, appealed = (vetted.read_claim(push_only_script(items)) for items in ([*pushes, sig, 0, 0],
                                                                               [*pushes, DIGIT, sig, 1, 0]))
    assert plain is not None and plain.appeal is None and np.array_equal(plain.image, images.seven)
    assert appealed is not None and appealed.appeal == DIGIT and np.array_equal(appealed.image, images.seven)
    for items in ([*pushes, sig, 1, 1], [*pushes, 0, 0], [*pushes, DIGIT, sig, 0, 1], [*pushes, sig, 1, 0],
                  [sig, 1]):
        assert vetted.read_claim(push_only_script(items)) is None
    for pixel in (256, -1, b"\x07\x00"):  # the unlocking script is anyone's: the reader checks every pixel
        with pytest.raises(ContractError, match="pixels are not numbers 0..255"):
            vetted.read_claim(push_only_script([pixel, *pushes[1:], sig, 0, 0]))
    zero = vetted.read_claim(push_only_script([*pushes, 0, sig, 1, 0]))  # 0 is a digit an appeal may claim
    assert zero is not None and zero.appeal == 0
    for claimed in (10, -1, b"\x07\x00"):
        with pytest.raises(ContractError, match="appeal does not claim a digit 0..9"):
            vetted.read_claim(push_only_script([*pushes, claimed, sig, 1, 0]))


def test_the_largest_appeal_counts_the_digit_it_claims(vetted: PoolContract, images: Images) -> None:
    """A vetted pool's allowance covers its largest appeal, which pushes one item more than its largest claim:
    the claimed digit (OP_7, one byte). Real spends of the same image, signed with signatures of the same
    length, differ by exactly that byte too."""
    assert worst_case_bytes(vetted, APPEAL) == worst_case_bytes(vetted, SUBMISSION) + 1
    prize = prizes(vetted, 1)[0]
    plain = claim(vetted, prize, images.fair, USER.address(), attestor=ATTESTOR)
    appealed = claim(vetted, prize, images.fair, USER.address(), attestor=ATTESTOR, appeal=DIGIT)
    signatures = [len(push_values(tx.inputs[0].unlocking_script)[-3]) for tx in (plain, appealed)]
    assert appealed.byte_length() - plain.byte_length() == 1 + signatures[1] - signatures[0]
    for tx, claimed, signature in ((plain, None, signatures[0]), (appealed, DIGIT, signatures[1])):
        estimate = vetted.claim_unlock(images.fair, ATTESTOR, claimed).estimated_unlocking_byte_length()
        # the estimate counts the longest signature, and is otherwise exact
        assert estimate - len(tx.inputs[0].unlocking_script.serialize()) == MAX_SIGNATURE_BYTES - signature


def test_reclaiming_a_prize_worth_only_its_fee_is_refused_and_a_one_satoshi_reserve_is_a_reserve(
        open_pool: PoolContract) -> None:
    prize = prizes(open_pool, 1)[0]
    back = reclaim(open_pool, [prize], OWNER, OWNER.address())
    fee = prize.satoshis - back.outputs[0].satoshis
    assert fee_problem(fee, back, 100) is None  # the fee does not depend on what the prize holds
    with pytest.raises(ContractError, match=f"hold {fee} sats, not enough for the {fee}-sat fee"):
        reclaim(open_pool, [Utxo("99" * 32, 0, fee, open_pool.lock())], OWNER, OWNER.address())
    assert reclaim(open_pool, [Utxo("99" * 32, 0, fee + 1, open_pool.lock())], OWNER, OWNER.address()) \
        .outputs[0].satoshis == 1
    source = Transaction([TransactionInput(source_txid="56" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), open_pool.prize_satoshis + 50_000)])
    tx = deploy_prizes(open_pool, 1, [Utxo.of(source, 0)], WALLET, WALLET.address(), reserve=1,
                       reserve_to=OWNER.address())
    assert [(o.satoshis, o.locking_script.serialize()) for o in tx.outputs[:2]] == [
        (open_pool.prize_satoshis, open_pool.lock().serialize()), (1, P2PKH().lock(OWNER.address()).serialize())]
    with pytest.raises(ContractError, match="a reserve needs a positive amount"):
        deploy_prizes(open_pool, 1, [Utxo.of(source, 0)], WALLET, WALLET.address(), reserve=0,
                      reserve_to=OWNER.address())
    for rate in (50, 100):  # the deploy pays the fee of the rate asked for, to the satoshi
        tx = deploy_prizes(open_pool, 2, [Utxo.of(source, 0)], WALLET, WALLET.address(), fee_rate=rate)
        assert fee_problem(fee_of(tx), tx, rate) is None


def test_a_claim_spends_exactly_the_allowance_its_fee_needs_and_returns_even_one_satoshi(
        open_pool: PoolContract, images: Images) -> None:
    def prize(allowance: int) -> Utxo:
        return Utxo("5a" * 32, 0, PAYOUT + allowance, open_pool.lock())

    with pytest.raises(ContractError, match=r"keeps 0 sats beyond the payout, less than the (\d+)-sat fee") as caught:
        claim(open_pool, prize(0), images.seven, USER.address())
    fee = int(str(caught.value).split("-sat fee")[0].rsplit(" ", 1)[1])
    exact = claim(open_pool, prize(fee), images.seven, USER.address())
    validate_input(exact, 0)
    assert [o.satoshis for o in exact.outputs] == [PAYOUT] and fee_problem(fee, exact, 100) is None
    with pytest.raises(ContractError, match=f"keeps {fee - 1} sats beyond the payout, less than the {fee}-sat"):
        claim(open_pool, prize(fee - 1), images.seven, USER.address())
    # with somewhere for the rest to go: the fee of the claim with that output, then every satoshi beyond it
    roomy = claim(open_pool, prize(50_000), images.seven, USER.address(), change_to=OWNER.address())
    fee_with_change = 50_000 - roomy.outputs[1].satoshis
    one = claim(open_pool, prize(fee_with_change + 1), images.seven, USER.address(), change_to=OWNER.address())
    validate_input(one, 0)
    assert [o.satoshis for o in one.outputs] == [PAYOUT, 1]


def test_an_appeal_claim_keeps_its_rate_and_its_change(vetted: PoolContract, images: Images) -> None:
    for rate in (50, 100):
        tx = appeal_claim(vetted, prizes(vetted, 1)[0], images.fair, USER.address(), DIGIT, ATTESTOR, fee_rate=rate,
                          change_to=OWNER.address())
        validate_input(tx, 0)
        assert tx.outputs[0].satoshis == PAYOUT and len(tx.outputs) == 2
        assert tx.outputs[1].locking_script.serialize() == P2PKH().lock(OWNER.address()).serialize()
        assert fee_problem(fee_of(tx), tx, rate) is None  # at the rate asked for, to the satoshi


def test_an_owner_pool_move_takes_back_the_prizes_less_exactly_its_fee_and_names_what_it_lacks(
        open_pool: PoolContract) -> None:
    taken = prizes(open_pool, 2)
    back = pool_move(OWNER.address(), prizes=[(open_pool, p) for p in taken], owner_key=OWNER)
    for index in range(2):
        validate_input(back, index)
    assert len(back.outputs) == 1 and back.outputs[0].locking_script.serialize() == \
        P2PKH().lock(OWNER.address()).serialize()
    assert fee_problem(fee_of(back), back, 100) is None  # everything but the fee comes back, to the satoshi
    source = Transaction([TransactionInput(source_txid="57" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), 30_000)])
    coin = Utxo.of(source, 0)
    for parts, lacking in (({"prizes": [(open_pool, taken[0])]}, "the owner key"),
                           ({"reserve": coin}, "the reserve key"),
                           ({"coins": [coin], "add": 10_000}, "the wallet key"),
                           ({"coins": [coin], "wallet_key": WALLET, "add": 10_000}, "a change address")):
        with pytest.raises(ContractError, match=f"this pool transaction needs {lacking}$"):
            pool_move(OWNER.address(), **parts)  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="spends at least one prize, the reserve or a wallet coin"):
        pool_move(OWNER.address())
    for add in (30_001, -1):  # more than the coins hold, or less than nothing
        with pytest.raises(ContractError, match=f"hold 30000 sats, which cannot add {add}"):
            pool_move(OWNER.address(), coins=[coin], wallet_key=WALLET, add=add, change_to=WALLET.address())
    one = pool_move(OWNER.address(), prizes=[(open_pool, taken[0])], owner_key=OWNER)
    fee = fee_of(one)  # one prize in, one output: what it costs does not depend on what the prize holds
    left_one = pool_move(OWNER.address(), prizes=[(open_pool, Utxo("58" * 32, 0, fee + 1, open_pool.lock()))],
                         owner_key=OWNER)
    assert [o.satoshis for o in left_one.outputs] == [1]  # one satoshi left is still paid out
    with pytest.raises(ContractError, match=f"{fee} sats cannot create 0 prizes"):
        pool_move(OWNER.address(), prizes=[(open_pool, Utxo("58" * 32, 0, fee, open_pool.lock()))], owner_key=OWNER)
    rich = PoolContract(open_pool.classifier, replace(open_pool.terms, payout=200_000))  # prizes above the fee
    prize = rich.prize_satoshis
    for extra in (0, 100_000):  # coins holding just the prize cannot also pay the fee
        funding = Transaction([TransactionInput(source_txid="59" * 32, unlocking_script=Script(b""))],
                              [TransactionOutput(P2PKH().lock(WALLET.address()), prize + extra)])
        move = {"pool": rich, "count": 1, "coins": [Utxo.of(funding, 0)], "wallet_key": WALLET,
                "add": prize + extra}
        if not extra:
            with pytest.raises(ContractError, match=f"{prize} sats cannot create 1 prizes of {prize} sats"):
                pool_move(OWNER.address(), **move)  # type: ignore[arg-type]
            continue
        created = pool_move(OWNER.address(), **move)  # type: ignore[arg-type]
        assert [o.satoshis for o in created.outputs[:1]] == [prize] and len(created.outputs) == 2
        assert fee_problem(fee_of(created), created, 100) is None
    with pytest.raises(ContractError, match="name the pool whose prizes to create"):
        pool_move(OWNER.address(), count=1, coins=[coin], wallet_key=WALLET, add=30_000)


def test_coins_that_cover_the_prizes_and_the_fee_exactly_create_them_with_no_owner_output(
        open_pool: PoolContract) -> None:
    rich = PoolContract(open_pool.classifier, replace(open_pool.terms, payout=200_000))
    rate = 1_000  # a satoshi a byte: a fee is its transaction's size, so the owner's 34-byte output costs 34

    def create_one(sats: int) -> Transaction:
        funding = Transaction([TransactionInput(source_txid="5a" * 32, unlocking_script=Script(b""))],
                              [TransactionOutput(P2PKH().lock(WALLET.address()), sats)])
        return pool_move(OWNER.address(), pool=rich, count=1, coins=[Utxo.of(funding, 0)], wallet_key=WALLET,
                         add=sats, fee_rate=rate)

    with_owner = create_one(rich.prize_satoshis + 100_000)
    exact = rich.prize_satoshis + fee_of(with_owner) - 34
    created = create_one(exact)
    assert [o.satoshis for o in created.outputs] == [rich.prize_satoshis]  # no owner output, and nothing lost
    assert fee_of(created) == fee_of(with_owner) - 34
    with pytest.raises(ContractError, match=f"{exact - 1} sats cannot create 1 prizes"):
        create_one(exact - 1)


def test_a_prize_below_its_payout_is_refused_by_the_builder(open_pool: PoolContract, images: Images) -> None:
    small = Utxo("88" * 32, 0, PAYOUT - 1, open_pool.lock())
    with pytest.raises(ContractError, match="less than its"):
        claim(open_pool, small, images.seven, USER.address())
    with pytest.raises(ContractError, match="not a prize of this pool"):
        claim(open_pool, Utxo("88" * 32, 0, 10_000, P2PKH().lock(OWNER.address())), images.seven, USER.address())


# -- the example ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [OPEN, VETTED])
def test_the_pool_example_replays(shipped: ModelArtifact, mnist: Mnist, mode: str) -> None:
    result = build_pool_example(shipped.integer, mnist.x_test, mnist.y_test, mode=mode)  # type: ignore[arg-type]
    verdicts = {name: verdict == "valid" for name, verdict in result["bsv_sdk_verdict"].items()}
    assert verdicts == result["expected_valid"]
    txs = {name: Transaction.from_hex(result[name]) for name in result["txids"]}
    by_id = {tx.txid(): tx for tx in txs.values()}
    deploy = txs["deploy_tx"]
    for name, tx in txs.items():
        if name in ("funding_tx", "deploy_tx"):
            continue
        assert all(i.source_txid == deploy.txid() for i in tx.inputs)  # claims and the reclaim spend prizes
        assert by_id[tx.inputs[0].source_txid] is deploy
    assert len(deploy.outputs) == PRIZES + 2  # the prizes, the owner's reserve, change
    assert result["accept_tx_bytes"] < 1_400
    if mode == VETTED:
        assert "CHECKSIGVERIFY" in result["bsv_sdk_verdict"]["unattested_tx"]
