"""NetworkChain against a local stand-in for ARC and WhatsOnChain (tests/support/network_stand_in.py),
which forwards to a real LocalChain: the retry and error paths, and the polled events."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bsv import P2PKH, Network, PrivateKey, Transaction, TransactionInput, TransactionOutput
from sqlalchemy import func, select

from contracts.transactions import Utxo, submission
from contracts.transactions import claim as build_claim
from marketplace import migrate
from marketplace.bounties import create_bounty
from marketplace.chain import (
    BlockMined,
    BlockRemoved,
    LocalChain,
    NetworkChain,
    RetryPolicy,
    Spender,
    TransactionAccepted,
    TxState,
)
from marketplace.chain.errors import ChainError, ChainUnavailable, TransactionRejected
from marketplace.chain.network import RECHECK_SECONDS, woc_root
from marketplace.pool_ledger import prize_utxo
from marketplace.runtime import Runtime
from marketplace.schema import BountyShape, Deployment, Payout, Prize, PrizeStatus, Submission
from marketplace.settings import Settings
from marketplace.watcher import Watcher
from tests.support.network_stand_in import EF_MARKER, WOC_PREFIX, NetworkStandIn

ALICE, BOB = PrivateKey(401), PrivateKey(402)
ARC_KEY, WOC_KEY, TOKEN = "arc-secret-key", "woc-secret-key", "callback-secret"
FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05, timeout=0.5)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalChain]:
    with LocalChain(tmp_path / "network.sqlite") as chain:
        yield chain


@pytest.fixture
def stand_in(local: LocalChain) -> Iterator[NetworkStandIn]:
    server = NetworkStandIn(local, api_key=ARC_KEY).start()
    yield server
    server.stop()


OPENED: list[NetworkChain] = []


@pytest.fixture(autouse=True)
def close_chains() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def network(stand_in: NetworkStandIn, tmp_path: Path, retry: RetryPolicy = FAST, arc_api_key: str = ARC_KEY,
            recheck_seconds: float = RECHECK_SECONDS) -> NetworkChain:
    chain = NetworkChain(arc_url=f"{stand_in.url}/arc", woc_url=f"{stand_in.url}{WOC_PREFIX}", network="test",
                         journal_path=tmp_path / "journal.sqlite", retry=retry, arc_api_key=arc_api_key,
                         woc_api_key=WOC_KEY, callback_url="https://bounty.example/arc", callback_token=TOKEN,
                         recheck_seconds=recheck_seconds)
    OPENED.append(chain)
    return chain


def coin(local: LocalChain, key: PrivateKey = ALICE, amount: int = 100_000) -> Utxo:
    txid = local.faucet(key.address(), amount)
    return next(u for u in local.utxos_for_address(key.address()) if u.txid == txid)


def pay(utxo: Utxo, key: PrivateKey, to: str, amount: int) -> Transaction:
    tx_input = TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout,
                                unlocking_script_template=P2PKH().unlock(key))
    tx_input.satoshis, tx_input.locking_script = utxo.satoshis, utxo.locking_script
    return Transaction([tx_input], [TransactionOutput(P2PKH().lock(to), amount)], version=1).sign()


def test_a_broadcast_goes_through_arc_and_reads_come_from_whatsonchain(stand_in: NetworkStandIn, local: LocalChain,
                                                                        tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path)
    source = coin(local)
    tx = pay(source, ALICE, BOB.address(), 90_000)
    result = chain.broadcast(tx)
    assert (result.txid, result.state, result.detail) == (tx.txid(), TxState.MEMPOOL, "SEEN_ON_NETWORK")
    sent = stand_in.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {ARC_KEY}"
    assert sent.headers["x-callbackurl"] == "https://bounty.example/arc" and sent.headers["x-callbacktoken"] == TOKEN
    assert bytes.fromhex(sent.body.decode().split('"')[3])[4:10] == EF_MARKER  # Extended Format: inputs carry values
    fetched = chain.get_transaction(tx.txid())
    assert fetched is not None and fetched.serialize() == tx.serialize()
    assert chain.status(tx.txid()).state is TxState.MEMPOOL
    assert chain.spender_of(source.txid, 0) == Spender(tx.txid(), 0)
    assert [(u.txid, u.satoshis) for u in chain.utxos_for_address(BOB.address())] == [(tx.txid(), 90_000)]
    stand_in.register_address(BOB.address())
    assert chain.utxos_for_script(P2PKH().lock(BOB.address()).serialize()) == chain.utxos_for_address(BOB.address())
    local.mine(3)
    assert chain.tip_height() == 3 and chain.status(tx.txid()).block_height == 1 and chain.confirmations(tx.txid()) == 3
    reads = [r for r in stand_in.requests if r.path.startswith(WOC_PREFIX)]
    assert all(r.headers["authorization"] == WOC_KEY for r in reads)
    assert chain.get_transaction("ef" * 32) is None and chain.status("ef" * 32).state is TxState.UNKNOWN
    assert chain.spender_of(tx.txid(), 0) is None and chain.confirmations("ef" * 32) == 0
    assert ARC_KEY not in repr(chain) and WOC_KEY not in repr(chain) and TOKEN not in repr(chain)


@pytest.mark.parametrize("status, retry_after", [(503, None), (500, None), (502, None), (429, "0.02")])
def test_transient_failures_are_retried(stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path,
                                        status: int, retry_after: str | None) -> None:
    chain = network(stand_in, tmp_path)
    tx = pay(coin(local), ALICE, BOB.address(), 90_000)
    stand_in.fail_next(2, status, retry_after)
    before = len(stand_in.requests)
    assert chain.broadcast(tx).txid == tx.txid()  # a repeated broadcast is harmless: ARC knows the transaction
    assert len(stand_in.requests) - before == 3
    stand_in.fail_next(2, status, retry_after)
    assert chain.tip_height() == 0


def test_retries_are_capped_then_the_chain_is_unavailable(stand_in: NetworkStandIn, local: LocalChain,
                                                          tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path)
    tx = pay(coin(local), ALICE, BOB.address(), 90_000)
    stand_in.fail_next(10, 503)
    before = len(stand_in.requests)
    with pytest.raises(ChainUnavailable, match=r"ARC did not answer POST /v1/tx after 3 tries \(HTTP 503\)"):
        chain.broadcast(tx)
    assert len(stand_in.requests) - before == 3
    with pytest.raises(ChainUnavailable, match="WhatsOnChain did not answer GET /chain/info after 3 tries"):
        chain.tip_height()
    assert local.status(tx.txid()).state is TxState.UNKNOWN


def test_a_slow_answer_times_out_and_is_retried(stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path, retry=RetryPolicy(attempts=2, backoff=0.01, timeout=0.2))
    stand_in.delay_next(1, 0.5)
    started = time.monotonic()
    assert chain.tip_height() == 0
    assert time.monotonic() - started >= 0.2  # it waited out the timeout, then asked again
    stand_in.delay_next(2, 0.5)
    with pytest.raises(ChainUnavailable, match=r"after 2 tries \(no answer within 0.2 s\)"):
        chain.tip_height()


def test_an_unreachable_service_is_unavailable(tmp_path: Path) -> None:
    with NetworkChain(arc_url="http://127.0.0.1:9", woc_url="http://127.0.0.1:9", journal_path=tmp_path / "j.sqlite",
                      retry=FAST) as chain, pytest.raises(ChainUnavailable, match=r"after 3 tries \(connection failed"):
        chain.tip_height()


def test_an_invalid_transaction_is_rejected_at_once_with_arcs_reason(stand_in: NetworkStandIn, local: LocalChain,
                                                                     tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path)
    stolen = pay(coin(local), BOB, BOB.address(), 90_000)  # Bob cannot unlock Alice's coin
    before = len(stand_in.requests)
    with pytest.raises(TransactionRejected, match="ARC 461: Malformed transaction: .*fails its script") as caught:
        chain.broadcast(stolen)
    assert caught.value.txid == stolen.txid() and len(stand_in.requests) - before == 1  # a refusal is not retried


def test_a_double_spend_is_rejected_naming_the_competitor(stand_in: NetworkStandIn, local: LocalChain,
                                                          tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path)
    source = coin(local)
    first = pay(source, ALICE, BOB.address(), 90_000)
    local.broadcast(first)  # someone else got there first
    with pytest.raises(TransactionRejected, match=f"double spend attempted; competing transactions: {first.txid()}"):
        chain.broadcast(pay(source, ALICE, ALICE.address(), 95_000))


@pytest.mark.parametrize("status, body, error, match", [
    (200, {"txid": "ab" * 32, "txStatus": "REJECTED", "extraInfo": "arc says no"}, TransactionRejected,
     "REJECTED: arc says no"),
    (465, {"title": "Fee too low", "detail": "Fees are too low", "extraInfo": "12 < 13"}, TransactionRejected,
     "ARC 465: Fee too low: Fees are too low: 12 < 13"),
    (401, {"title": "Unauthorized"}, ChainError, r"ARC refused the request \(HTTP 401\): check its URL and API key"),
])
def test_arc_refusals_become_clear_errors(stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path, status: int,
                                          body: dict[str, str], error: type[Exception], match: str) -> None:
    chain = network(stand_in, tmp_path)
    stand_in.refuse_next_broadcast(status, body)
    with pytest.raises(error, match=match) as caught:
        chain.broadcast(pay(coin(local), ALICE, BOB.address(), 90_000))
    assert error is TransactionRejected or not isinstance(caught.value, TransactionRejected)


def test_a_wrong_api_key_is_not_a_rejected_transaction(stand_in: NetworkStandIn, local: LocalChain,
                                                       tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path, arc_api_key="wrong")
    with pytest.raises(ChainError, match="HTTP 401") as caught:
        chain.broadcast(pay(coin(local), ALICE, BOB.address(), 90_000))
    assert not isinstance(caught.value, TransactionRejected) and "wrong" not in str(caught.value)


def test_events_are_polled_for_watched_outputs_blocks_and_reorgs(stand_in: NetworkStandIn, local: LocalChain,
                                                                 tmp_path: Path) -> None:
    chain = network(stand_in, tmp_path)
    source = coin(local)
    local.mine()
    assert chain.events_since() == ([], chain.events_since()[1])  # the first poll only marks the start (height 1)
    chain.watch(source.txid, source.vout)
    spender = pay(source, ALICE, BOB.address(), 90_000)
    local.broadcast(spender)  # broadcast by someone else: found through the watched output
    mine = chain.broadcast(pay(coin(local, BOB), BOB, ALICE.address(), 90_000))  # broadcast here: watched
    events, cursor = chain.events_since()
    assert events == [TransactionAccepted(spender.txid())]
    [block] = local.mine()
    assert block.height == 2
    events, cursor = chain.events_since(cursor)
    assert events == [BlockMined(2, block.block_hash, tuple(sorted((spender.txid(), mine.txid))))]
    local.rollback(1)
    [again] = local.mine()
    restarted = network(stand_in, tmp_path)  # a new process on the same journal: the cursor still works
    events, cursor = restarted.events_since(cursor)
    assert events == [BlockRemoved(2, block.block_hash, tuple(sorted((spender.txid(), mine.txid)))),
                      BlockMined(2, again.block_hash, tuple(sorted((spender.txid(), mine.txid))))]
    local.mine(3)
    events, cursor = restarted.events_since(cursor)
    assert [(e.height, e.txids) for e in events if isinstance(e, BlockMined)] == [(3, ()), (4, ()), (5, ())]
    assert restarted.events_since(cursor) == ([], cursor)


def woc_requests(stand_in: NetworkStandIn, kind: str) -> int:
    """How many WhatsOnChain requests of one kind the stand-in has answered since its log was last cleared."""
    patterns = {"spent": "/spent", "script": "/script/", "tx status": "/tx/hash/"}
    return sum(seen.path.startswith(WOC_PREFIX) and patterns[kind] in seen.path for seen in stand_in.requests)


def test_outputs_sharing_a_script_cost_one_request_a_poll_and_a_spend_of_one_is_still_found(
        stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path) -> None:
    """A pool's prizes share one script: a poll asks for that script's unspent outputs once, then who spent
    only the ones missing from it, instead of asking about every prize on every poll."""
    chain = network(stand_in, tmp_path)
    source = coin(local)
    prizes = Transaction([TransactionInput(source_txid=source.txid, source_output_index=source.vout,
                                           unlocking_script_template=P2PKH().unlock(ALICE))],
                         [TransactionOutput(P2PKH().lock(BOB.address()), 10_000) for _ in range(5)], version=1)
    prizes.inputs[0].satoshis, prizes.inputs[0].locking_script = source.satoshis, source.locking_script
    chain.broadcast(prizes.sign())
    script_sha256 = hashlib.sha256(P2PKH().lock(BOB.address()).serialize()).hexdigest()
    for vout in range(5):
        chain.watch(prizes.txid(), vout, script_sha256)
    chain.events_since()
    stand_in.requests.clear()
    events, cursor = chain.events_since()
    assert events == [] and (woc_requests(stand_in, "script"), woc_requests(stand_in, "spent")) == (1, 0)
    claim = pay(Utxo.of(prizes, 2), BOB, ALICE.address(), 9_000)
    local.broadcast(claim)  # someone else's claim of one prize
    stand_in.requests.clear()
    events, cursor = chain.events_since(cursor)
    assert events == [TransactionAccepted(claim.txid())]
    assert (woc_requests(stand_in, "script"), woc_requests(stand_in, "spent")) == (1, 1)  # only the missing one


def test_between_blocks_a_poll_does_not_ask_where_each_unconfirmed_transaction_is(
        stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path) -> None:
    """Nothing confirms without a block: claims waiting for theirs are looked up only while the tip has just
    moved (`recheck_seconds`, for WhatsOnChain's indexing lag), not on every poll."""
    chain = network(stand_in, tmp_path, recheck_seconds=0)
    waiting = [chain.broadcast(pay(coin(local, ALICE, 50_000 + n), ALICE, BOB.address(), 40_000)).txid
               for n in range(3)]
    events, cursor = chain.events_since()  # the first poll: the tip is new to this process
    stand_in.requests.clear()
    events, cursor = chain.events_since(cursor)
    assert events == [] and woc_requests(stand_in, "tx status") == 0
    [block] = local.mine()
    events, cursor = chain.events_since(cursor)
    assert events == [BlockMined(block.height, block.block_hash, tuple(sorted(waiting)))]
    assert woc_requests(stand_in, "tx status") == 3
    lagging = network(stand_in, tmp_path)  # the default: looked up again for a while after the tip moved
    lagging.broadcast(pay(coin(local, ALICE, 60_000), ALICE, BOB.address(), 40_000))
    lagging.events_since(cursor)
    stand_in.requests.clear()
    lagging.events_since(cursor)
    assert woc_requests(stand_in, "tx status") == 1


def service_on_the_network(stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """The service on the network backend (the stand-in), its operator wallet (ALICE) funded."""
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", ALICE.wif())
    settings = Settings(_env_file=None, home=tmp_path / "home", chain="network",  # type: ignore[call-arg]
                        arc_url=f"{stand_in.url}/arc", woc_url=f"{stand_in.url}{WOC_PREFIX}")
    migrate.upgrade(settings.database)
    coin(local, ALICE, 1_000_000)
    return Runtime(settings, chain=network(stand_in, tmp_path))


def test_the_watcher_follows_a_bounty_on_the_network_whoever_spends_it(
        stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        sevens: np.ndarray) -> None:
    """The service on the network backend: spends of its contract broadcast by someone else (not through
    our API) are found through the watched contract outputs, step after step along the contract's chain; an
    idle step asks once (who spent the contract's output; a script's unspent list pays only for outputs sharing it)."""
    rt = service_on_the_network(stand_in, local, tmp_path, monkeypatch)
    bounty = create_bounty(rt, [7], 500, 100_000)
    watcher = Watcher(rt)
    watcher.run_once()
    stand_in.requests.clear()
    watcher.run_once()
    assert (woc_requests(stand_in, "script"), woc_requests(stand_in, "spent")) == (0, 1)  # its one output
    with rt.session() as session:
        deployment = session.scalars(select(Deployment)).one()
        contract = rt.contract(deployment)
        utxo = Utxo(deployment.current_txid, 0, deployment.current_satoshis, contract.lock())
    spent = []
    for image in sevens[:2]:  # two spends made directly on the network, the second on the first's successor
        tx = submission(contract, utxo, image, BOB.address())
        local.broadcast(tx)
        spent.append(tx.txid())
        utxo = Utxo.of(tx, 0)
        watcher.run_once()
    with rt.session() as session:
        booked = session.execute(select(Submission.txid, Submission.source)).all()
        deployment = session.scalars(select(Deployment)).one()
        paid, fees = session.execute(select(func.sum(Payout.satoshis), func.sum(Payout.fee_sats))).one()
    assert [(txid, str(source)) for txid, source in booked] == [(t, "chain") for t in spent]
    assert (deployment.current_txid, deployment.current_satoshis) == (utxo.txid, utxo.satoshis)
    assert paid == 2 * 500 and bounty.budget_sats - paid - fees == utxo.satoshis  # the books, to the satoshi
    rt.close()


def test_the_watcher_follows_a_pool_on_the_network_with_one_request_for_all_its_prizes(
        stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        sevens: np.ndarray) -> None:
    """A pool bounty on the network backend: an outsider's claim made directly on the network is booked, and an
    idle step asks about the prizes once (their shared script) and about the reserve once."""
    rt = service_on_the_network(stand_in, local, tmp_path, monkeypatch)
    bounty = create_bounty(rt, [7], 500, 100_000, shape=BountyShape.POOL, prizes=4)
    watcher = Watcher(rt, keep=False)
    watcher.run_once()
    with rt.session() as session:
        prizes = session.scalars(select(Prize).where(Prize.bounty_id == bounty.id)).all()
        assert len(prizes) == 4
        contract, utxo = rt.pool(prizes[0].deployment), prize_utxo(rt, prizes[0])
    stand_in.requests.clear()
    watcher.run_once()
    assert (woc_requests(stand_in, "script"), woc_requests(stand_in, "spent")) == (1, 1)  # prizes, reserve
    direct = build_claim(contract, utxo, sevens[0], BOB.address())
    local.broadcast(direct)
    watcher.run_once()
    with rt.session() as session:
        booked = session.scalars(select(Submission).where(Submission.txid == direct.txid())).one()
        testnet_bob = PrivateKey(BOB.int(), network=Network.TESTNET).address()  # the bounty's network's form
        assert str(booked.source) == "chain" and booked.recipient_address == testnet_bob
        assert session.get(Prize, prizes[0].id).status == PrizeStatus.CLAIMED  # type: ignore[union-attr]
    rt.close()


def test_a_bare_whatsonchain_host_gets_the_networks_api_root(tmp_path: Path) -> None:
    """Measured before: the default BOUNTY_WOC_URL (the host alone) was used as the API root, so every read went to
    https://api.whatsonchain.com/address/... and the like, and a 404 there reads as "nothing": an empty wallet."""
    assert woc_root(None, "test") == "https://api.whatsonchain.com/v1/bsv/test"
    assert woc_root("https://api.whatsonchain.com/", "main") == "https://api.whatsonchain.com/v1/bsv/main"
    assert woc_root("http://127.0.0.1:9/woc/v1/bsv/test/", "test") == "http://127.0.0.1:9/woc/v1/bsv/test"
    settings = Settings(_env_file=None, home=tmp_path / "home", chain="network",  # type: ignore[call-arg]
                        arc_url="https://arc.example")
    rt = Runtime(settings)
    assert "'https://api.whatsonchain.com/v1/bsv/test/'" in repr(rt.chain)  # httpx's base URL, a slash added
    rt.close()


def test_the_wallet_command_reads_the_operator_wallet_from_whatsonchain(
        stand_in: NetworkStandIn, local: LocalChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bounty wallet` on the network backend: the address, the balance and the unspent outputs as WhatsOnChain
    reports them (mempool ones included, spent ones not), each linked to WhatsOnChain's page; the key never shown."""
    from typer.testing import CliRunner

    from marketplace.cli import app as cli
    from marketplace.settings import get_settings

    operator = PrivateKey(403, network=Network.TESTNET)
    env = {"BOUNTY_HOME": str(tmp_path / "home"), "BOUNTY_CHAIN": "network", "BOUNTY_ARC_URL": f"{stand_in.url}/arc",
           "BOUNTY_WOC_URL": f"{stand_in.url}{WOC_PREFIX}", "BOUNTY_OPERATOR_WIF": operator.wif()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        kept = coin(local, operator, 60_000)
        local.mine()
        spent = coin(local, operator, 30_000)
        local.broadcast(pay(spent, operator, BOB.address(), 29_000))  # in the mempool: that coin is gone already
        done = runner.invoke(cli, ["wallet", "--json"])
        assert done.exit_code == 0, done.output
        shown = json.loads(done.stdout)
        assert shown == {"address": operator.address(), "network": "testnet", "chain": "network",
                         "balance_sats": 60_000, "utxos": [{"txid": kept.txid, "vout": 0, "satoshis": 60_000,
                                    "txid_url": f"https://test.whatsonchain.com/tx/{kept.txid}"}]}
        assert any(r.path == f"{WOC_PREFIX}/address/{operator.address()}/unspent/all" for r in stand_in.requests)
        text = runner.invoke(cli, ["wallet"])
        assert text.exit_code == 0, text.output
        assert "testnet (ARC and WhatsOnChain)" in text.stdout and f"pay {operator.address()} from a testnet wallet" \
            in text.stdout and "\u2588" in text.stdout  # the QR code to pay it with
        assert f"https://test.whatsonchain.com/tx/{kept.txid}" in text.stdout
        assert operator.wif() not in done.output + text.output
        monkeypatch.delenv("BOUNTY_OPERATOR_WIF")
        get_settings.cache_clear()
        missing = runner.invoke(cli, ["wallet", "--json"])  # no key file is made up on the network backend
        assert missing.exit_code == 1 and json.loads(missing.stdout) == {
            "error": "the environment variable BOUNTY_OPERATOR_WIF holds no operator key (a WIF)"}
        stand_in.fail_next(4, 503)  # every try of the default policy
        monkeypatch.setenv("BOUNTY_OPERATOR_WIF", operator.wif())
        get_settings.cache_clear()
        down = runner.invoke(cli, ["wallet"])  # WhatsOnChain down: one sentence (after the retries)
        assert down.exit_code == 1 and "Traceback" not in down.output
        assert down.stderr.startswith("error: WhatsOnChain did not answer GET ") and down.stderr.count("\n") == 1
    finally:
        get_settings.cache_clear()
