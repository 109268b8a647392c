"""A self-contained, checkable set of bounty transactions, built offline from fixed demo keys.

Open mode: funding_tx -> deploy_tx -> accept_tx -> withdraw_tx, plus reject_tx (another digit: invalid).
Vetted mode: funding_tx -> deploy_tx -> accept_tx -> appeal_tx -> withdraw_tx, plus reject_tx (another
digit, attestor-signed: invalid), false_appeal_tx (claims a digit that is not the runner-up: invalid) and
unattested_tx (accept_tx with the attestor's signature taken for another transaction: invalid).
Pool shape (contracts.pool; three prizes, the owner's reserve and change): funding_tx -> deploy_tx ->
accept_tx (claims prize 0) and withdraw_tx (the owner reclaims the prizes nobody claimed), plus reject_tx
(another digit: invalid); vetted, also appeal_tx (prize 1), false_appeal_tx and unattested_tx (invalid).
Every transaction but the first spends an output of another one in the set, so any
interpreter can replay them. The keys are public test keys: never fund them on a real network.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput

from contracts.bounty import OPEN, VETTED, BountyContract, BountyTerms, Mode
from contracts.classifier import pixel_pushes
from contracts.errors import ContractError, ScriptError
from contracts.fees import APPEAL, SUBMISSION, default_max_fee, with_max_fee, worst_case_bytes
from contracts.interpreter import TX_VERSION, clear_script_cache, validate_input
from contracts.pool import PoolContract
from contracts.script import push_only_script
from contracts.transactions import (
    DEFAULT_FEE_RATE,
    Utxo,
    appeal,
    appeal_claim,
    claim,
    deploy,
    deploy_prizes,
    reclaim,
    submission,
    withdraw,
)
from model.reference import IntegerModel, classify, logits

OWNER_KEY, SUBMITTER_KEY, ATTESTOR_KEY = PrivateKey(0xB0B), PrivateKey(0xA11CE), PrivateKey(0xA77E57)
EXAMPLE_DIGIT, EXAMPLE_PAYOUT, EXAMPLE_MAX_FEE, EXAMPLE_BUDGET = 7, 500, 20_000, 100_000
EXAMPLE_APPEAL_GAP = 2_000  # logit units, like the margin (real 7s have a median margin of about 7,900)
EXAMPLE_PRIZES = 3  # the pool example's prizes
BENCH_PRIZES = 10  # prizes per deploy transaction in the pool benchmark
FIRST_TRIALS = 5  # the first validation on a new script, repeated from a cold cache: the median is reported


def example_terms(digit: int = EXAMPLE_DIGIT) -> BountyTerms:
    return BountyTerms(digits=(digit,), payout=EXAMPLE_PAYOUT, min_margin=0, max_fee=EXAMPLE_MAX_FEE,
                       owner_pubkey=OWNER_KEY.public_key().serialize())


def example_contract(model: IntegerModel, mode: Mode = OPEN, fee_rate: int = DEFAULT_FEE_RATE) -> BountyContract:
    """The open example (its maximum fee fixed at 20,000 sats, as it always was), or the vetted one with the
    demo attestor key, an appeal gap and the exact maximum fee at `fee_rate`."""
    if mode == OPEN:
        return BountyContract(model, example_terms())
    contract = BountyContract(model, _vetted(example_terms()))
    return with_max_fee(contract, default_max_fee(contract, fee_rate))


def example_pool(model: IntegerModel, mode: Mode = OPEN, fee_rate: int = DEFAULT_FEE_RATE) -> PoolContract:
    """The example's terms as a pool bounty, its fee allowance per prize the exact one at `fee_rate`."""
    terms = example_terms() if mode == OPEN else _vetted(example_terms())
    pool = PoolContract(model, terms)
    return with_max_fee(pool, default_max_fee(pool, fee_rate))


def _vetted(terms: BountyTerms) -> BountyTerms:
    return replace(terms, mode=VETTED, attestor_pubkey=ATTESTOR_KEY.public_key().serialize(),
                   appeal_gap=EXAMPLE_APPEAL_GAP)


def pick_images(model: IntegerModel, images: np.ndarray, labels: np.ndarray, digit: int) -> tuple[np.ndarray, ...]:
    """The first test image of `digit` the model gets right, and the first of another digit."""
    x = images.reshape(-1, 784)
    predicted, _ = classify(model, x)
    hit = np.where((predicted == digit) & (labels == digit))[0]
    miss = np.where((predicted != digit) & (labels == predicted))[0]
    if not len(hit) or not len(miss):
        raise ContractError(f"no test image of {digit} is classified as {digit}")
    return x[hit[0]], x[miss[0]]


def pick_appeals(model: IntegerModel, images: np.ndarray, labels: np.ndarray, digit: int,
                 gap: int) -> tuple[np.ndarray, np.ndarray]:
    """The first test image of `digit` the model ranks second within `gap` (a fair appeal), and the first
    image of another digit whose runner-up is not `digit` (a false one)."""
    x = images.reshape(-1, 784)
    ranked = np.argsort(-logits(model, x), axis=1, kind="stable")  # ties: the lower class first, as on chain
    _, margins = classify(model, x)
    fair = np.where((labels == digit) & (ranked[:, 1] == digit) & (margins <= gap))[0]
    false = np.where((labels != digit) & (ranked[:, 0] != digit) & (ranked[:, 1] != digit) & (margins <= gap))[0]
    if not len(fair) or not len(false):
        raise ContractError(f"no test image of {digit} is the runner-up within {gap}")
    return x[fair[0]], x[false[0]]


def build_example(model: IntegerModel, images: np.ndarray, labels: np.ndarray,
                  fee_rate: int = DEFAULT_FEE_RATE, mode: Mode = OPEN) -> dict[str, Any]:
    contract = example_contract(model, mode, fee_rate)
    good, bad = pick_images(model, images, labels, EXAMPLE_DIGIT)
    owner_address = OWNER_KEY.address()
    funding = _funding(EXAMPLE_BUDGET + 50_000)
    deploy_tx = deploy(contract, EXAMPLE_BUDGET, [Utxo.of(funding, 0)], OWNER_KEY, owner_address, fee_rate)
    attestor = ATTESTOR_KEY if mode == VETTED else None
    accept_tx = submission(contract, Utxo.of(deploy_tx, 0), good, SUBMITTER_KEY.address(), fee_rate, attestor)
    reject_tx = submission(contract, Utxo.of(deploy_tx, 0), bad, SUBMITTER_KEY.address(), fee_rate, attestor)
    transactions = {"funding_tx": funding, "deploy_tx": deploy_tx, "accept_tx": accept_tx, "reject_tx": reject_tx}
    expected = {"deploy_tx": True, "accept_tx": True, "reject_tx": False, "withdraw_tx": True}
    last = accept_tx
    if mode == VETTED:
        fair, false = pick_appeals(model, images, labels, EXAMPLE_DIGIT, EXAMPLE_APPEAL_GAP)
        last = appeal(contract, Utxo.of(accept_tx, 0), fair, SUBMITTER_KEY.address(), EXAMPLE_DIGIT, ATTESTOR_KEY,
                      fee_rate)
        transactions |= {
            "appeal_tx": last,
            "false_appeal_tx": appeal(contract, Utxo.of(accept_tx, 0), false, SUBMITTER_KEY.address(), EXAMPLE_DIGIT,
                                      ATTESTOR_KEY, fee_rate),
            "unattested_tx": _with_foreign_signature(contract, accept_tx, reject_tx)}
        expected |= {"appeal_tx": True, "false_appeal_tx": False, "unattested_tx": False}
    transactions["withdraw_tx"] = withdraw(contract, Utxo.of(last, 0), OWNER_KEY, owner_address, fee_rate)
    checks = {name: _check(tx) for name, tx in transactions.items() if name != "funding_tx"}
    terms = {"digits": list(contract.terms.digits), "payout_sats": EXAMPLE_PAYOUT,
             "max_fee_sats": contract.terms.max_fee, "owner_pubkey": contract.terms.owner_pubkey.hex()}
    if mode == VETTED:
        terms |= {"mode": VETTED, "attestor_pubkey": ATTESTOR_KEY.public_key().hex(),
                  "appeal_gap": EXAMPLE_APPEAL_GAP}
    result = {
        **{name: tx.hex() for name, tx in transactions.items()},
        "txids": {name: tx.txid() for name, tx in transactions.items()},
        "expected_valid": expected,
        "bsv_sdk_verdict": checks,
        "terms": terms,
        "locking_script_bytes": contract.locking_script_bytes,
        "accept_tx_bytes": accept_tx.byte_length(),
        "note": "demo keys (public): never fund them on a real network",
    }
    if mode == VETTED:
        result["appeal_tx_bytes"] = last.byte_length()
    return result


def build_pool_example(model: IntegerModel, images: np.ndarray, labels: np.ndarray,
                       fee_rate: int = DEFAULT_FEE_RATE, mode: Mode = OPEN) -> dict[str, Any]:
    """The pool shape's example: three prizes, the owner's reserve and change in one deploy; claims spend prizes
    0 (accepted), 1 (open: refused; vetted: an appeal) and 2 (vetted: refused claims); the owner reclaims
    every prize no valid transaction in the set spends."""
    pool = example_pool(model, mode, fee_rate)
    good, bad = pick_images(model, images, labels, EXAMPLE_DIGIT)
    owner, payee = OWNER_KEY.address(), SUBMITTER_KEY.address()
    reserve = EXAMPLE_BUDGET - EXAMPLE_PRIZES * pool.prize_satoshis
    funding = _funding(EXAMPLE_BUDGET + 50_000)
    deploy_tx = deploy_prizes(pool, EXAMPLE_PRIZES, [Utxo.of(funding, 0)], OWNER_KEY, owner, fee_rate,
                              reserve=reserve, reserve_to=owner)
    prizes = [Utxo.of(deploy_tx, i) for i in range(EXAMPLE_PRIZES)]
    attestor = ATTESTOR_KEY if mode == VETTED else None
    accept_tx = claim(pool, prizes[0], good, payee, fee_rate, attestor, change_to=owner)
    transactions = {"funding_tx": funding, "deploy_tx": deploy_tx, "accept_tx": accept_tx}
    expected = {"deploy_tx": True, "accept_tx": True, "reject_tx": False, "withdraw_tx": True}
    unclaimed = prizes[1:]
    if mode == VETTED:
        fair, false = pick_appeals(model, images, labels, EXAMPLE_DIGIT, EXAMPLE_APPEAL_GAP)
        reject_tx = claim(pool, prizes[2], bad, payee, fee_rate, attestor, change_to=owner)
        transactions |= {
            "reject_tx": reject_tx,
            "appeal_tx": appeal_claim(pool, prizes[1], fair, payee, EXAMPLE_DIGIT, ATTESTOR_KEY, fee_rate, owner),
            "false_appeal_tx": appeal_claim(pool, prizes[2], false, payee, EXAMPLE_DIGIT, ATTESTOR_KEY, fee_rate,
                                            owner),
            "unattested_tx": _claim_with_foreign_signature(pool, accept_tx, reject_tx)}
        expected |= {"appeal_tx": True, "false_appeal_tx": False, "unattested_tx": False}
        unclaimed = prizes[2:]
    else:
        transactions["reject_tx"] = claim(pool, prizes[1], bad, payee, fee_rate, change_to=owner)
    transactions["withdraw_tx"] = reclaim(pool, unclaimed, OWNER_KEY, owner, fee_rate)
    checks = {name: _check(tx) for name, tx in transactions.items() if name != "funding_tx"}
    terms = {"shape": "pool", "digits": list(pool.terms.digits), "payout_sats": EXAMPLE_PAYOUT,
             "max_fee_sats": pool.terms.max_fee, "prize_sats": pool.prize_satoshis, "prizes": EXAMPLE_PRIZES,
             "reserve_sats": reserve, "owner_pubkey": pool.terms.owner_pubkey.hex()}
    if mode == VETTED:
        terms |= {"mode": VETTED, "attestor_pubkey": ATTESTOR_KEY.public_key().hex(),
                  "appeal_gap": EXAMPLE_APPEAL_GAP}
    return {
        **{name: tx.hex() for name, tx in transactions.items()},
        "txids": {name: tx.txid() for name, tx in transactions.items()},
        "expected_valid": expected,
        "bsv_sdk_verdict": checks,
        "terms": terms,
        "locking_script_bytes": pool.locking_script_bytes,
        "deploy_tx_bytes": deploy_tx.byte_length(),
        "accept_tx_bytes": accept_tx.byte_length(),
        "note": "demo keys (public): never fund them on a real network",
    }


def _claim_with_foreign_signature(pool: PoolContract, tx: Transaction, other: Transaction) -> Transaction:
    """`tx` (a vetted claim) pushing the attestor's signature that was made for `other` instead of its own."""
    read = pool.read_claim(tx.inputs[0].unlocking_script)
    if read is None:
        raise ContractError("not a claim")
    signature = bytes(other.inputs[0].unlocking_script.chunks[-3].data)
    return _unlocked_with(tx, [*pixel_pushes(pool.classifier, read.image), signature, 0, 0])


def _with_foreign_signature(contract: BountyContract, tx: Transaction, other: Transaction) -> Transaction:
    """`tx` (a vetted submission) pushing the attestor's signature that was made for `other` instead of its own."""
    claim = contract.read_submission(tx.inputs[0].unlocking_script)
    if claim is None:
        raise ContractError("not a submission")
    signature = bytes(other.inputs[0].unlocking_script.chunks[-4].data)
    return _unlocked_with(tx, [*pixel_pushes(contract.classifier, claim.image), claim.recipient_pkh,
                               claim.successor_satoshis, signature, tx.preimage(0), 0, 0])


def _unlocked_with(tx: Transaction, pushes: list[Any]) -> Transaction:
    """A copy of `tx` (its first input still knowing the output it spends) whose first input pushes `pushes`."""
    forged = Transaction.from_hex(tx.hex())
    forged.inputs[0].satoshis, forged.inputs[0].locking_script = tx.inputs[0].satoshis, tx.inputs[0].locking_script
    forged.inputs[0].unlocking_script = push_only_script(pushes)
    return forged


def _funding(satoshis: int) -> Transaction:
    """The root: an output the owner's wallet holds (its own input is outside the set)."""
    return Transaction([TransactionInput(source_txid="00" * 32, unlocking_script=Script(b""))],
                       [TransactionOutput(P2PKH().lock(OWNER_KEY.address()), satoshis)], version=TX_VERSION)


def _check(tx: Transaction) -> str:
    try:
        for index in range(len(tx.inputs)):
            validate_input(tx, index)
    except ScriptError as exc:
        return f"invalid: {exc.reason}"
    return "valid"


def bench(model: IntegerModel, images: np.ndarray, labels: np.ndarray, submissions: int = 5,
          fee_rate: int = DEFAULT_FEE_RATE, mode: Mode = OPEN) -> dict[str, Any]:
    """Sizes, fee and interpreter time of real submissions (and, vetted, appeals) on one contract's chain
    of outputs. Each paid image costs one submission: the deploy is paid once per bounty."""
    contract = example_contract(model, mode, fee_rate)
    good, _ = pick_images(model, images, labels, EXAMPLE_DIGIT)
    funding = _funding(10_000_000)
    deploy_tx = deploy(contract, 5_000_000, [Utxo.of(funding, 0)], OWNER_KEY, OWNER_KEY.address(), fee_rate)
    attestor = ATTESTOR_KEY if mode == VETTED else None
    spends: list[tuple[Transaction, Utxo]] = []
    utxo = Utxo.of(deploy_tx, 0)
    for _ in range(submissions):
        tx = submission(contract, utxo, good, SUBMITTER_KEY.address(), fee_rate, attestor)
        spends.append((tx, utxo))
        utxo = Utxo.of(tx, 0)
    sizes, fees, seconds, first = _measure(spends)
    result = {
        "shape": "chain",
        "locking_script_bytes": contract.locking_script_bytes,
        "classifier_bytes": contract.classifier.locking_script_bytes,
        "deploy_tx_bytes": deploy_tx.byte_length(),
        "submission_tx_bytes": max(sizes),
        "bytes_per_paid_image": max(sizes),
        "fee_rate_sat_per_kb": fee_rate,
        "fee_sats_per_submission": max(fees),
        "fee_sats_per_paid_image": max(fees),
        "validate_ms_per_submission": _ms(np.median(seconds)),
        "validate_ms_first_submission": _ms(first),  # includes parsing the new contract
        "submissions_measured": submissions,
    }
    if mode == OPEN:
        return result
    fair, _ = pick_appeals(model, images, labels, EXAMPLE_DIGIT, EXAMPLE_APPEAL_GAP)
    appeals: list[tuple[Transaction, Utxo]] = []
    for _ in range(submissions):
        tx = appeal(contract, utxo, fair, SUBMITTER_KEY.address(), EXAMPLE_DIGIT, ATTESTOR_KEY, fee_rate)
        appeals.append((tx, utxo))
        utxo = Utxo.of(tx, 0)
    appeal_sizes, appeal_fees, appeal_seconds, _ = _measure(appeals, first_trials=0)
    return result | {
        "mode": VETTED,
        "appeal_tx_bytes": max(appeal_sizes),
        "fee_sats_per_appeal": max(appeal_fees),
        "validate_ms_per_appeal": _ms(np.median(appeal_seconds)),
        "appeal_gap": EXAMPLE_APPEAL_GAP,
        "max_fee_sats": contract.terms.max_fee,  # the exact bound: the largest spend's fee, plus slack
        "worst_case_submission_tx_bytes": worst_case_bytes(contract, SUBMISSION),
        "worst_case_appeal_tx_bytes": worst_case_bytes(contract, APPEAL),
    }


def bench_pool(model: IntegerModel, images: np.ndarray, labels: np.ndarray, submissions: int = 5,
               fee_rate: int = DEFAULT_FEE_RATE, mode: Mode = OPEN, prizes: int = BENCH_PRIZES) -> dict[str, Any]:
    """The pool shape's figures: one deploy of `prizes` prizes, then `submissions` claims (vetted: and as many
    appeals), each on a prize of its own, with the unused fee allowance returned to the owner. A paid image
    costs its share of the deploy (one prize: the script and 9 bytes) plus its claim."""
    if prizes < 1:
        raise ContractError(f"a pool deploy creates at least one prize, not {prizes}")
    pool = example_pool(model, mode, fee_rate)
    good, _ = pick_images(model, images, labels, EXAMPLE_DIGIT)
    owner, payee = OWNER_KEY.address(), SUBMITTER_KEY.address()
    funding = _funding(10_000_000)
    deploy_tx = deploy_prizes(pool, prizes, [Utxo.of(funding, 0)], OWNER_KEY, owner, fee_rate)
    deploy_fee = funding.outputs[0].satoshis - sum(o.satoshis for o in deploy_tx.outputs)
    needed = submissions * (2 if mode == VETTED else 1)  # the claims (and appeals) spend a deploy of their own
    live = deploy_prizes(pool, needed, [Utxo.of(_funding(needed * pool.prize_satoshis + 10_000_000), 0)],
                         OWNER_KEY, owner, fee_rate)
    free = iter(Utxo.of(live, i) for i in range(needed))
    attestor = ATTESTOR_KEY if mode == VETTED else None
    claims = [(claim(pool, prize, good, payee, fee_rate, attestor, change_to=owner), prize)
              for prize in (next(free) for _ in range(submissions))]
    sizes, fees, seconds, first = _measure(claims)
    per_prize_bytes = deploy_tx.byte_length() / prizes
    result = {
        "shape": "pool",
        "locking_script_bytes": pool.locking_script_bytes,
        "classifier_bytes": pool.classifier.locking_script_bytes,
        "prizes": prizes,
        "prize_sats": pool.prize_satoshis,
        "max_fee_sats": pool.terms.max_fee,  # each prize's fee allowance: the largest claim's fee, plus slack
        "deploy_tx_bytes": deploy_tx.byte_length(),
        "deploy_tx_bytes_per_prize": round(per_prize_bytes, 1),
        "deploy_fee_sats_per_prize": round(deploy_fee / prizes, 1),
        "submission_tx_bytes": max(sizes),
        "bytes_per_paid_image": math.ceil(per_prize_bytes + max(sizes)),
        "fee_rate_sat_per_kb": fee_rate,
        "fee_sats_per_submission": max(fees),
        "fee_sats_per_paid_image": math.ceil(deploy_fee / prizes + max(fees)),
        "validate_ms_per_submission": _ms(np.median(seconds)),
        "validate_ms_first_submission": _ms(first),  # includes parsing the new script
        "submissions_measured": submissions,
        "worst_case_submission_tx_bytes": worst_case_bytes(pool, SUBMISSION),
    }
    if mode == OPEN:
        return result
    fair, _ = pick_appeals(model, images, labels, EXAMPLE_DIGIT, EXAMPLE_APPEAL_GAP)
    appeals = [(appeal_claim(pool, prize, fair, payee, EXAMPLE_DIGIT, ATTESTOR_KEY, fee_rate, owner), prize)
               for prize in free]
    appeal_sizes, appeal_fees, appeal_seconds, _ = _measure(appeals, first_trials=0)
    return result | {
        "mode": VETTED,
        "appeal_tx_bytes": max(appeal_sizes),
        "fee_sats_per_appeal": max(appeal_fees),
        "validate_ms_per_appeal": _ms(np.median(appeal_seconds)),
        "appeal_gap": EXAMPLE_APPEAL_GAP,
        "worst_case_appeal_tx_bytes": worst_case_bytes(pool, APPEAL),
    }


def _ms(seconds: float | np.floating[Any]) -> float:
    return round(1000 * float(seconds), 1)


def _measure(spends: list[tuple[Transaction, Utxo]], first_trials: int = FIRST_TRIALS
             ) -> tuple[list[int], list[int], list[float], float]:
    """Each spend's size, fee and validation time (the spent output's script already parsed), and the median
    time of the first spend's validation from a cold cache over `first_trials` tries (what a fresh validator
    pays for a new contract: the parse and the run; the median, because this machine is shared)."""
    sizes, fees, seconds, cold = [], [], [], []
    for n, (tx, utxo) in enumerate(spends):
        for _ in range(first_trials if n == 0 else 0):
            clear_script_cache()
            cold.append(_validate_received(tx, utxo))
        seconds.append(_validate_received(tx, utxo))
        sizes.append(tx.byte_length())
        fees.append(utxo.satoshis - sum(o.satoshis for o in tx.outputs))
    return sizes, fees, seconds, float(np.median(cold)) if cold else 0.0


def _validate_received(tx: Transaction, utxo: Utxo) -> float:
    """Seconds to validate `tx`'s input 0 as a node sees it: raw bytes in, parsed, every script run."""
    start = time.perf_counter()
    received = Transaction.from_hex(tx.hex())
    received.inputs[0].satoshis = utxo.satoshis
    received.inputs[0].locking_script = Script(utxo.locking_script.serialize())
    validate_input(received, 0)
    return time.perf_counter() - start
