"""A self-contained, checkable set of bounty transactions, built offline from fixed demo keys.

funding_tx -> deploy_tx -> accept_tx -> withdraw_tx, plus reject_tx (another digit: invalid).
Every transaction but the first spends an output of another one in the set, so any
interpreter can replay them. The keys are public test keys: never fund them on a real network.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput

from contracts.bounty import BountyContract, BountyTerms
from contracts.errors import ContractError, ScriptError
from contracts.interpreter import TX_VERSION, parsed_locking_script, validate_input
from contracts.transactions import DEFAULT_FEE_RATE, Utxo, deploy, submission, withdraw
from model.reference import IntegerModel, classify

OWNER_KEY, SUBMITTER_KEY = PrivateKey(0xB0B), PrivateKey(0xA11CE)
EXAMPLE_DIGIT, EXAMPLE_PAYOUT, EXAMPLE_MAX_FEE, EXAMPLE_BUDGET = 7, 500, 20_000, 100_000


def example_terms(digit: int = EXAMPLE_DIGIT) -> BountyTerms:
    return BountyTerms(digits=(digit,), payout=EXAMPLE_PAYOUT, min_margin=0, max_fee=EXAMPLE_MAX_FEE,
                       owner_pubkey=OWNER_KEY.public_key().serialize())


def pick_images(model: IntegerModel, images: np.ndarray, labels: np.ndarray, digit: int) -> tuple[np.ndarray, ...]:
    """The first test image of `digit` the model gets right, and the first of another digit."""
    x = images.reshape(-1, 784)
    predicted, _ = classify(model, x)
    hit = np.where((predicted == digit) & (labels == digit))[0]
    miss = np.where((predicted != digit) & (labels == predicted))[0]
    if not len(hit) or not len(miss):
        raise ContractError(f"no test image of {digit} is classified as {digit}")
    return x[hit[0]], x[miss[0]]


def build_example(model: IntegerModel, images: np.ndarray, labels: np.ndarray,
                  fee_rate: int = DEFAULT_FEE_RATE) -> dict[str, Any]:
    contract = BountyContract(model, example_terms())
    good, bad = pick_images(model, images, labels, EXAMPLE_DIGIT)
    owner_address = OWNER_KEY.address()
    funding = _funding(EXAMPLE_BUDGET + 50_000)
    deploy_tx = deploy(contract, EXAMPLE_BUDGET, [Utxo.of(funding, 0)], OWNER_KEY, owner_address, fee_rate)
    accept_tx = submission(contract, Utxo.of(deploy_tx, 0), good, SUBMITTER_KEY.address(), fee_rate)
    reject_tx = submission(contract, Utxo.of(deploy_tx, 0), bad, SUBMITTER_KEY.address(), fee_rate)
    withdraw_tx = withdraw(contract, Utxo.of(accept_tx, 0), OWNER_KEY, owner_address, fee_rate)
    transactions = {"funding_tx": funding, "deploy_tx": deploy_tx, "accept_tx": accept_tx,
                    "reject_tx": reject_tx, "withdraw_tx": withdraw_tx}
    checks = {name: _check(tx) for name, tx in transactions.items() if name != "funding_tx"}
    return {
        **{name: tx.hex() for name, tx in transactions.items()},
        "txids": {name: tx.txid() for name, tx in transactions.items()},
        "expected_valid": {"deploy_tx": True, "accept_tx": True, "reject_tx": False, "withdraw_tx": True},
        "bsv_sdk_verdict": checks,
        "terms": {"digits": list(contract.terms.digits), "payout_sats": EXAMPLE_PAYOUT,
                  "max_fee_sats": EXAMPLE_MAX_FEE, "owner_pubkey": contract.terms.owner_pubkey.hex()},
        "locking_script_bytes": contract.locking_script_bytes,
        "accept_tx_bytes": accept_tx.byte_length(),
        "note": "demo keys (public): never fund them on a real network",
    }


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
          fee_rate: int = DEFAULT_FEE_RATE) -> dict[str, Any]:
    """Sizes, fee and interpreter time of real submissions on one contract's chain of outputs."""
    contract = BountyContract(model, example_terms())
    good, _ = pick_images(model, images, labels, EXAMPLE_DIGIT)
    funding = _funding(10_000_000)
    deploy_tx = deploy(contract, 5_000_000, [Utxo.of(funding, 0)], OWNER_KEY, OWNER_KEY.address(), fee_rate)
    utxo, sizes, fees, seconds = Utxo.of(deploy_tx, 0), [], [], []
    parsed_locking_script.cache_clear()  # the first submission pays for parsing, as on a fresh node
    for _ in range(submissions):
        tx = submission(contract, utxo, good, SUBMITTER_KEY.address(), fee_rate)
        start = time.perf_counter()  # as a node sees it: raw bytes in, parsed, every script run
        received = Transaction.from_hex(tx.hex())
        received.inputs[0].satoshis = utxo.satoshis
        received.inputs[0].locking_script = Script(utxo.locking_script.serialize())
        validate_input(received, 0)
        seconds.append(time.perf_counter() - start)
        sizes.append(tx.byte_length())
        fees.append(utxo.satoshis - sum(o.satoshis for o in tx.outputs))
        utxo = Utxo.of(tx, 0)
    return {
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
