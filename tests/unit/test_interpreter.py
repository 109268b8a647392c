"""`contracts.interpreter.validate_input`: each locking script parsed once and shared, and the same verdict, for the
same reason, as bsv-sdk's own `Spend` on every kind of spend (valid, refused, malformed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.script.spend import Spend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.bounty import VETTED, BountyContract, BountyTerms
from contracts.errors import ScriptError
from contracts.fees import default_max_fee, with_max_fee
from contracts.interpreter import clear_script_cache, ends_inside_a_push, locking_chunks, validate_input
from contracts.pool import PoolContract
from contracts.transactions import Utxo, claim, deploy, deploy_prizes, reclaim, submission
from model.artifact import ModelArtifact

OWNER, WALLET, USER, ATTESTOR = (PrivateKey(k) for k in (401, 402, 403, 404))


def sdk_verdict(tx: Transaction, index: int) -> str:
    """bsv-sdk's `Spend` on freshly parsed scripts: what validate_input did before it shared parses."""
    tx_input = tx.inputs[index]
    spend = Spend({
        "sourceTXID": tx_input.source_txid, "sourceOutputIndex": tx_input.source_output_index,
        "sourceSatoshis": tx_input.satoshis, "lockingScript": Script(tx_input.locking_script.serialize()),
        "transactionVersion": tx.version, "otherInputs": [o for i, o in enumerate(tx.inputs) if i != index],
        "inputIndex": index, "unlockingScript": Script(tx_input.unlocking_script.serialize()),
        "outputs": tx.outputs, "inputSequence": tx_input.sequence, "lockTime": tx.locktime})
    try:
        return "valid" if spend.validate() else "false"
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[0].removeprefix("Script evaluation error:").strip()


CUT_SHORT = "the unlocking script ends inside a push"


def our_verdict(tx: Transaction, index: int) -> str:
    try:
        validate_input(tx, index)
    except ScriptError as exc:
        return exc.reason or "?"
    return "valid"


@pytest.fixture(scope="module")
def spends(shipped: ModelArtifact, sevens: np.ndarray) -> dict[str, tuple[Transaction, int]]:
    """One of every kind of spend this project makes, valid and refused."""
    terms = BountyTerms(digits=(7,), payout=500, min_margin=0, max_fee=20_000,
                        owner_pubkey=OWNER.public_key().serialize(), tag=3)
    vetted_terms = replace(terms, mode=VETTED, attestor_pubkey=ATTESTOR.public_key().serialize(), appeal_gap=100)
    chain = BountyContract(shipped.integer, terms)
    pool = with_max_fee(PoolContract(shipped.integer, vetted_terms), default_max_fee(
        PoolContract(shipped.integer, vetted_terms), 100))
    source = Transaction([TransactionInput(source_txid="99" * 32, unlocking_script=Script(b""))],
                         [TransactionOutput(P2PKH().lock(WALLET.address()), 1_000_000)])
    chain_deploy = deploy(chain, 200_000, [Utxo.of(source, 0)], WALLET, WALLET.address())
    pool_deploy = deploy_prizes(pool, 2, [Utxo.of(chain_deploy, 1)], WALLET, WALLET.address())
    three = np.where(sevens[-1] > 0, 0, 255).astype(np.uint8)  # an inverted 7: not a 7
    accepted = claim(pool, Utxo.of(pool_deploy, 0), sevens[0], USER.address(), attestor=ATTESTOR)
    wrong_key = Transaction.from_hex(accepted.hex())
    wrong_key.inputs[0].satoshis, wrong_key.inputs[0].locking_script = pool.prize_satoshis, pool.lock()
    wrong_key.outputs[0].locking_script = P2PKH().lock(WALLET.address())
    return {
        "p2pkh": (chain_deploy, 0),
        "chain submission": (submission(chain, Utxo.of(chain_deploy, 0), sevens[0], USER.address()), 0),
        "chain refusal": (submission(chain, Utxo.of(chain_deploy, 0), three, USER.address()), 0),
        "vetted claim": (accepted, 0),
        "vetted refusal": (claim(pool, Utxo.of(pool_deploy, 1), three, USER.address(), attestor=ATTESTOR), 0),
        "outputs changed after signing": (wrong_key, 0),
        "owner reclaim, second input": (reclaim(pool, [Utxo.of(pool_deploy, i) for i in (0, 1)], OWNER,
                                                OWNER.address()), 1),
    }


def test_the_same_verdicts_as_bsv_sdks_spend(spends: dict[str, tuple[Transaction, int]]) -> None:
    verdicts = {name: (our_verdict(tx, i), sdk_verdict(tx, i)) for name, (tx, i) in spends.items()}
    for name, (ours, theirs) in verdicts.items():
        assert ours == theirs, name
    assert [name for name, (ours, _) in verdicts.items() if ours == "valid"] == [
        "p2pkh", "chain submission", "vetted claim", "owner reclaim, second input"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_the_same_verdicts_on_mutated_scripts(spends: dict[str, tuple[Transaction, int]], data: st.DataObject) -> None:
    """A few bytes of the unlocking or the locking script overwritten, truncated or cut short."""
    tx, index = spends[data.draw(st.sampled_from(sorted(spends)), label="spend")]
    mutant = Transaction.from_hex(tx.hex())
    for i, tx_input in enumerate(tx.inputs):
        mutant.inputs[i].satoshis, mutant.inputs[i].locking_script = tx_input.satoshis, tx_input.locking_script
    target = data.draw(st.sampled_from(["unlocking", "locking"]), label="script")
    script = mutant.inputs[index].unlocking_script if target == "unlocking" else mutant.inputs[index].locking_script
    raw = bytearray(script.serialize())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        raw[data.draw(st.integers(0, len(raw) - 1), label="at")] = data.draw(st.integers(0, 255), label="byte")
    if data.draw(st.booleans(), label="cut"):
        raw = raw[:data.draw(st.integers(0, len(raw)), label="length")]
    if target == "unlocking":
        mutant.inputs[index].unlocking_script = Script(bytes(raw))
    else:
        mutant.inputs[index].locking_script = Script(bytes(raw))
    # bsv-sdk runs an unlocking script cut short inside a push (an empty push); a node refuses it, as we do
    cut_short = target == "unlocking" and ends_inside_a_push(bytes(raw))
    assert our_verdict(mutant, index) == (CUT_SHORT if cut_short else sdk_verdict(mutant, index))


def test_a_locking_script_is_parsed_once(spends: dict[str, tuple[Transaction, int]]) -> None:
    tx, index = spends["vetted claim"]
    clear_script_cache()
    for _ in range(3):
        received = Transaction.from_hex(tx.hex())  # new objects each time, as spends arrive
        received.inputs[0].satoshis = tx.inputs[0].satoshis
        received.inputs[0].locking_script = Script(tx.inputs[0].locking_script.serialize())
        validate_input(received, index)
    info = locking_chunks.cache_info()
    assert (info.misses, info.hits) == (1, 2)


@pytest.mark.parametrize("raw", [b"\x51\x02\x01", b"\x51\x4c", b"\x51\x4d\x05\x00\x01"],
                         ids=["direct push", "PUSHDATA1 without its length", "PUSHDATA2 short"])
def test_a_truncated_push_locks_as_bsv_sdk_judges_it_and_unlocks_nothing(raw: bytes) -> None:
    """In a locking script bsv-sdk's own path judges it (the C parser drops it silently); an unlocking script
    ending inside a push is refused, as a node refuses it (bsv-sdk would run it as an empty push)."""
    assert locking_chunks(raw) is None
    tx = Transaction([TransactionInput(source_txid="aa" * 32, unlocking_script=Script(b""))],
                     [TransactionOutput(P2PKH().lock(USER.address()), 1)], version=1)
    tx.inputs[0].satoshis, tx.inputs[0].locking_script = 2, Script(raw)
    assert our_verdict(tx, 0) == sdk_verdict(tx, 0)
    tx.inputs[0].locking_script, tx.inputs[0].unlocking_script = Script(b"\x51"), Script(raw[1:])
    assert our_verdict(tx, 0) == CUT_SHORT
