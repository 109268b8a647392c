"""LocalChain, judged as a node would be: real SQLite files, bsv-sdk's real interpreter, real processes."""

from __future__ import annotations

import json
import multiprocessing
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bsv import P2PKH, Network, PrivateKey, Transaction, TransactionInput, TransactionOutput
from typer.testing import CliRunner

from contracts.bounty import BountyContract, BountyTerms
from contracts.transactions import Utxo, submission
from marketplace.chain import (
    START,
    BlockMined,
    BlockRemoved,
    LocalChain,
    NetworkChain,
    Spender,
    TransactionAccepted,
    TransactionDropped,
    TxState,
    Wallet,
)
from marketplace.chain.errors import ChainError, MempoolChainTooLong, TransactionRejected
from marketplace.cli.chain import chain_app
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify

ALICE, BOB, MALLORY, OPERATOR = (PrivateKey(k) for k in (201, 202, 203, 204))
ALICE_TESTNET = PrivateKey(201, network=Network.TESTNET)  # Alice's key; its address is a testnet one


def spend(utxos: list[Utxo], key: PrivateKey, outputs: list[tuple[str, int]], version: int = 1,
          locktime: int = 0) -> Transaction:
    """A signed P2PKH transaction spending `utxos` with `key`, paying (address, sats) pairs."""
    inputs = []
    for utxo in utxos:
        tx_input = TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout,
                                    unlocking_script_template=P2PKH().unlock(key))
        tx_input.satoshis, tx_input.locking_script = utxo.satoshis, utxo.locking_script
        inputs.append(tx_input)
    outs = [TransactionOutput(P2PKH().lock(a), v) for a, v in outputs]
    return Transaction(inputs, outs, version=version, locktime=locktime).sign()


def funded(chain: LocalChain, key: PrivateKey, amount: int = 100_000) -> Utxo:
    txid = chain.faucet(key.address(), amount)
    return next(u for u in chain.utxos_for_address(key.address()) if u.txid == txid)


def with_fee(utxo: Utxo, key: PrivateKey, to: str, fee_for_size: Callable[[int], int]) -> Transaction:
    """A one-in, one-out spend whose fee is exactly fee_for_size(its own size). A DER signature's length
    varies with what it signs (71 or 72 bytes about evenly, shorter rarely), so aim at the sizes near a
    first signing and try nLockTime values until one signed size is the size aimed at."""
    first = spend([utxo], key, [(to, utxo.satoshis - 1)]).byte_length()
    for locktime in range(100):
        for size in (first - 1, first, first + 1):
            tx = spend([utxo], key, [(to, utxo.satoshis - fee_for_size(size))], locktime=locktime)
            if tx.byte_length() == size:
                return tx
    raise AssertionError("no signature of an aimed size")


def test_a_valid_spend_is_accepted_then_mined(chain: LocalChain) -> None:
    coin = funded(chain, ALICE)
    tx = spend([coin], ALICE, [(BOB.address(), 60_000), (ALICE.address(), 39_000)])
    result = chain.broadcast(tx)
    assert (result.txid, result.state, result.detail) == (tx.txid(), TxState.MEMPOOL, "accepted")
    assert chain.broadcast(tx).detail == "already known"  # harmless to repeat (at-least-once workers)
    assert chain.spender_of(coin.txid, coin.vout) == Spender(tx.txid(), 0)
    assert [u.satoshis for u in chain.utxos_for_address(BOB.address())] == [60_000]
    assert chain.utxos_for_address(ALICE.address())[0].txid == tx.txid()  # the spent faucet coin is gone
    assert chain.confirmations(tx.txid()) == 0
    chain.mine()
    assert chain.status(tx.txid()).state is TxState.CONFIRMED and chain.status(tx.txid()).block_height == 1
    chain.mine(2)
    assert chain.confirmations(tx.txid()) == 3
    fetched = chain.get_transaction(tx.txid())
    assert fetched is not None and fetched.serialize() == tx.serialize()
    assert chain.get_transaction("ab" * 32) is None and chain.status("ab" * 32).state is TxState.UNKNOWN


def test_an_invalid_script_is_rejected_with_the_interpreters_reason(chain: LocalChain) -> None:
    coin = funded(chain, ALICE)
    stolen = spend([coin], MALLORY, [(MALLORY.address(), 90_000)])  # Mallory's key cannot unlock Alice's coin
    with pytest.raises(TransactionRejected, match="input 0 fails its script: OP_EQUALVERIFY") as caught:
        chain.broadcast(stolen)
    assert caught.value.txid == stolen.txid()
    forged = spend([coin], ALICE, [(ALICE.address(), 90_000)])
    forged.outputs[0].locking_script = P2PKH().lock(MALLORY.address())  # redirected after Alice signed
    with pytest.raises(TransactionRejected, match="fails its script"):
        chain.broadcast(forged)
    assert chain.spender_of(coin.txid, coin.vout) is None and chain.stats().mempool_size == 1


def test_a_double_spend_is_rejected_first_seen_wins(chain: LocalChain) -> None:
    coin = funded(chain, ALICE)
    first = spend([coin], ALICE, [(BOB.address(), 90_000)])
    second = spend([coin], ALICE, [(MALLORY.address(), 95_000)])  # pays a higher fee: irrelevant
    chain.broadcast(first)
    expected = f"double spend of {coin.txid}:0, already spent by {first.txid()}"
    with pytest.raises(TransactionRejected, match=expected):
        chain.broadcast(second)
    chain.mine()
    with pytest.raises(TransactionRejected, match=expected):
        chain.broadcast(second)


def test_the_fee_must_reach_the_minimum_rate(tmp_path: Path) -> None:
    with LocalChain(tmp_path / "chain.sqlite", min_fee_rate=1000) as chain:  # 1 sat per byte
        coin = funded(chain, ALICE)
        short = with_fee(coin, ALICE, BOB.address(), lambda size: size - 1)
        with pytest.raises(TransactionRejected, match=rf"fee of {short.byte_length() - 1} sats is below the minimum "
                                                      rf"of {short.byte_length()} sats \(1000 sat/kB"):
            chain.broadcast(short)
        chain.broadcast(with_fee(coin, ALICE, BOB.address(), lambda size: size))  # exactly the minimum
    with LocalChain(tmp_path / "default.sqlite") as chain:  # 100 sat/kB rounds up: a 192-byte spend needs 20 sats
        coin = funded(chain, ALICE)
        with pytest.raises(TransactionRejected, match="below the minimum"):
            chain.broadcast(with_fee(coin, ALICE, BOB.address(), lambda size: size // 10 - 1))
        chain.broadcast(with_fee(coin, ALICE, BOB.address(), lambda size: -(-size // 10)))


@pytest.mark.parametrize("case, reason", [
    ("overspend", r"outputs \(100001 sats\) exceed inputs \(100000 sats\)"),
    ("missing input", "missing inputs: " + "cd" * 32 + ":0 is not in the UTXO set or the mempool"),
    ("version 2", "version 2 transactions are not accepted"),
    ("garbage", "malformed transaction"),
    ("trailing bytes", "malformed transaction: 1 bytes after the end"),
    ("same input twice", "spends the same output twice"),
])
def test_malformed_or_unfunded_transactions_are_rejected(chain: LocalChain, case: str, reason: str) -> None:
    coin = funded(chain, ALICE)
    good = spend([coin], ALICE, [(BOB.address(), 90_000)])
    tx: Transaction | bytes = {
        "overspend": lambda: spend([coin], ALICE, [(BOB.address(), 100_001)]),
        "missing input": lambda: spend([Utxo("cd" * 32, 0, 100_000, coin.locking_script)], ALICE, [(BOB.address(), 1)]),
        "version 2": lambda: spend([coin], ALICE, [(BOB.address(), 90_000)], version=2),
        "garbage": lambda: bytes.fromhex("0100000001ff"),
        "trailing bytes": lambda: good.serialize() + b"\0",
        "same input twice": lambda: spend([coin, coin], ALICE, [(BOB.address(), 90_000)]),
    }[case]()
    with pytest.raises(TransactionRejected, match=reason):
        chain.broadcast(tx)
    assert chain.stats().mempool_size == 1  # only the faucet payment


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    with LocalChain(path) as chain:
        coin = funded(chain, ALICE)
        tx = spend([coin], ALICE, [(BOB.address(), 90_000)])
        chain.broadcast(tx)
        chain.mine()
        pending = spend(chain.utxos_for_address(BOB.address()), BOB, [(ALICE.address(), 80_000)])
        chain.broadcast(pending)
        events, cursor = chain.events_since()
    with LocalChain(path) as again:
        assert again.tip_height() == 1 and again.status(tx.txid()).block_height == 1
        assert again.status(pending.txid()).state is TxState.MEMPOOL
        assert again.spender_of(tx.txid(), 0) == Spender(pending.txid(), 0)
        assert [u.satoshis for u in again.utxos_for_address(ALICE.address())] == [80_000]
        assert again.events_since() == (events, cursor)
        with pytest.raises(TransactionRejected, match="double spend"):
            again.broadcast(spend([coin], ALICE, [(MALLORY.address(), 90_000)]))


def test_a_file_that_is_not_a_local_chain_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database, just text long enough to have a header " * 20)
    with pytest.raises(ChainError, match="cannot be used: file is not a database"):
        LocalChain(tmp_path / "notes.txt")
    NetworkChain(arc_url="http://127.0.0.1:9", journal_path=tmp_path / "journal.sqlite").close()
    with pytest.raises(ChainError, match="holds a network-journal, not a local-chain"):
        LocalChain(tmp_path / "journal.sqlite")


def test_the_unconfirmed_chain_is_limited_until_a_block(tmp_path: Path) -> None:
    with LocalChain(tmp_path / "chain.sqlite", max_unconfirmed_ancestors=3) as chain:
        coin = funded(chain, ALICE)  # the faucet payment is the first unconfirmed ancestor
        for amount in (90_000, 80_000):
            tx = spend([coin], ALICE, [(ALICE.address(), amount)])
            chain.broadcast(tx)
            coin = Utxo.of(tx, 0)
        third = spend([coin], ALICE, [(ALICE.address(), 70_000)])
        chain.broadcast(third)
        fourth = spend([Utxo.of(third, 0)], ALICE, [(ALICE.address(), 60_000)])
        with pytest.raises(MempoolChainTooLong, match="too-long-mempool-chain: 4 unconfirmed ancestors"):
            chain.broadcast(fourth)
        chain.mine()
        assert chain.broadcast(fourth).state is TxState.MEMPOOL


# -- the real bounty contract ------------------------------------------------------------------------

PAYOUT, MAX_FEE = 500, 20_000


@pytest.fixture(scope="module")
def contract(shipped: ModelArtifact) -> BountyContract:
    terms = BountyTerms(digits=(7,), payout=PAYOUT, min_margin=0, max_fee=MAX_FEE,
                        owner_pubkey=OPERATOR.public_key().serialize())
    return BountyContract(shipped.integer, terms)


@pytest.fixture(scope="module")
def seven(shipped: ModelArtifact, mnist: Mnist) -> np.ndarray:
    images = mnist.x_test[:200].reshape(-1, 784)
    labels, _margins = classify(shipped.integer, images)
    return images[int(np.where(labels == 7)[0][0])]


def test_a_chain_of_50_unconfirmed_contract_spends(chain: LocalChain, contract: BountyContract,
                                                    seven: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPERATOR_WIF", OPERATOR.wif())
    operator = Wallet.from_env("TEST_OPERATOR_WIF")
    operator.fund_from_faucet(chain, 2_000_000)
    deploy = operator.build_deploy(chain, contract, 1_000_000)
    chain.broadcast(deploy)
    utxo = Utxo.of(deploy, 0)
    for n in range(50):
        tx = submission(contract, utxo, seven, BOB.address())
        assert chain.broadcast(tx).state is TxState.MEMPOOL, n
        assert chain.spender_of(utxo.txid, utxo.vout) == Spender(tx.txid(), 0)
        utxo = Utxo.of(tx, 0)
    assert chain.stats().mempool_size == 52  # faucet, deploy, 50 submissions
    assert chain.utxos_for_script(contract.lock().serialize()) == [utxo]  # only the last successor is unspent
    assert sum(u.satoshis for u in chain.utxos_for_address(BOB.address())) == 50 * PAYOUT
    [block] = chain.mine()
    assert len(block.txids) == 52 and chain.status(utxo.txid).block_height == 1


def test_a_contract_spend_to_another_digit_is_rejected(chain: LocalChain, contract: BountyContract,
                                                       shipped: ModelArtifact, mnist: Mnist) -> None:
    images = mnist.x_test[:50].reshape(-1, 784)
    labels, _ = classify(shipped.integer, images)
    three = images[int(np.where(labels == 3)[0][0])]
    operator = Wallet(OPERATOR)
    operator.fund_from_faucet(chain, 2_000_000)
    deploy = operator.build_deploy(chain, contract, 100_000)
    chain.broadcast(deploy)
    with pytest.raises(TransactionRejected, match="input 0 fails its script: .*NUMEQUALVERIFY"):
        chain.broadcast(submission(contract, Utxo.of(deploy, 0), three, BOB.address()))


# -- reorgs ---------------------------------------------------------------------------------------------

def test_a_rollback_returns_the_blocks_transactions_to_the_mempool(chain: LocalChain) -> None:
    coin = funded(chain, ALICE)
    tx = spend([coin], ALICE, [(BOB.address(), 90_000)])
    chain.broadcast(tx)
    [mined] = chain.mine()
    [removed] = chain.rollback()
    assert removed == BlockRemoved(1, mined.block_hash, mined.txids)
    assert chain.tip_height() == 0 and chain.status(tx.txid()).state is TxState.MEMPOOL
    assert chain.spender_of(coin.txid, 0) == Spender(tx.txid(), 0)
    [again] = chain.mine()
    assert again.txids == mined.txids and again.block_hash != mined.block_hash
    with pytest.raises(ChainError, match="genesis stays"):
        chain.rollback(2)


def test_a_reorg_drops_the_losing_double_spend_and_its_descendants(chain: LocalChain) -> None:
    coin = funded(chain, ALICE)
    chain.mine()  # the coin is confirmed in block 1 and stays
    paid = spend([coin], ALICE, [(BOB.address(), 90_000)])
    child = spend([Utxo.of(paid, 0)], BOB, [(BOB.address(), 80_000)])
    for tx in (paid, child):
        chain.broadcast(tx)
    chain.mine()  # block 2: paid, child
    _events, cursor = chain.events_since()
    competing = spend([coin], ALICE, [(MALLORY.address(), 95_000)])  # the other chain's version of block 2
    chain.rollback(1, replacement=[competing])
    events, _ = chain.events_since(cursor)
    assert events[0] == BlockRemoved(2, events[0].block_hash, (paid.txid(), child.txid()))  # type: ignore[union-attr]
    assert [type(e) for e in events[1:]] == [TransactionDropped, TransactionDropped, TransactionAccepted]
    assert [e.txid for e in events[1:]] == [child.txid(), paid.txid(), competing.txid()]  # type: ignore[union-attr]
    assert "lost to " + competing.txid() in events[2].reason  # type: ignore[union-attr]
    assert chain.status(paid.txid()).state is TxState.UNKNOWN and chain.status(child.txid()).state is TxState.UNKNOWN
    assert chain.spender_of(coin.txid, 0) == Spender(competing.txid(), 0)
    assert chain.utxos_for_address(BOB.address()) == []
    chain.mine()
    assert chain.status(competing.txid()).block_height == 2
    # a replacement cannot double-spend a block that stays; the rollback then changes nothing
    chain.mine()
    with pytest.raises(TransactionRejected, match="in a block that stays"):
        chain.rollback(1, replacement=[paid])
    assert chain.tip_height() == 3


# -- events ---------------------------------------------------------------------------------------------

def test_events_arrive_in_order_and_the_cursor_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    with LocalChain(path) as chain:
        assert chain.events_since() == ([], chain.events_since()[1])
        coin = funded(chain, ALICE)
        tx = spend([coin], ALICE, [(BOB.address(), 90_000)])
        chain.broadcast(tx)
        first, cursor = chain.events_since(START, limit=2)
        assert first == [TransactionAccepted(coin.txid), TransactionAccepted(tx.txid())]
        [block] = chain.mine()
        chain.rollback()
    with LocalChain(path) as again:
        later, cursor = again.events_since(cursor)
        assert later == [BlockMined(1, block.block_hash, (coin.txid, tx.txid())),
                         BlockRemoved(1, block.block_hash, (coin.txid, tx.txid()))]
        assert again.events_since(cursor) == ([], cursor)  # nothing new: the cursor stays put
    with LocalChain(tmp_path / "other.sqlite") as other, pytest.raises(ChainError, match="another chain file"):
        other.events_since(cursor)


def test_blocks_are_mined_on_an_interval(chain: LocalChain) -> None:
    miner = chain.mine_every(0.05)
    deadline = time.monotonic() + 5
    while chain.tip_height() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    miner.stop()
    assert chain.tip_height() >= 2


# -- several processes on one file --------------------------------------------------------------------

PROCESSES, OWN, SHARED = 4, 6, 4


def _broadcaster(path: str, index: int, own: list[tuple[str, int, int]], shared: list[tuple[str, int, int]],
                 start: Any, results: Any) -> None:
    """One process: spend its own coins and race the others for the shared ones, mining once midway."""
    script = P2PKH().lock(ALICE.address())
    coins = [Utxo(t, v, s, script) for t, v, s in own + shared]
    random.Random(index).shuffle(coins)
    payee = PrivateKey(300 + index).address()
    txs = [spend([coin], ALICE, [(payee, coin.satoshis - 1_000)]) for coin in coins]
    accepted, rejected = [], []
    chain = LocalChain(path)
    start.wait()  # every process is ready: now they race
    for n, tx in enumerate(txs):
        try:
            accepted.append(chain.broadcast(tx).txid)
        except TransactionRejected as exc:
            rejected.append(exc.reason)
        if n == len(txs) // 2:
            chain.mine()
    chain.close()
    results.put((accepted, rejected))


@pytest.mark.subprocess
def test_concurrent_broadcasts_from_several_processes_lose_nothing_and_double_spend_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    with LocalChain(path) as chain:
        coins = [funded(chain, ALICE, 50_000 + i) for i in range(PROCESSES * OWN + SHARED)]
        chain.mine()
    outpoints = [(c.txid, c.vout, c.satoshis) for c in coins]
    shared = outpoints[-SHARED:]
    context = multiprocessing.get_context("spawn")  # separate interpreters, like the API, a watcher and workers
    start, queue = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=_broadcaster, args=(str(path), i, outpoints[i * OWN:(i + 1) * OWN], shared,
                                                            start, queue)) for i in range(PROCESSES)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
        assert process.exitcode == 0
    accepted = [txid for ok, _ in results for txid in ok]
    rejected = [reason for _, bad in results for reason in bad]
    assert len(accepted) == len(set(accepted)) == PROCESSES * OWN + SHARED  # every own coin, each shared coin once
    assert len(rejected) == (PROCESSES - 1) * SHARED and all(r.startswith("double spend of ") for r in rejected)
    with LocalChain(path) as chain:
        spenders = [chain.spender_of(t, v) for t, v, _ in outpoints]
        assert sorted(s.txid for s in spenders if s) == sorted(accepted)  # one recorded spender per coin
        assert all(chain.status(t).state is not TxState.UNKNOWN for t in accepted)
        events, _ = chain.events_since()
        seen = [e.txid for e in events if isinstance(e, TransactionAccepted)]
        assert sorted(seen) == sorted([c.txid for c in coins] + accepted)  # every acceptance, each exactly once
        chain.mine()
        assert chain.stats().mempool_size == 0 and chain.stats().utxo_count == len(accepted)


@pytest.mark.parametrize("network", ["testnet", "mainnet"])
def test_a_chain_opened_for_a_network_pays_only_its_addresses(tmp_path: Path, network: str) -> None:
    ours, theirs = (ALICE_TESTNET, ALICE) if network == "testnet" else (ALICE, ALICE_TESTNET)
    with LocalChain(tmp_path / "chain.sqlite", network=network) as chain:  # type: ignore[arg-type]
        chain.faucet(ours.address(), 1_000)
        refusal = (rf"^{theirs.address()} is a \w+net address and this dev chain runs on {network} \(BOUNTY_NETWORK\): "
                   rf"the faucet pays {network} addresses only$")
        with pytest.raises(ChainError, match=refusal):
            chain.faucet(theirs.address(), 1_000)
        with pytest.raises(ChainError, match="faucet pays"):
            Wallet(theirs).fund_from_faucet(chain, 1_000)
        assert chain.stats().utxo_count == 1  # the refused payments left nothing behind
    with LocalChain(tmp_path / "chain.sqlite") as chain:  # opened for no network: either is paid, as before
        chain.faucet(ALICE.address(), 1_000)
        chain.faucet(ALICE_TESTNET.address(), 1_000)
        assert chain.stats().utxo_count == 3
    with pytest.raises(ChainError, match="unknown network 'regtest'"):
        LocalChain(tmp_path / "chain.sqlite", network="regtest")  # type: ignore[arg-type]


# -- the CLI ---------------------------------------------------------------------------------------------

def test_the_cli_funds_mines_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    paid = runner.invoke(chain_app, ["faucet", ALICE_TESTNET.address(), "5000", "--json"])
    assert paid.exit_code == 0, paid.output
    txid = json.loads(paid.stdout)["txid"]
    mined = runner.invoke(chain_app, ["mine", "2", "--json"])
    assert json.loads(mined.stdout)["tip_height"] == 2
    status = json.loads(runner.invoke(chain_app, ["status", "--json"]).stdout)
    assert status == {"path": str(tmp_path / "home" / "chain.sqlite"), "tip_height": 2, "mempool_size": 0,
                      "utxo_count": 1}
    with LocalChain(tmp_path / "home" / "chain.sqlite") as chain:
        assert chain.status(txid).block_height == 1
    elsewhere = runner.invoke(chain_app, ["status", "--path", str(tmp_path / "other.sqlite")])
    assert elsewhere.exit_code == 0 and re.search(r"tip_height +0\n", elsewhere.stdout)
    bad = runner.invoke(chain_app, ["faucet", "not-an-address", "5000"])
    assert bad.exit_code == 1 and bad.stderr.strip() == "error: 'not-an-address' is not a valid P2PKH address"


@pytest.mark.parametrize("network", ["testnet", "mainnet"])
def test_the_cli_faucet_pays_only_addresses_of_the_services_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    network: str) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BOUNTY_NETWORK", network)
    ours, theirs = (ALICE_TESTNET, ALICE) if network == "testnet" else (ALICE, ALICE_TESTNET)
    other = "mainnet" if network == "testnet" else "testnet"
    runner = CliRunner()
    assert runner.invoke(chain_app, ["faucet", ours.address(), "5000"]).exit_code == 0
    refused = runner.invoke(chain_app, ["faucet", theirs.address(), "5000"])
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr == (f"error: {theirs.address()} is a {other} address and this dev chain runs on {network} "
                              f"(BOUNTY_NETWORK): the faucet pays {network} addresses only\n")
    as_json = runner.invoke(chain_app, ["faucet", theirs.address(), "5000", "--json"])
    assert as_json.exit_code == 1 and list(json.loads(as_json.stdout)) == ["error"]
    with LocalChain(tmp_path / "home" / "chain.sqlite") as chain:
        assert chain.stats().utxo_count == 1  # the first payment only
