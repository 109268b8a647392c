"""A self-contained, checkable set of bounty transactions, built offline from fixed demo keys.

Open mode: funding_tx -> deploy_tx -> accept_tx -> withdraw_tx, plus reject_tx (another digit: invalid).
Vetted mode: funding_tx -> deploy_tx -> accept_tx -> appeal_tx -> withdraw_tx, plus reject_tx (another
digit, attestor-signed: invalid), false_appeal_tx (claims a digit that is not the runner-up: invalid) and
unattested_tx (accept_tx with the attestor's signature taken for another transaction: invalid).
Every transaction but the first spends an output of another one in the set, so any
interpreter can replay them. The keys are public test keys: never fund them on a real network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput

from contracts.bounty import OPEN, VETTED, BountyContract, BountyTerms, Mode
from contracts.classifier import pixel_pushes
from contracts.errors import ContractError, ScriptError
from contracts.fees import APPEAL, SUBMISSION, default_max_fee, with_max_fee, worst_case_bytes
from contracts.interpreter import TX_VERSION, parsed_locking_script, validate_input
from contracts.script import push_only_script
from contracts.transactions import DEFAULT_FEE_RATE, Utxo, appeal, deploy, submission, withdraw
from model.reference import IntegerModel, classify, logits

OWNER_KEY, SUBMITTER_KEY, ATTESTOR_KEY = PrivateKey(0xB0B), PrivateKey(0xA11CE), PrivateKey(0xA77E57)
EXAMPLE_DIGIT, EXAMPLE_PAYOUT, EXAMPLE_MAX_FEE, EXAMPLE_BUDGET = 7, 500, 20_000, 100_000
EXAMPLE_APPEAL_GAP = 2_000  # logit units, like the margin (real 7s have a median margin of about 7,900)


def example_terms(digit: int = EXAMPLE_DIGIT) -> BountyTerms:
    return BountyTerms(digits=(digit,), payout=EXAMPLE_PAYOUT, min_margin=0, max_fee=EXAMPLE_MAX_FEE,
                       owner_pubkey=OWNER_KEY.public_key().serialize())


def example_contract(model: IntegerModel, mode: Mode = OPEN, fee_rate: int = DEFAULT_FEE_RATE) -> BountyContract:
    """The open example (its maximum fee fixed at 20,000 sats, as it always was), or the vetted one with the
    demo attestor key, an appeal gap and the exact maximum fee at `fee_rate`."""
    if mode == OPEN:
        return BountyContract(model, example_terms())
    terms = replace(example_terms(), mode=VETTED, attestor_pubkey=ATTESTOR_KEY.public_key().serialize(),
                    appeal_gap=EXAMPLE_APPEAL_GAP)
    contract = BountyContract(model, terms)
    return with_max_fee(contract, default_max_fee(contract, fee_rate))


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


def _with_foreign_signature(contract: BountyContract, tx: Transaction, other: Transaction) -> Transaction:
    """`tx` (a vetted submission) pushing the attestor's signature that was made for `other` instead of its own."""
    claim = contract.read_submission(tx.inputs[0].unlocking_script)
    if claim is None:
        raise ContractError("not a submission")
    signature = bytes(other.inputs[0].unlocking_script.chunks[-4].data)
    forged = Transaction.from_hex(tx.hex())
    forged.inputs[0].satoshis, forged.inputs[0].locking_script = tx.inputs[0].satoshis, tx.inputs[0].locking_script
    forged.inputs[0].unlocking_script = push_only_script([
        *pixel_pushes(contract.classifier, claim.image), claim.recipient_pkh, claim.successor_satoshis, signature,
        tx.preimage(0), 0, 0])
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
    of outputs."""
    contract = example_contract(model, mode, fee_rate)
    good, _ = pick_images(model, images, labels, EXAMPLE_DIGIT)
    funding = _funding(10_000_000)
    deploy_tx = deploy(contract, 5_000_000, [Utxo.of(funding, 0)], OWNER_KEY, OWNER_KEY.address(), fee_rate)
    attestor = ATTESTOR_KEY if mode == VETTED else None
    parsed_locking_script.cache_clear()  # the first submission pays for parsing, as on a fresh node
    utxo, sizes, fees, seconds = _measure(
        Utxo.of(deploy_tx, 0), submissions,
        lambda u: submission(contract, u, good, SUBMITTER_KEY.address(), fee_rate, attestor))
    result = {
        "locking_script_bytes": contract.locking_script_bytes,
        "classifier_bytes": contract.classifier.locking_script_bytes,
        "deploy_tx_bytes": deploy_tx.byte_length(),
        "submission_tx_bytes": max(sizes),
        "fee_rate_sat_per_kb": fee_rate,
        "fee_sats_per_submission": max(fees),
        "validate_ms_per_submission": round(1000 * float(np.median(seconds)), 1),
        "validate_ms_first_submission": round(1000 * seconds[0], 1),  # includes parsing the new contract
        "submissions_measured": submissions,
    }
    if mode == OPEN:
        return result
    fair, _ = pick_appeals(model, images, labels, EXAMPLE_DIGIT, EXAMPLE_APPEAL_GAP)
    _, appeal_sizes, appeal_fees, appeal_seconds = _measure(
        utxo, submissions,
        lambda u: appeal(contract, u, fair, SUBMITTER_KEY.address(), EXAMPLE_DIGIT, ATTESTOR_KEY, fee_rate))
    return result | {
        "mode": VETTED,
        "appeal_tx_bytes": max(appeal_sizes),
        "fee_sats_per_appeal": max(appeal_fees),
        "validate_ms_per_appeal": round(1000 * float(np.median(appeal_seconds)), 1),
        "appeal_gap": EXAMPLE_APPEAL_GAP,
        "max_fee_sats": contract.terms.max_fee,  # the exact bound: the largest spend's fee, plus slack
        "worst_case_submission_tx_bytes": worst_case_bytes(contract, SUBMISSION),
        "worst_case_appeal_tx_bytes": worst_case_bytes(contract, APPEAL),
    }


def _measure(utxo: Utxo, count: int, build: Callable[[Utxo], Transaction]
             ) -> tuple[Utxo, list[int], list[int], list[float]]:
    """`count` spends down a chain of outputs from `utxo`: each one's size, fee and validation time."""
    sizes, fees, seconds = [], [], []
    for _ in range(count):
        tx = build(utxo)
        start = time.perf_counter()  # as a node sees it: raw bytes in, parsed, every script run
        received = Transaction.from_hex(tx.hex())
        received.inputs[0].satoshis = utxo.satoshis
        received.inputs[0].locking_script = Script(utxo.locking_script.serialize())
        validate_input(received, 0)
        seconds.append(time.perf_counter() - start)
        sizes.append(tx.byte_length())
        fees.append(utxo.satoshis - sum(o.satoshis for o in tx.outputs))
        utxo = Utxo.of(tx, 0)
    return utxo, sizes, fees, seconds
