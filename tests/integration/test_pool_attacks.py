"""Attacks on the money paths of pool bounties (marketplace.pools, marketplace.pool_ledger), made the way an
adversary can: with the public weights, any valid transaction broadcast to the dev chain, reorgs of it, a
process that stops between a broadcast and its commit, and the public API. After each the books must be exact
to the satoshi (tests/support/pool_books.py), nothing paid or booked twice, and every refusal a sentence."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from bsv import P2PKH, Network, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.fee_models import SatoshisPerKilobyte
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from contracts.fees import fee_for
from contracts.interpreter import TX_VERSION
from contracts.pool import PoolContract
from contracts.transactions import Utxo
from contracts.transactions import claim as build_claim
from marketplace.bounties import create_bounty, fund_bounty, get_bounty, redeploy, withdraw_bounty
from marketplace.chain import START
from marketplace.chain.errors import TransactionRejected
from marketplace.errors import BountyClosed, InvalidRequest
from marketplace.pool_ledger import pool_totals, prize_utxo, reserve_utxo
from marketplace.pools import (
    MOVE_OVERHEAD_BYTES,
    can_pay_more,
    images_left,
    keep_forever,
    keep_pools,
    live_pool,
    prize_creation_fee,
    prizes_affordable,
    release_prize,
    take_prize,
)
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import (
    Bounty,
    BountyMode,
    BountyShape,
    ModelVersion,
    Payout,
    PoolMove,
    Prize,
    PrizeStatus,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    WatcherState,
)
from marketplace.submissions import RACE_RETRIES, decide_appeals, get_submission, send_queued
from marketplace.watcher import CURSOR_KEY, Watcher
from model.artifact import ModelArtifact
from model.data import Mnist
from tests.support.fees import fee_paid
from tests.support.holding import hold_an_appeal, queue_until_a_block
from tests.support.models import register_variants
from tests.support.pools import OUTSIDER, PAYOUT, USER, books, client, pool, post, prizes_of, rescan, settle
from tests.support.reference import ranking_of_test_set, reading_of_test_set
from tests.support.settings import runtime_on, settings_for
from tests.support.statement_faults import database_fails

STRANGER = PrivateKey(7201, network=Network.TESTNET)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    runtime = runtime_on(request.param, request, tmp_path, pool_wait_seconds=0.5, novelty_index_mnist_test=False,
                         quota_per_payee_per_hour=0, quota_per_client_per_hour=0)
    yield runtime
    runtime.close()


def live_prizes(rt: Runtime, bounty_id: int, n: int) -> tuple[PoolContract, list[Utxo]]:
    """The pool's contract and the outputs of its first `n` free prizes (as an outsider reads them off chain)."""
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        prizes = list(session.scalars(select(Prize).where(Prize.deployment_id == deployment.id,
                                                          Prize.status == PrizeStatus.LIVE).order_by(Prize.id)))
        return rt.pool(deployment), [prize_utxo(rt, p) for p in prizes[:n]]


def coin(rt: Runtime, key: PrivateKey, amount: int) -> Utxo:
    """A P2PKH coin of the outsider's own, from the dev chain's faucet."""
    assert rt.local_chain is not None
    txid = rt.local_chain.faucet(key.address(), amount)
    source = rt.chain.get_transaction(txid)
    assert source is not None
    return Utxo.of(source, 0)


def spend(utxo: Utxo, template: object) -> TransactionInput:
    tx_input = TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout,
                                unlocking_script_template=template)
    tx_input.satoshis, tx_input.locking_script = utxo.satoshis, utxo.locking_script
    return tx_input


def op_return(data: bytes = b"no payee") -> Script:
    return Script(b"\x00\x6a" + bytes([len(data)]) + data)


def fee(tx: Transaction, rate: int) -> int:
    return int(SatoshisPerKilobyte(rate).compute_fee(tx))


def counts(rt: Runtime, bounty_id: int) -> dict[str, object]:
    """Everything the books hold for a pool, to compare before and after."""
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        return {
            "totals": pool_totals(session, bounty),
            "budget": bounty.budget_sats,
            "status": str(bounty.status),
            "submissions": sorted((s.txid or "", s.input_index or 0, str(s.status)) for s in session.scalars(
                select(Submission).where(Submission.bounty_id == bounty_id))),
            "payouts": sorted((p.txid, p.satoshis, p.fee_sats) for p in session.scalars(
                select(Payout).where(Payout.bounty_id == bounty_id))),
            "moves": sorted((m.txid, str(m.kind), m.added_sats, m.fee_sats, m.dropped) for m in session.scalars(
                select(PoolMove).where(PoolMove.bounty_id == bounty_id))),
            "prizes": sorted((p.txid, p.vout, str(p.status), p.spent_txid or "") for p in session.scalars(
                select(Prize).where(Prize.bounty_id == bounty_id))),
        }


# -- 1. claims shaped to confuse the books -------------------------------------------------------------------


def test_one_transaction_claiming_two_prizes_with_an_input_of_its_own_and_a_foreign_prize_output(
        rt: Runtime, sevens: np.ndarray) -> None:
    """An outsider claims two prizes in one transaction that also spends a coin of theirs, pays themselves, and
    creates an output locked by the pool's own prize script. Each prize is booked once, its payout and fee
    adding up to exactly what it held; the foreign output is never counted as the pool's, never handed out by
    the service, and its claim is nobody's business of the books."""
    bounty_id = pool(rt, prizes=4)
    contract, (first, second) = live_prizes(rt, bounty_id, 2)
    own = coin(rt, OUTSIDER, 20_000)
    foreign_value = contract.prize_satoshis
    tx = Transaction([spend(first, contract.claim_unlock(sevens[0])), spend(own, P2PKH().unlock(OUTSIDER)),
                      spend(second, contract.claim_unlock(sevens[1]))],
                     [TransactionOutput(op_return(), 0), TransactionOutput(P2PKH().lock(OUTSIDER.address()), 0),
                      TransactionOutput(contract.lock(), foreign_value)], version=TX_VERSION)
    total_in = first.satoshis + second.satoshis + own.satoshis
    tx.outputs[1].satoshis = total_in - foreign_value - fee(tx, rt.settings.fee_rate) - 10
    tx.sign()
    rt.chain.broadcast(tx)
    settle(rt)
    with rt.session() as session:
        rows = list(session.scalars(select(Submission).where(Submission.txid == tx.txid())
                                    .order_by(Submission.input_index)))
        assert [r.input_index for r in rows] == [0, 2] and all(r.source == SubmissionSource.CHAIN for r in rows)
        assert all(r.recipient_address == OUTSIDER.address() and r.payout is not None for r in rows)
        assert all(r.payout.satoshis + r.payout.fee_sats == contract.prize_satoshis for r in rows)  # type: ignore[union-attr]
        foreign = session.scalar(select(Prize).where(Prize.txid == tx.txid()))
        assert foreign is None  # not the pool's money
    assert prizes_of(rt, bounty_id)["claimed"] == 2
    books(rt, bounty_id)
    # the service never hands out the foreign output, and a claim of it books nothing
    api = client(rt)
    for image in sevens[2:4]:
        paid = post(api, bounty_id, image)
        assert paid["code"] == 202
        claim_tx = rt.chain.get_transaction(paid["txid"])
        assert claim_tx is not None and claim_tx.inputs[0].source_txid != tx.txid()
    stranger = build_claim(contract, Utxo.of(tx, 2), sevens[6], STRANGER.address(), rt.settings.fee_rate)
    rt.chain.broadcast(stranger)
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(func.count(Submission.id)).where(Submission.txid == stranger.txid())) == 0
    books(rt, bounty_id)


def test_a_claim_that_pays_nobody_is_all_fee_and_reads_back(rt: Runtime, sevens: np.ndarray) -> None:
    """A claim whose only output is an OP_RETURN: the whole prize is its fee, the submission has no payee, and
    the API shows it without failing."""
    bounty_id = pool(rt, prizes=3)
    contract, (prize,) = live_prizes(rt, bounty_id, 1)
    tx = Transaction([spend(prize, contract.claim_unlock(sevens[0]))], [TransactionOutput(op_return(), 0)],
                     version=TX_VERSION).sign()
    rt.chain.broadcast(tx)
    settle(rt)
    with rt.session() as session:
        row = session.scalar(select(Submission).where(Submission.txid == tx.txid()))
        assert row is not None and row.recipient_address == "" and row.payout is not None
        assert (row.payout.satoshis, row.payout.fee_sats) == (0, contract.prize_satoshis)
        row_id = row.id
    api = client(rt)
    shown = api.get(f"/submissions/{row_id}")
    assert shown.status_code == 200, shown.text
    assert api.get(f"/bounties/{bounty_id}").status_code == 200
    books(rt, bounty_id)


def test_dust_sent_to_the_reserve_address_and_the_prize_script_by_a_stranger_changes_nothing(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=3, budget=120_000)
    contract, _ = live_prizes(rt, bounty_id, 0)
    own = coin(rt, STRANGER, 10_000)
    gift = Transaction([spend(own, P2PKH().unlock(STRANGER))],
                       [TransactionOutput(P2PKH().lock(rt.wallet.reserve_address(bounty_id)), 1),
                        TransactionOutput(contract.lock(), 1), TransactionOutput(P2PKH().lock(STRANGER.address()), 0)],
                       version=TX_VERSION)
    gift.outputs[2].satoshis = own.satoshis - 2 - fee(gift, rt.settings.fee_rate)
    rt.chain.broadcast(gift.sign())
    before = counts(rt, bounty_id)
    settle(rt)
    assert counts(rt, bounty_id)["totals"] == before["totals"]
    for image in sevens[:3]:
        assert post(client(rt), bounty_id, image)["code"] == 202
    settle(rt)  # the keeper refills from its own reserve, not the stranger's dust
    fund_bounty(rt, bounty_id, 5_000)
    settle(rt)
    withdrawn = withdraw_bounty(rt, bounty_id)
    settle(rt)
    books(rt, bounty_id)
    assert rt.chain.spender_of(gift.txid(), 0) is None and rt.chain.spender_of(gift.txid(), 1) is None
    assert withdrawn.status == "withdrawn"


# -- 2. races with the owner's transactions ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["withdraw", "redeploy"])
def test_an_owner_move_after_a_direct_claim_the_watcher_has_not_seen(
        rt: Runtime, sevens: np.ndarray, action: str, tmp_path: Path, shipped: ModelArtifact) -> None:
    """An outsider claims a prize directly on chain; before the watcher books it the owner withdraws (or
    redeploys). The move must be rebuilt without that prize and succeed, and the books end exact."""
    bounty_id = pool(rt, prizes=3)
    contract, (prize,) = live_prizes(rt, bounty_id, 1)
    direct = build_claim(contract, prize, sevens[0], OUTSIDER.address(), rt.settings.fee_rate)
    rt.chain.broadcast(direct)
    if action == "withdraw":
        assert withdraw_bounty(rt, bounty_id).status == "withdrawn"
    else:
        (model_id,) = register_variants(rt, shipped, tmp_path, 1)
        assert redeploy(rt, bounty_id, model_id).contract_version == 2
    settle(rt)
    with rt.session() as session:
        outsider = session.scalar(select(Submission).where(Submission.txid == direct.txid()))
        assert outsider is not None and outsider.payout is not None
    books(rt, bounty_id)


def test_a_redeploy_racing_concurrent_claims_ends_with_exact_books(
        rt: Runtime, sevens: np.ndarray, tmp_path: Path, shipped: ModelArtifact) -> None:
    bounty_id = pool(rt, prizes=8, budget=300_000)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    api = client(rt)
    with ThreadPoolExecutor(max_workers=4) as threads:
        claims = [threads.submit(post, api, bounty_id, image) for image in sevens[:6]]
        moved = threads.submit(redeploy, rt, bounty_id, model_id)
        codes = [c.result()["code"] for c in claims]
        assert moved.result().contract_version == 2
    assert set(codes) <= {202, 409, 422} and 202 in codes, codes
    settle(rt)
    books(rt, bounty_id)
    with rt.session() as session:
        paid = list(session.scalars(select(Payout.txid).where(Payout.bounty_id == bounty_id)))
    assert len(paid) == len(set(paid)) == codes.count(202)  # every claim paid once, from a prize of its own


# -- reorgs --------------------------------------------------------------------------------------------------


def drop_for_another_move(rt: Runtime, bounty_id: int, contract: PoolContract, reserve_before: str) -> None:
    """A reorg replaces the last block with one where the reserve a move spent (`reserve_before`,
    "txid:vout:sats") went to another owner move instead: the move, and whatever spent its outputs, is dropped."""
    txid, vout, _ = reserve_before.split(":")
    source = rt.chain.get_transaction(txid)
    assert source is not None and rt.local_chain is not None
    other = rt.wallet.build_pool_move(rt.chain, bounty_id, pool=contract, count=1,
                                      reserve=Utxo.of(source, int(vout)), fee_rate=rt.settings.fee_rate)
    rt.local_chain.rollback(1, replacement=[other])


def test_a_reorg_dropping_a_refill_and_a_claim_of_its_prize(rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=4, budget=300_000)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, bounty_id, image)["code"] == 202
    settle(rt)  # the keeper refilled, and the refill was mined
    with rt.session() as session:
        refill = session.scalar(select(PoolMove).where(PoolMove.bounty_id == bounty_id, PoolMove.kind == "refill"))
        assert refill is not None and refill.reserve_before is not None
        refill_txid, reserve_before = refill.txid, refill.reserve_before
        contract = rt.pool(live_pool(session, bounty_id)[1])
    paid = [post(api, bounty_id, image) for image in sevens[3:6]]  # the last ones take the refill's prizes
    assert [p["code"] for p in paid] == [202] * 3
    on_refill = [p for p in paid if rt.chain.get_transaction(p["txid"]).inputs[0].source_txid == refill_txid]  # type: ignore[union-attr]
    assert on_refill
    drop_for_another_move(rt, bounty_id, contract, reserve_before)
    settle(rt)
    with rt.session() as session:
        for p in on_refill:
            row = session.get(Submission, p["id"])
            assert row is not None and row.status == SubmissionStatus.ORPHANED and row.payout is None
        assert session.scalar(select(PoolMove.dropped).where(PoolMove.txid == refill_txid)) is True
    books(rt, bounty_id)


def test_a_reorg_dropping_a_withdrawal_for_an_outsiders_claim_reopens_the_pool(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=3)
    contract, (prize,) = live_prizes(rt, bounty_id, 1)
    withdraw_bounty(rt, bounty_id)
    settle(rt)
    rival = build_claim(contract, prize, sevens[0], OUTSIDER.address(), rt.settings.fee_rate)
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[rival])
    settle(rt)
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None and str(bounty.status) == "active"
        theirs = session.scalar(select(Submission).where(Submission.txid == rival.txid()))
        assert theirs is not None and theirs.payout is not None
    books(rt, bounty_id)
    assert withdraw_bounty(rt, bounty_id).status == "withdrawn"  # the owner withdraws again, from what is left
    settle(rt)
    books(rt, bounty_id)


def test_a_reorg_dropping_a_top_up_takes_it_out_of_the_budget(rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=3, budget=60_000)
    settle(rt)
    fund_bounty(rt, bounty_id, 25_000)
    settle(rt)
    with rt.session() as session:
        top_up = session.scalar(select(PoolMove).where(PoolMove.bounty_id == bounty_id, PoolMove.kind == "top_up"))
        assert top_up is not None and top_up.reserve_before is not None
        top_up_txid, reserve_before = top_up.txid, top_up.reserve_before
        contract = rt.pool(live_pool(session, bounty_id)[1])
    drop_for_another_move(rt, bounty_id, contract, reserve_before)
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(PoolMove.dropped).where(PoolMove.txid == top_up_txid)) is True
        assert session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id)) == 60_000
    books(rt, bounty_id)


# -- 3. the watcher replays everything -----------------------------------------------------------------------


def test_replaying_every_event_books_nothing_twice(rt: Runtime, sevens: np.ndarray, tmp_path: Path,
                                                   shipped: ModelArtifact) -> None:
    bounty_id = pool(rt, prizes=4, budget=300_000)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, bounty_id, image)["code"] == 202
    settle(rt)  # refilled
    contract, (prize,) = live_prizes(rt, bounty_id, 1)
    rt.chain.broadcast(build_claim(contract, prize, sevens[3], OUTSIDER.address(), rt.settings.fee_rate))
    fund_bounty(rt, bounty_id, 20_000)
    settle(rt)
    dropped = post(api, bounty_id, sevens[4])
    settle(rt)
    rival_prize = live_prizes(rt, bounty_id, 1)[1][0]
    mine = rt.chain.get_transaction(dropped["txid"])
    assert mine is not None and rt.local_chain is not None
    rival = build_claim(contract, Utxo(mine.inputs[0].source_txid, mine.inputs[0].source_output_index,
                                       contract.prize_satoshis, contract.lock()), sevens[5], OUTSIDER.address(),
                        rt.settings.fee_rate)
    rt.local_chain.rollback(1, replacement=[rival])
    settle(rt)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    redeploy(rt, bounty_id, model_id)
    assert post(api, bounty_id, sevens[6])["code"] == 202
    settle(rt)
    assert rival_prize.txid  # (a prize was live throughout)
    books(rt, bounty_id)
    before = counts(rt, bounty_id)
    rescan(rt)
    assert counts(rt, bounty_id) == before
    books(rt, bounty_id)


# -- 4. the service stops between a broadcast and its commit -------------------------------------------------


@pytest.mark.parametrize("kind", ["refill", "top_up", "withdraw", "redeploy"])
def test_an_owner_transaction_sent_but_never_booked_is_adopted_once_with_its_kind(
        rt: Runtime, sevens: np.ndarray, kind: str, tmp_path: Path, shipped: ModelArtifact) -> None:
    bounty_id = pool(rt, prizes=4, budget=200_000)
    assert post(client(rt), bounty_id, sevens[0])["code"] == 202
    settle(rt)
    model_id = register_variants(rt, shipped, tmp_path, 1)[0] if kind == "redeploy" else None
    with rt.session() as session:
        bounty, deployment = live_pool(session, bounty_id)
        contract, reserve, budget = rt.pool(deployment), reserve_utxo(rt, deployment), bounty.budget_sats
        prizes = [(contract, prize_utxo(rt, p)) for p in session.scalars(
            select(Prize).where(Prize.deployment_id == deployment.id, Prize.status == PrizeStatus.LIVE))]
        new_pool = rt.new_pool(session.get(ModelVersion, model_id), bounty) if model_id else None  # type: ignore[arg-type]
    assert reserve is not None
    build = rt.wallet.build_pool_move
    tx = {"refill": lambda: build(rt.chain, bounty_id, pool=contract, count=2, reserve=reserve),
          "top_up": lambda: build(rt.chain, bounty_id, reserve=reserve, add=7_000),
          "withdraw": lambda: build(rt.chain, bounty_id, prizes=prizes, reserve=reserve, withdraw=True),
          "redeploy": lambda: build(rt.chain, bounty_id, pool=new_pool, count=2, prizes=prizes, reserve=reserve),
          }[kind]()
    rt.chain.broadcast(tx)  # ... and the process stopped here
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    watcher = Watcher(rt, keep=False)  # a restarted watcher sees it again
    with rt.session() as session:
        session.execute(update(WatcherState).where(WatcherState.key == CURSOR_KEY).values(value=START))
    while watcher.run_once():
        pass
    with rt.session() as session:
        moves = list(session.scalars(select(PoolMove).where(PoolMove.txid == tx.txid())))
        assert [str(m.kind) for m in moves] == [kind]
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        assert bounty.budget_sats == budget + (7_000 if kind == "top_up" else 0)
        assert str(bounty.status) == ("withdrawn" if kind == "withdraw" else "active")
        if kind == "redeploy":
            assert live_pool(session, bounty_id)[1].model_id == model_id
    settle(rt)
    books(rt, bounty_id)


# -- 5. the API ----------------------------------------------------------------------------------------------


def test_every_prize_taken_is_a_409_with_a_sentence(rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=1)
    api = client(rt)
    assert post(api, bounty_id, sevens[0])["code"] == 202
    busy = post(api, bounty_id, sevens[1])
    assert busy["code"] == 409, busy
    assert "every live prize is being claimed" in str(busy), busy
    assert prizes_of(rt, bounty_id) == {"claimed": 1}
    settle(rt)
    books(rt, bounty_id)


def test_a_vetted_claim_rebuilt_by_a_relay_is_refused_by_the_chain(rt: Runtime, sevens: np.ndarray) -> None:
    """The attestor signs the whole claim (SIGHASH_ALL): a relay that changes the payee, the payout, the fee,
    adds an input of its own or moves the signature to another prize gets nothing past the chain."""
    bounty_id = pool(rt, prizes=3, mode=BountyMode.VETTED)
    contract, (prize, other) = live_prizes(rt, bounty_id, 2)
    honest = build_claim(contract, prize, sevens[0], STRANGER.address(), rt.settings.fee_rate,
                         attestor=rt.attestor.sign)
    unlocking = honest.inputs[0].unlocking_script
    payout = honest.outputs[0].satoshis

    def relayed(outputs: list[TransactionOutput], source: Utxo = prize, extra: Utxo | None = None) -> Transaction:
        copied = TransactionInput(source_txid=source.txid, source_output_index=source.vout,
                                  unlocking_script=unlocking)
        copied.satoshis, copied.locking_script = source.satoshis, source.locking_script
        inputs = [copied]
        if extra is not None:
            inputs.append(spend(extra, P2PKH().unlock(OUTSIDER)))
        tx = Transaction(inputs, outputs, version=TX_VERSION, locktime=honest.locktime)
        return tx.sign() if extra is not None else tx

    own = coin(rt, OUTSIDER, 5_000)
    tampered = [
        relayed([TransactionOutput(P2PKH().lock(OUTSIDER.address()), payout)]),  # another payee
        relayed([TransactionOutput(P2PKH().lock(STRANGER.address()), payout - 100),
                 TransactionOutput(P2PKH().lock(OUTSIDER.address()), 100)]),  # a cut for the relay
        relayed([TransactionOutput(P2PKH().lock(STRANGER.address()), payout + 10)]),  # a smaller fee
        relayed([TransactionOutput(P2PKH().lock(STRANGER.address()), payout)], source=other),  # another prize
        relayed([TransactionOutput(P2PKH().lock(STRANGER.address()), payout),
                 TransactionOutput(P2PKH().lock(OUTSIDER.address()), 4_000)], extra=own),  # an input of its own
    ]
    for tx in tampered:
        with pytest.raises(TransactionRejected, match="fails its script"):
            rt.chain.broadcast(tx)
    rt.chain.broadcast(honest)
    settle(rt)
    with rt.session() as session:
        row = session.scalar(select(Submission).where(Submission.txid == honest.txid()))
        assert row is not None and row.recipient_address == STRANGER.address()
    books(rt, bounty_id)


@pytest.mark.parametrize("kind", ["refill", "top_up", "withdraw", "redeploy"])
def test_the_watcher_books_an_owner_transaction_between_its_broadcast_and_the_services_commit(
        rt: Runtime, sevens: np.ndarray, kind: str, tmp_path: Path, shipped: ModelArtifact,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's watcher is fast: it sees an owner transaction and books it before the service that sent it
    commits. The service's call must still succeed, and the move is booked once, with the service's kind."""
    bounty_id = pool(rt, prizes=4, budget=200_000)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, bounty_id, image)["code"] == 202
    model_id = register_variants(rt, shipped, tmp_path, 1)[0] if kind == "redeploy" else None
    settle_watcher = Watcher(rt, keep=False)
    while settle_watcher.run_once():
        pass
    sent = rt.chain.broadcast

    def broadcast_then_watch(tx: Transaction | bytes) -> object:  # the chain answers after the watcher ran
        result = sent(tx)
        watcher = Watcher(rt, keep=False)
        while watcher.run_once():
            pass
        return result

    monkeypatch.setattr(rt.chain, "broadcast", broadcast_then_watch)
    if kind == "refill":
        assert keep_pools(rt) >= 1
    elif kind == "top_up":
        assert fund_bounty(rt, bounty_id, 9_000).budget_sats == 209_000
    elif kind == "withdraw":
        assert withdraw_bounty(rt, bounty_id).status == "withdrawn"
    else:
        assert model_id is not None and redeploy(rt, bounty_id, model_id).contract_version == 2
    monkeypatch.undo()
    with rt.session() as session:
        kinds = [str(m.kind) for m in session.scalars(select(PoolMove).where(PoolMove.bounty_id == bounty_id)
                                                       .order_by(PoolMove.id))]
    assert kinds == ["deploy", kind]
    settle(rt)
    books(rt, bounty_id)


@pytest.mark.parametrize("mode", [BountyMode.OPEN, BountyMode.VETTED])
def test_the_watcher_books_a_claim_between_its_broadcast_and_the_services_commit(
        rt: Runtime, sevens: np.ndarray, mode: BountyMode, monkeypatch: pytest.MonkeyPatch) -> None:
    bounty_id = pool(rt, prizes=3, mode=mode)
    sent = rt.chain.broadcast

    def broadcast_then_watch(tx: Transaction | bytes) -> object:
        result = sent(tx)
        watcher = Watcher(rt, keep=False)
        while watcher.run_once():
            pass
        return result

    monkeypatch.setattr(rt.chain, "broadcast", broadcast_then_watch)
    paid = [post(client(rt), bounty_id, image) for image in sevens[40:42]]
    monkeypatch.undo()
    assert [p["code"] for p in paid] == [202, 202], paid
    settle(rt)
    with rt.session() as session:
        for p in paid:
            rows = list(session.scalars(select(Submission).where(Submission.txid == p["txid"])))
            assert len(rows) == 1 and rows[0].id == p["id"] and rows[0].source == SubmissionSource.API
            assert rows[0].payout is not None and rows[0].status == SubmissionStatus.CONFIRMED
    books(rt, bounty_id)


def test_a_reorg_dropping_a_redeploy_for_an_outsiders_claim_of_a_reclaimed_prize(
        rt: Runtime, sevens: np.ndarray, tmp_path: Path, shipped: ModelArtifact) -> None:
    bounty_id = pool(rt, prizes=3)
    old_contract, (prize,) = live_prizes(rt, bounty_id, 1)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    moved = redeploy(rt, bounty_id, model_id)
    settle(rt)
    on_new = post(client(rt), bounty_id, sevens[0])  # a claim of a prize the redeploy created
    assert on_new["code"] == 202
    rival = build_claim(old_contract, prize, sevens[1], OUTSIDER.address(), rt.settings.fee_rate)
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[rival])
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(PoolMove.dropped).where(PoolMove.txid == moved.migrate_txid)) is True
        deployment = live_pool(session, bounty_id)[1]
        assert deployment.version == 1
        ours = session.get(Submission, on_new["id"])
        assert ours is not None and ours.status == SubmissionStatus.ORPHANED and ours.payout is None
        theirs = session.scalar(select(Submission).where(Submission.txid == rival.txid()))
        assert theirs is not None and theirs.payout is not None
    books(rt, bounty_id)
    assert post(client(rt), bounty_id, sevens[2])["code"] == 202  # the old prizes pay again
    settle(rt)
    books(rt, bounty_id)


def test_a_withdrawal_racing_concurrent_claims_ends_with_exact_books(rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=8, budget=300_000)
    api = client(rt)
    wallet_before = rt.wallet.balance(rt.chain)
    with ThreadPoolExecutor(max_workers=4) as threads:
        claims = [threads.submit(post, api, bounty_id, image) for image in sevens[:6]]
        withdrawn = threads.submit(withdraw_bounty, rt, bounty_id).result()
        codes = [c.result()["code"] for c in claims]
    assert set(codes) <= {202, 409} and withdrawn.status == "withdrawn", codes
    assert rt.wallet.balance(rt.chain) == wallet_before + withdrawn.withdrawn_sats
    settle(rt)
    books(rt, bounty_id)
    with rt.session() as session:
        paid = list(session.scalars(select(Payout.txid).where(Payout.bounty_id == bounty_id)))
    assert len(paid) == len(set(paid)) == codes.count(202)


def test_prizes_taken_by_claimants_that_died_are_freed_by_the_keeper(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    bounty_id = pool(rt, prizes=2)
    with rt.session() as session:  # two claimants took a prize each and stopped before the broadcast
        assert take_prize(session, bounty_id) is not None and take_prize(session, bounty_id) is not None
    busy = post(client(rt), bounty_id, sevens[0])
    assert busy["code"] == 409 and "every live prize is being claimed" in str(busy)
    monkeypatch.setattr(rt.settings, "pool_take_timeout", 0.01)
    time.sleep(0.05)
    keep_pools(rt)
    assert prizes_of(rt, bounty_id) == {"live": 2}
    assert post(client(rt), bounty_id, sevens[0])["code"] == 202
    settle(rt)
    books(rt, bounty_id)


def test_malformed_and_late_submissions_to_a_pool_are_sentences_not_errors(rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=2)
    api = client(rt)
    image = sevens[0].astype(int)
    answers = [
        api.post(f"/bounties/{bounty_id}/submissions", json={"pixels": [*image.tolist()[:-1], 256],
                                                             "address": OUTSIDER.address()}),
        api.post(f"/bounties/{bounty_id}/submissions", json={"pixels": image.tolist()[:783],
                                                             "address": OUTSIDER.address()}),
        api.post(f"/bounties/{bounty_id}/submissions", json={"pixels": image.tolist(), "address": "1nope"}),
        api.post(f"/bounties/{bounty_id}/submissions", json={"pixels": image.tolist(), "address": OUTSIDER.address(),
                                                             "appeal": True}),  # an open pool has no appeal
        api.post(f"/bounties/{bounty_id + 99}/submissions", json={"pixels": image.tolist(),
                                                                  "address": OUTSIDER.address()}),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json().get("detail") or answer.json().get("error"), answer.text
    withdraw_bounty(rt, bounty_id)
    late = post(api, bounty_id, sevens[1])
    assert late["code"] == 409, late
    settle(rt)
    books(rt, bounty_id)
    assert prizes_of(rt, bounty_id) == {"reclaimed": 2}


@pytest.mark.parametrize("then", ["block", "withdraw"])
def test_claims_queued_by_the_mempool_chain_limit_are_sent_once_or_closed(
        rt: Runtime, sevens: np.ndarray, then: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the chain's limit of unconfirmed ancestors at 0, a claim of a prize from an unmined transaction is
    queued (202, pending); after the next block it is sent once, on whichever prize is free. If the owner
    withdraws first, the queued claim is closed with a reason and nothing is paid."""
    bounty_id = pool(rt, prizes=3)
    api = client(rt)
    assert rt.local_chain is not None
    monkeypatch.setattr(rt.local_chain, "max_unconfirmed_ancestors", 0)
    queued = [post(api, bounty_id, image) for image in sevens[:2]]
    assert [q["code"] for q in queued] == [202, 202], queued
    assert all(q["status"] == "pending" and q["txid"] is None for q in queued), queued
    assert prizes_of(rt, bounty_id) == {"live": 3}
    monkeypatch.undo()
    if then == "withdraw":
        withdraw_bounty(rt, bounty_id)
    rt.local_chain.mine(1)
    sent = send_queued(rt)
    assert sent == (2 if then == "block" else 0)
    assert send_queued(rt) == 0  # nothing sent twice
    settle(rt)
    with rt.session() as session:
        rows = [session.get(Submission, q["id"]) for q in queued]
        if then == "block":
            assert all(r is not None and r.txid and r.payout is not None for r in rows)
            assert len({r.txid for r in rows if r is not None}) == 2
        else:
            assert all(r is not None and r.status == SubmissionStatus.REJECTED and r.payout is None for r in rows)
    books(rt, bounty_id)


def test_a_queued_claim_that_meets_a_chain_outage_waits_for_the_next_block_again(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain's connection breaks while a queued claim is sent (a fault at the chain boundary): the claim is
    queued again, not left `paying`, and goes out once the chain answers."""
    bounty_id = pool(rt, prizes=3)
    queued = queue_until_a_block(rt, client(rt), bounty_id, sevens[0])

    def unreachable(tx: object) -> None:
        raise ConnectionError("the chain's connection was reset")

    monkeypatch.setattr(rt.local_chain, "broadcast", unreachable)
    with pytest.raises(ConnectionError):
        send_queued(rt)
    with rt.session() as session:
        row = session.get(Submission, queued["id"])
        assert row is not None and row.status == SubmissionStatus.PENDING and row.txid is None
    monkeypatch.undo()
    assert prizes_of(rt, bounty_id) == {"live": 3}  # the prize it had taken was given back
    assert send_queued(rt) == 1
    settle(rt)
    books(rt, bounty_id)


def test_one_transaction_claiming_prizes_of_two_pools(rt: Runtime, sevens: np.ndarray) -> None:
    first_id, second_id = pool(rt, prizes=2), pool(rt, prizes=2)
    (a, (prize_a,)), (b, (prize_b,)) = live_prizes(rt, first_id, 1), live_prizes(rt, second_id, 1)
    tx = Transaction([spend(prize_b, b.claim_unlock(sevens[0])), spend(prize_a, a.claim_unlock(sevens[1]))],
                     [TransactionOutput(P2PKH().lock(OUTSIDER.address()), 0)], version=TX_VERSION)
    tx.outputs[0].satoshis = prize_a.satoshis + prize_b.satoshis - fee(tx, rt.settings.fee_rate) - 3
    rt.chain.broadcast(tx.sign())
    settle(rt)
    with rt.session() as session:
        rows = list(session.scalars(select(Submission).where(Submission.txid == tx.txid())
                                    .order_by(Submission.input_index)))
        assert [(r.bounty_id, r.input_index) for r in rows] == [(second_id, 0), (first_id, 1)]
    books(rt, first_id)
    books(rt, second_id)


def test_replaying_a_history_of_dropped_moves_books_nothing_twice(
        rt: Runtime, sevens: np.ndarray, tmp_path: Path, shipped: ModelArtifact) -> None:
    """A refill and a claim of its prize dropped by one reorg, a redeploy dropped by another, then the watcher
    reads the whole chain's history again from the start."""
    bounty_id = pool(rt, prizes=4, budget=300_000)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, bounty_id, image)["code"] == 202
    settle(rt)
    with rt.session() as session:
        refill = session.scalar(select(PoolMove).where(PoolMove.bounty_id == bounty_id, PoolMove.kind == "refill"))
        assert refill is not None and refill.reserve_before is not None
        reserve_before = refill.reserve_before
        contract = rt.pool(live_pool(session, bounty_id)[1])
    for image in sevens[3:6]:
        assert post(api, bounty_id, image)["code"] == 202
    drop_for_another_move(rt, bounty_id, contract, reserve_before)
    settle(rt)
    books(rt, bounty_id)
    old_contract, (prize,) = live_prizes(rt, bounty_id, 1)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    redeploy(rt, bounty_id, model_id)
    settle(rt)
    rt.local_chain.rollback(1, replacement=[build_claim(old_contract, prize, sevens[7], OUTSIDER.address(),
                                                        rt.settings.fee_rate)])
    settle(rt)
    books(rt, bounty_id)
    before = counts(rt, bounty_id)
    rescan(rt)
    assert counts(rt, bounty_id) == before
    books(rt, bounty_id)


def test_a_reorg_dropping_the_deploy_itself(rt: Runtime, sevens: np.ndarray) -> None:
    """The competing chain spends the wallet coin that funded a pool's deploy elsewhere: the pool never existed,
    its prizes and reserve are gone, a claim of a prize from it was never paid, and the books say so."""
    assert rt.local_chain is not None
    rt.wallet.fund_from_faucet(rt.local_chain, 10_000_000)
    payment = rt.wallet.build_payment(rt.chain, OUTSIDER.address(), 1_000, rt.settings.fee_rate)  # held back
    bounty_id = pool(rt, prizes=3)
    with rt.session() as session:
        deploy_txid = session.scalar(select(PoolMove.txid).where(PoolMove.bounty_id == bounty_id))
    deploy = rt.chain.get_transaction(str(deploy_txid))
    assert deploy is not None
    assert {(i.source_txid, i.source_output_index) for i in deploy.inputs} & \
        {(i.source_txid, i.source_output_index) for i in payment.inputs}  # the same coin
    settle(rt)
    paid = post(client(rt), bounty_id, sevens[0])
    assert paid["code"] == 202
    rt.local_chain.rollback(1, replacement=[payment])
    settle(rt)
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None and str(bounty.status) == "withdrawn"
        row = session.get(Submission, paid["id"])
        assert row is not None and row.status == SubmissionStatus.ORPHANED and row.payout is None
    assert prizes_of(rt, bounty_id) == {"dropped": 3}
    assert post(client(rt), bounty_id, sevens[1])["code"] == 409
    books(rt, bounty_id)


@pytest.mark.parametrize("kind", ["top_up", "withdraw", "redeploy"])
def test_the_keeper_refills_just_before_an_owner_transaction_is_sent(
        rt: Runtime, sevens: np.ndarray, kind: str, tmp_path: Path, shipped: ModelArtifact,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper (in the watcher's process) spends the reserve into a refill while the operator's top-up,
    withdrawal or redeploy is being built from the same reserve: the operator's call still succeeds (rebuilt
    on the new reserve) or fails with a sentence, and the books stay exact."""
    bounty_id = pool(rt, prizes=4, budget=200_000)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, bounty_id, image)["code"] == 202
    model_id = register_variants(rt, shipped, tmp_path, 1)[0] if kind == "redeploy" else None
    sent, refills, started = rt.chain.broadcast, [], []

    def keeper_first(tx: Transaction | bytes) -> object:
        if not started:
            started.append(True)  # the keeper's own broadcast passes straight through
            refills.append(keep_pools(rt))
        return sent(tx)

    monkeypatch.setattr(rt.chain, "broadcast", keeper_first)
    if kind == "top_up":
        assert fund_bounty(rt, bounty_id, 9_000).budget_sats == 209_000
    elif kind == "withdraw":
        assert withdraw_bounty(rt, bounty_id).status == "withdrawn"
    else:
        assert model_id is not None and redeploy(rt, bounty_id, model_id).contract_version == 2
    monkeypatch.undo()
    assert refills and refills[0] >= 1
    settle(rt)
    books(rt, bounty_id)


def take_one(rt: Runtime, bounty_id: int) -> tuple[PoolContract, Utxo, int]:
    """A claimant takes a prize (committed) and has not sent its claim yet: the pool, the prize's output, its id."""
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        prize = take_prize(session, bounty_id)
        assert prize is not None
        return rt.pool(deployment), prize_utxo(rt, prize), prize.id


def test_a_claim_sent_but_never_booked_is_booked_once_by_the_watcher(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API took a prize and broadcast its claim, then its process stopped before the commit: the watcher
    books the claim once (as seen on chain), the prize is claimed, and the keeper never frees it."""
    bounty_id = pool(rt, prizes=3)
    contract, utxo, prize_id = take_one(rt, bounty_id)
    tx = build_claim(contract, utxo, sevens[0], OUTSIDER.address(), rt.settings.fee_rate)
    rt.chain.broadcast(tx)
    monkeypatch.setattr(rt.settings, "pool_take_timeout", 0.01)
    time.sleep(0.05)
    settle(rt)
    settle(rt)
    with rt.session() as session:
        rows = list(session.scalars(select(Submission).where(Submission.txid == tx.txid())))
        assert len(rows) == 1 and rows[0].payout is not None and rows[0].status == SubmissionStatus.CONFIRMED
        taken = session.get(Prize, prize_id)
        assert taken is not None and taken.status == PrizeStatus.CLAIMED and taken.spent_txid == tx.txid()
    books(rt, bounty_id)


# -- 6. the pool's arithmetic, its view and the keeper's thresholds, to the satoshi and the prize ----------------


def test_a_prize_costs_its_outputs_fee_and_a_reserve_buys_whole_prizes_only(rt: Runtime) -> None:
    bounty_id = pool(rt, prizes=2)
    contract, _ = live_prizes(rt, bounty_id, 0)
    rate = rt.settings.fee_rate
    output = TransactionOutput(contract.lock(), contract.prize_satoshis).serialize()
    assert 253 <= len(output) < 65_536  # its script's length takes 3 bytes
    # the prize output's own bytes (value, script length, script) at the rate, rounded up once more
    assert prize_creation_fee(contract, rate) == fee_for(len(output), rate) + 1
    assert prize_creation_fee(contract, 1_000) == len(output) + 1  # at 1 sat a byte, each byte counted
    unit = contract.prize_satoshis + prize_creation_fee(contract, rate)
    move = fee_for(MOVE_OVERHEAD_BYTES, rate)  # what a refill costs beyond its prizes
    assert [prizes_affordable(contract, move + n * unit, rate) for n in range(4)] == [0, 1, 2, 3]
    assert [prizes_affordable(contract, move + n * unit - 1, rate) for n in range(1, 4)] == [0, 1, 2]
    assert prizes_affordable(contract, move - 1, rate) == 0  # not even the move's fee: none, not -1
    assert images_left(2, move + 3 * unit, contract, rate) == 5
    assert images_left(2, move + unit - 1, contract, rate) == 2


def test_a_budget_of_exactly_the_minimum_it_names_creates_one_prize(rt: Runtime, sevens: np.ndarray) -> None:
    """The refusal of a budget too small for one prize names the least budget; that budget creates one prize
    (and nothing is left for a reserve), a satoshi less is refused the same way. Once that prize is claimed the
    pool refuses the next image before judging it: a 409 saying it is exhausted."""
    with pytest.raises(InvalidRequest, match="cannot create one prize") as refused:
        pool(rt, prizes=3, budget=3_000)
    least = int(str(refused.value).rsplit("at least ", 1)[1].split(" sats")[0].replace(",", ""))
    with pytest.raises(InvalidRequest, match=f"must be at least {least:,} sats"):
        pool(rt, prizes=3, budget=least - 1)
    created = get_bounty(rt, pool(rt, prizes=3, budget=least))
    assert (created.live_prizes, created.reserve_sats, created.contract_version) == (1, 0, 1)
    assert created.fees_spent_sats == least - PAYOUT - created.max_fee_sats  # the deploy took the rest as fee
    api = client(rt)
    assert post(api, created.id, sevens[0])["code"] == 202
    refused = post(api, created.id, sevens[1])
    assert refused["code"] == 409 and "has no live prize" in refused["detail"], refused
    books(rt, created.id)


def _take(rt: Runtime, bounty_id: int, n: int) -> None:
    """`n` claimants take a prize each and have not sent their claims yet."""
    for _ in range(n):
        with rt.session() as session:
            assert take_prize(session, bounty_id) is not None


def test_the_keeper_refills_up_to_its_target_only_once_free_prizes_fall_to_half_of_it(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no claim in the last minute the target is the settings' minimum (at most K). Prizes handed out a
    moment ago are neither free nor stale: the keeper leaves them taken."""
    bounty_id = pool(rt, prizes=8, budget=200_000)
    monkeypatch.setattr(rt.settings, "pool_min_prizes", 8)
    _take(rt, bounty_id, 4)
    assert keep_pools(rt) == 4  # 4 free of a target of 8: half, so it tops up to 8
    assert prizes_of(rt, bounty_id) == {"live": 8, "taken": 4}
    assert keep_pools(rt) == 0
    monkeypatch.setattr(rt.settings, "pool_min_prizes", 4)
    _take(rt, bounty_id, 5)
    assert keep_pools(rt) == 0  # 3 free of a target of 4: more than half
    _take(rt, bounty_id, 1)
    assert keep_pools(rt) == 2  # 2 of 4: half
    monkeypatch.setattr(rt.settings, "pool_min_prizes", 2)
    _take(rt, bounty_id, 3)
    assert keep_pools(rt) == 1  # 1 of 2: one prize, its own refill
    assert prizes_of(rt, bounty_id) == {"live": 2, "taken": 13}
    monkeypatch.setattr(rt.settings, "pool_min_prizes", 20)  # more than K: the target is K
    _take(rt, bounty_id, 2)
    assert keep_pools(rt) == 8
    books(rt, bounty_id)


def test_a_pools_view_counts_each_images_creation_fee_and_what_the_reserve_still_buys(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=3, budget=30_000)
    api = client(rt)
    for image in sevens[:2]:
        assert post(api, bounty_id, image)["code"] == 202
    assert keep_pools(rt) == 1  # two claims in the last minute: two live
    rate = rt.settings.fee_rate
    with rt.session() as session:
        bounty, deployment = live_pool(session, bounty_id)
        contract, totals = rt.pool(deployment), pool_totals(session, bounty)
        assert can_pay_more(rt, session, bounty, deployment)
    view = api.get(f"/bounties/{bounty_id}").json()
    per_image = view["max_fee_sats"] + prize_creation_fee(contract, rate)
    assert (view["fee_sats_per_image"], view["cost_sats_per_image"]) == (per_image, PAYOUT + per_image)
    buys = prizes_affordable(contract, totals.reserve, rate)
    assert buys >= 1 and view["images_left"] == 2 + buys
    assert (view["live_prizes"], view["reserve_sats"], view["owner_transactions"]) == (2, totals.reserve, 2)
    assert totals.claim_fees > 0 and totals.owner_fees > 0
    assert view["fees_spent_sats"] == totals.claim_fees + totals.owner_fees
    assert view["remaining_sats"] == totals.reserve + totals.live_value
    withdrawn = api.get(f"/bounties/{withdraw_bounty(rt, bounty_id).id}").json()
    assert (withdrawn["images_left"], withdrawn["live_prizes"], withdrawn["reserve_sats"]) == (0, 0, 0)
    assert withdrawn["owner_transactions"] == 3 and withdrawn["fee_sats_per_image"] == per_image
    settle(rt)
    books(rt, bounty_id)


def test_a_claim_is_refused_once_no_prize_is_on_chain_and_the_reserve_buys_none(
        rt: Runtime, sevens: np.ndarray) -> None:
    """`can_pay_more` is the view's `images_left >= 1` without summing the books: a prize still on chain (even
    one being claimed) or a reserve that creates one."""
    bounty_id = pool(rt, prizes=2, budget=12_000)  # two prizes and a reserve that buys one more
    pool(rt, prizes=2)  # another pool's prizes pay nothing of this one
    api = client(rt)

    def payable() -> bool:
        with rt.session() as session:
            bounty, deployment = live_pool(session, bounty_id)
            return can_pay_more(rt, session, bounty, deployment)

    assert payable() and get_bounty(rt, bounty_id).images_left == 3
    assert post(api, bounty_id, sevens[0])["code"] == 202 and post(api, bounty_id, sevens[1])["code"] == 202
    assert payable() and get_bounty(rt, bounty_id).images_left == 1  # no prize, a reserve worth one
    assert keep_pools(rt) == 1
    _take(rt, bounty_id, 1)
    assert payable() and get_bounty(rt, bounty_id).images_left == 1  # taken, not spent: still the pool's
    with rt.session() as session:
        prize_id = session.scalar(select(Prize.id).where(Prize.bounty_id == bounty_id,
                                                         Prize.status == PrizeStatus.TAKEN))
    assert prize_id is not None
    release_prize(rt, prize_id)
    assert prizes_of(rt, bounty_id) == {"claimed": 2, "live": 1}
    assert keep_pools(rt) == 0  # a prize is due (1 free of 2) but the reserve buys none
    assert post(api, bounty_id, sevens[2])["code"] == 202
    assert not payable() and get_bounty(rt, bounty_id).images_left == 0
    refused = post(api, bounty_id, sevens[3])
    assert refused["code"] == 409, refused
    settle(rt)
    books(rt, bounty_id)


def test_a_redeploy_short_of_funds_creates_the_prizes_they_buy_and_keeps_the_rest_in_reserve(
        rt: Runtime, tmp_path: Path, shipped: ModelArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old prizes hold no creation fee: moved to a new model they buy fewer prizes than before. The redeploy
    creates as many as the prizes and the reserve together buy, up to the target."""
    probe = live_prizes(rt, pool(rt, prizes=4, budget=40_000), 0)[0]
    unit = probe.prize_satoshis + prize_creation_fee(probe, rt.settings.fee_rate)
    bounty_id = pool(rt, prizes=4, budget=4 * unit + 6_000)  # four prizes and a reserve short of two more
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    monkeypatch.setattr(rt.settings, "pool_min_prizes", 4)
    with rt.session() as session:
        bounty, _ = live_pool(session, bounty_id)
        before = pool_totals(session, bounty)
    assert before.live_prizes == 4 and 0 < before.reserve < 2 * unit
    moved = redeploy(rt, bounty_id, model_id)
    contract = live_prizes(rt, bounty_id, 0)[0]
    buys = prizes_affordable(contract, before.live_value + before.reserve, rt.settings.fee_rate)
    assert 1 <= buys < 4 and prizes_affordable(contract, before.live_value, rt.settings.fee_rate) < buys
    assert (moved.contract_version, moved.live_prizes) == (2, buys)
    tx = rt.chain.get_transaction(moved.migrate_txid)
    assert tx is not None
    assert moved.reserve_sats == before.live_value + before.reserve - buys * contract.prize_satoshis - \
        fee_paid(rt.chain, tx)
    settle(rt)
    books(rt, bounty_id)


def test_a_withdrawal_that_lost_a_prize_to_a_direct_claim_returns_every_other_prize_and_the_reserve(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=3)
    contract, (prize,) = live_prizes(rt, bounty_id, 1)
    with rt.session() as session:
        reserve = live_pool(session, bounty_id)[1].current_satoshis
    rt.chain.broadcast(build_claim(contract, prize, sevens[0], OUTSIDER.address(), rt.settings.fee_rate))
    wallet_before = rt.wallet.balance(rt.chain)
    withdrawn = withdraw_bounty(rt, bounty_id)
    assert prizes_of(rt, bounty_id) == {"taken": 1, "reclaimed": 2}  # the one the claim won is nobody's to hand out
    tx = rt.chain.get_transaction(withdrawn.withdraw_txid)
    assert tx is not None
    assert withdrawn.withdrawn_sats == 2 * contract.prize_satoshis + reserve - fee_paid(rt.chain, tx)
    assert rt.wallet.balance(rt.chain) == wallet_before + withdrawn.withdrawn_sats
    settle(rt)
    assert prizes_of(rt, bounty_id) == {"claimed": 1, "reclaimed": 2}
    books(rt, bounty_id)


def test_an_owner_move_takes_prizes_alone_or_a_reserve_alone_and_refuses_a_pool_holding_neither(
        rt: Runtime, sevens: np.ndarray) -> None:
    with pytest.raises(InvalidRequest) as refused:
        pool(rt, prizes=2, budget=3_000)
    least = int(str(refused.value).rsplit("at least ", 1)[1].split(" sats")[0].replace(",", ""))
    prizes_only = pool(rt, prizes=2, budget=least)  # one prize, no reserve
    assert withdraw_bounty(rt, prizes_only).withdrawn_sats > 0
    reserve_only = pool(rt, prizes=1, budget=least + 5_000)
    assert post(client(rt), reserve_only, sevens[0])["code"] == 202
    assert prizes_of(rt, reserve_only) == {"claimed": 1}
    assert withdraw_bounty(rt, reserve_only).withdrawn_sats > 4_000
    empty = pool(rt, prizes=2, budget=least)
    assert post(client(rt), empty, sevens[1])["code"] == 202
    with pytest.raises(BountyClosed, match="holds nothing to move: no live prize and no reserve"):
        withdraw_bounty(rt, empty)
    settle(rt)
    for bounty_id in (prizes_only, reserve_only, empty):
        books(rt, bounty_id)


def test_giving_a_prize_back_frees_that_prize_only_and_never_one_its_claim_already_won(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty_id = pool(rt, prizes=3)
    _take(rt, bounty_id, 2)
    with rt.session() as session:
        first, second = session.scalars(select(Prize).where(Prize.bounty_id == bounty_id,
                                                            Prize.status == PrizeStatus.TAKEN).order_by(Prize.id))
        contract, won = rt.pool(live_pool(session, bounty_id)[1]), prize_utxo(rt, second)
        first_id, second_id = first.id, second.id

    def prize(prize_id: int) -> tuple[str, bool]:
        with rt.session() as session:
            row = session.get(Prize, prize_id)
            assert row is not None
            return str(row.status), row.taken_at is None

    release_prize(rt, first_id)
    assert (prize(first_id), prize(second_id)) == (("live", True), ("taken", False))
    # the second claimant's claim reached the chain and was booked before it gave its prize back: still won
    rt.chain.broadcast(build_claim(contract, won, sevens[0], OUTSIDER.address(), rt.settings.fee_rate))
    settle(rt)
    release_prize(rt, second_id)
    assert prize(second_id)[0] == "claimed"
    books(rt, bounty_id)


def test_the_keepers_loop_refills_again_each_time_claims_empty_the_pool_and_stops_when_told(rt: Runtime) -> None:
    bounty_id = pool(rt, prizes=4, budget=60_000)
    stop = threading.Event()
    keeper = threading.Thread(target=keep_forever, args=(rt, stop))

    def refilled() -> bool:  # within a few seconds (the loop looks every KEEP_INTERVAL = 0.2 s)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if prizes_of(rt, bounty_id).get("live") == 2:
                return True
            time.sleep(0.05)
        return False

    _take(rt, bounty_id, 3)  # one free of a target of two
    keeper.start()
    try:
        assert refilled()
        _take(rt, bounty_id, 1)
        assert refilled()  # a second look, not only the first
    finally:
        stop.set()
        keeper.join(timeout=10)
    assert not keeper.is_alive()
    assert prizes_of(rt, bounty_id) == {"live": 2, "taken": 4}
    books(rt, bounty_id)


def test_every_owner_transaction_of_a_pool_pays_the_fee_rate_in_force(
        request: pytest.FixtureRequest, tmp_path: Path, sevens: np.ndarray, shipped: ModelArtifact) -> None:
    """At a rate other than the wallet's default: the deploy, a refill, a top-up, a redeploy and the withdrawal
    each pay what their size costs at that rate (tests/support/pool_books.py checks each to the satoshi)."""
    rt = runtime_on("sqlite", request, tmp_path, fee_rate=250, novelty_index_mnist_test=False,
                    quota_per_payee_per_hour=0, quota_per_client_per_hour=0)
    try:
        bounty_id = pool(rt, prizes=3, budget=80_000)
        for image in sevens[:2]:
            assert post(client(rt), bounty_id, image)["code"] == 202
        assert keep_pools(rt) == 1
        fund_bounty(rt, bounty_id, 10_000)
        (model_id,) = register_variants(rt, shipped, tmp_path, 1)
        redeploy(rt, bounty_id, model_id)
        withdraw_bounty(rt, bounty_id)
        with rt.session() as session:
            kinds = [str(k) for k in session.scalars(select(PoolMove.kind).where(PoolMove.bounty_id == bounty_id)
                                                     .order_by(PoolMove.id))]
        assert kinds == ["deploy", "refill", "top_up", "redeploy", "withdraw"]
        books(rt, bounty_id)
    finally:
        rt.close()


def test_withdrawing_one_pool_leaves_another_pools_prizes_and_reserve_alone(rt: Runtime) -> None:
    first, second = pool(rt, prizes=2), pool(rt, prizes=2)
    before = counts(rt, second)
    assert withdraw_bounty(rt, first).status == "withdrawn"
    assert counts(rt, second) == before and prizes_of(rt, second) == {"live": 2}
    assert prizes_of(rt, first) == {"reclaimed": 2}
    settle(rt)
    books(rt, first)
    books(rt, second)


def test_a_redeploy_of_a_prize_with_no_reserve_moves_it_into_the_new_reserve(
        rt: Runtime, tmp_path: Path, shipped: ModelArtifact) -> None:
    with pytest.raises(InvalidRequest) as refused:
        pool(rt, prizes=2, budget=3_000)
    least = int(str(refused.value).rsplit("at least ", 1)[1].split(" sats")[0].replace(",", ""))
    bounty_id = pool(rt, prizes=2, budget=least)  # one prize, no reserve
    _, (prize,) = live_prizes(rt, bounty_id, 1)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    moved = redeploy(rt, bounty_id, model_id)  # a prize's value buys no new prize (its creation fee is spent)
    tx = rt.chain.get_transaction(moved.migrate_txid)
    assert tx is not None
    assert (moved.contract_version, moved.live_prizes) == (2, 0)
    assert moved.reserve_sats == prize.satoshis - fee_paid(rt.chain, tx)
    settle(rt)
    books(rt, bounty_id)


def test_a_withdrawal_that_loses_two_races_in_a_row_leaves_both_won_prizes_out(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """One outsider's claim is on chain before the withdrawal is built; another's reaches the chain just before
    the rebuilt withdrawal does. The third attempt leaves out both prizes, not only the last one lost."""
    bounty_id = pool(rt, prizes=4)
    contract, (first, second) = live_prizes(rt, bounty_id, 2)
    rt.chain.broadcast(build_claim(contract, first, sevens[0], OUTSIDER.address(), rt.settings.fee_rate))
    rival = build_claim(contract, second, sevens[1], STRANGER.address(), rt.settings.fee_rate)
    sent, attempts = rt.chain.broadcast, []

    def rival_first_on_the_second_attempt(tx: Transaction | bytes) -> object:
        attempts.append(tx)
        if len(attempts) == 2:
            sent(rival)
        return sent(tx)

    monkeypatch.setattr(rt.chain, "broadcast", rival_first_on_the_second_attempt)
    withdrawn = withdraw_bounty(rt, bounty_id)
    monkeypatch.undo()
    assert len(attempts) == 3 and withdrawn.status == "withdrawn"
    assert prizes_of(rt, bounty_id) == {"taken": 2, "reclaimed": 2}
    settle(rt)
    assert prizes_of(rt, bounty_id) == {"claimed": 2, "reclaimed": 2}
    books(rt, bounty_id)


def test_only_this_pools_claims_sent_in_the_last_minute_raise_its_target(
        rt: Runtime, sevens: np.ndarray, shipped: ModelArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target counts the claims of the last minute that were sent: not another pool's, not older ones, not
    claims still queued (no transaction yet), not refused submissions."""
    busy, quiet = pool(rt, prizes=4), pool(rt, prizes=6)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, busy, image)["code"] == 202
    for image in sevens[3:6]:
        assert post(api, quiet, image)["code"] == 202
    with rt.session() as session:  # the quiet pool's claims were sent two minutes ago
        session.execute(update(Submission).where(Submission.bounty_id == quiet)
                        .values(created_at=datetime.now(UTC) - timedelta(minutes=2)))
    read = reading_of_test_set(shipped.integer)
    for image in read.x[read.labels != 7][:3]:
        assert post(api, quiet, image)["code"] == 422  # refused now: no claim sent
    assert rt.local_chain is not None
    monkeypatch.setattr(rt.local_chain, "max_unconfirmed_ancestors", 0)
    for image in sevens[6:9]:
        queued = post(api, quiet, image)  # its prize comes from an unmined deploy: queued, not sent
        assert queued["code"] == 202 and queued["txid"] is None, queued
    monkeypatch.undo()
    _take(rt, quiet, 2)  # one free prize left
    assert keep_pools(rt) == 2 + 1  # the busy pool to its 3 claims, the quiet one to the minimum of 2
    assert prizes_of(rt, busy) == {"claimed": 3, "live": 3}
    assert prizes_of(rt, quiet) == {"claimed": 3, "live": 2, "taken": 2}
    settle(rt)
    books(rt, busy)
    books(rt, quiet)


def test_a_taken_prize_of_a_refill_a_reorg_dropped_stays_dropped_once_its_take_is_stale(
        rt: Runtime, sevens: np.ndarray) -> None:
    """A claimant took a prize of a refill and stopped; a reorg then dropped the refill. When the take goes stale
    the keeper frees the taken prizes still on chain, never one whose output no longer exists."""
    bounty_id = pool(rt, prizes=4, budget=300_000)
    api = client(rt)
    for image in sevens[:3]:
        assert post(api, bounty_id, image)["code"] == 202
    settle(rt)  # refilled, and the refill mined
    with rt.session() as session:
        refill = session.scalar(select(PoolMove).where(PoolMove.bounty_id == bounty_id, PoolMove.kind == "refill"))
        assert refill is not None and refill.reserve_before is not None
        refill_txid, reserve_before = refill.txid, refill.reserve_before
        contract = rt.pool(live_pool(session, bounty_id)[1])
    _take(rt, bounty_id, prizes_of(rt, bounty_id)["live"])  # every free prize, the refill's among them
    drop_for_another_move(rt, bounty_id, contract, reserve_before)
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    with rt.session() as session:  # the takes are older than the timeout
        session.execute(update(Prize).where(Prize.bounty_id == bounty_id, Prize.taken_at.is_not(None))
                        .values(taken_at=datetime.now(UTC) - timedelta(hours=1)))
        refill_prizes = select(Prize.status).where(Prize.txid == refill_txid)
        assert set(session.scalars(refill_prizes)) == {PrizeStatus.DROPPED}
    keep_pools(rt)
    with rt.session() as session:
        assert set(session.scalars(refill_prizes)) == {PrizeStatus.DROPPED}
    settle(rt)
    books(rt, bounty_id)


def test_a_stale_take_whose_claim_reached_the_chain_is_not_freed(rt: Runtime, sevens: np.ndarray) -> None:
    """The claimant broadcast its claim and stopped before booking it: however old the take, the keeper leaves
    the prize taken (its output is spent) until the watcher books the claim."""
    bounty_id = pool(rt, prizes=3)
    contract, utxo, prize_id = take_one(rt, bounty_id)
    rt.chain.broadcast(build_claim(contract, utxo, sevens[0], OUTSIDER.address(), rt.settings.fee_rate))
    with rt.session() as session:
        session.execute(update(Prize).where(Prize.id == prize_id)
                        .values(taken_at=datetime.now(UTC) - timedelta(hours=1)))
    keep_pools(rt)
    assert prizes_of(rt, bounty_id) == {"live": 2, "taken": 1}
    settle(rt)
    assert prizes_of(rt, bounty_id) == {"live": 2, "claimed": 1}
    books(rt, bounty_id)


def test_a_take_that_starts_while_another_is_uncommitted_gets_another_prize(rt: Runtime) -> None:
    """Two claimants take at once: the second reads the prize the first took but has not committed. Each must
    get its own prize (SQLite: the first's conditional update holds the write lock and the second's finds the
    row taken; PostgreSQL: the second skips the locked row)."""
    bounty_id = pool(rt, prizes=3)
    second: list[int | None] = []

    def take_in_own_session() -> None:
        with rt.session() as session:
            prize = take_prize(session, bounty_id)
            second.append(prize.id if prize is not None else None)

    with rt.session() as session:
        first = take_prize(session, bounty_id)
        assert first is not None
        rival = threading.Thread(target=take_in_own_session)
        rival.start()
        rival.join(timeout=0.5)  # the rival reads now, while the first take is not committed
        first_id = first.id
    rival.join(timeout=30)
    assert not rival.is_alive() and second and second[0] is not None and second[0] != first_id


def test_a_claim_whose_process_died_between_its_row_and_its_payout_is_paid_by_the_watcher(
        rt: Runtime, sevens: np.ndarray) -> None:
    """The API committed its claim's row (on SQLite the savepoint's release commits it at once) and stopped
    before its payout and the prize's update: the watcher books exactly that claim's payout, to the satoshi of
    the transaction, though another claim of the pool has its payout already."""
    bounty_id = pool(rt, prizes=4)
    api = client(rt)
    first, second = post(api, bounty_id, sevens[0]), post(api, bounty_id, sevens[1])
    assert first["code"] == second["code"] == 202
    with rt.session() as session:  # what the crash left: the row, no payout, the prize still taken
        row = session.get(Submission, second["id"])
        assert row is not None and row.status == SubmissionStatus.BROADCAST and row.payout is not None
        session.delete(row.payout)
        session.execute(update(Prize).where(Prize.spent_txid == second["txid"])
                        .values(status=PrizeStatus.TAKEN, spent_txid=None, taken_at=datetime.now(UTC)))
    with rt.session() as session:
        assert session.scalar(select(func.count(Payout.id)).where(Payout.bounty_id == bounty_id)) == 1
    claim_tx = rt.chain.get_transaction(second["txid"])
    assert claim_tx is not None and len(claim_tx.inputs) == 1
    payee = next(vout for vout, out in enumerate(claim_tx.outputs)
                 if out.locking_script.serialize() == P2PKH().lock(USER.address()).serialize())
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    assert get_submission(rt, second["id"]).status == "seen"  # the chain has it: no longer only broadcast
    settle(rt)
    with rt.session() as session:
        payouts = {p.submission_id: p for p in session.scalars(select(Payout).where(Payout.bounty_id == bounty_id))}
        assert set(payouts) == {first["id"], second["id"]}
        booked = payouts[second["id"]]
        assert (booked.txid, booked.vout, booked.recipient_address) == (second["txid"], payee, USER.address())
        assert booked.satoshis == sum(o.satoshis for o in claim_tx.outputs) == claim_tx.outputs[payee].satoshis
        assert booked.fee_sats == fee_paid(rt.chain, claim_tx)
        prize = session.scalar(select(Prize).where(Prize.txid == claim_tx.inputs[0].source_txid,
                                                   Prize.vout == claim_tx.inputs[0].source_output_index))
        assert prize is not None and prize.status == PrizeStatus.CLAIMED and prize.spent_txid == second["txid"]
        assert booked.satoshis + booked.fee_sats == prize.satoshis
        row = session.get(Submission, second["id"])
        assert row is not None and row.status == SubmissionStatus.CONFIRMED and row.source == SubmissionSource.API
    books(rt, bounty_id)


def test_an_unbooked_owner_move_that_spends_the_whole_reserve_into_prizes_is_adopted_as_a_top_up(
        rt: Runtime, sevens: np.ndarray) -> None:
    """The owner's transaction (sent, its process stopped before booking it) adds wallet money to the reserve
    and turns it all into prizes: no reserve output is left. Adopted from the chain it is a top-up, not a
    withdrawal: the bounty stays open with its new prizes, the budget grows by what the wallet added."""
    bounty_id = pool(rt, prizes=2, budget=12_000)  # two prizes and a reserve that buys one more
    settle(rt)
    with rt.session() as session:
        bounty, deployment = live_pool(session, bounty_id)
        contract, reserve, budget = rt.pool(deployment), reserve_utxo(rt, deployment), bounty.budget_sats
        before = pool_totals(session, bounty)
    assert reserve is not None
    rate = rt.settings.fee_rate
    count = prizes_affordable(contract, reserve.satoshis, rate) + 1  # more than the reserve buys: the wallet adds

    def move(add: int) -> Transaction:
        return rt.wallet.build_pool_move(rt.chain, bounty_id, pool=contract, count=count, reserve=reserve, add=add,
                                         fee_rate=rate)

    reserve_script = P2PKH().lock(rt.wallet.reserve_address(bounty_id)).serialize()
    plenty = count * (contract.prize_satoshis + prize_creation_fee(contract, rate)) + 5_000
    (left,) = [o.satoshis for o in move(plenty).outputs if o.locking_script.serialize() == reserve_script]
    add = plenty - left  # exactly what the prizes and the fee need: no reserve is left to make an output of
    tx = move(add)
    assert all(o.locking_script.serialize() != reserve_script for o in tx.outputs)
    prize_vouts = [v for v, o in enumerate(tx.outputs) if o.locking_script.serialize() == contract.lock().serialize()]
    assert len(prize_vouts) == count
    rt.chain.broadcast(tx)  # ... and the process stopped here
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    fee = fee_paid(rt.chain, tx)
    with rt.session() as session:
        (moved,) = session.scalars(select(PoolMove).where(PoolMove.txid == tx.txid()))
        assert (str(moved.kind), moved.added_sats, moved.fee_sats) == ("top_up", add, fee)
        bounty, deployment = live_pool(session, bounty_id)  # still open: not a withdrawal
        assert str(bounty.status) == "active" and bounty.budget_sats == budget + add
        assert (deployment.current_txid, deployment.current_satoshis) == (tx.txid(), 0)
        created = list(session.scalars(select(Prize).where(Prize.txid == tx.txid()).order_by(Prize.vout)))
        assert [(p.vout, p.satoshis, str(p.status), p.deployment_id) for p in created] == \
            [(v, contract.prize_satoshis, "live", deployment.id) for v in prize_vouts]
        assert sum(p.creation_fee_sats for p in created) == fee
        after = pool_totals(session, bounty)
        assert (after.reserve, after.live_prizes, after.withdrawn) == (0, before.live_prizes + count, 0)
        assert after.live_value == before.live_value + count * contract.prize_satoshis
    books(rt, bounty_id)
    assert post(client(rt), bounty_id, sevens[0])["code"] == 202  # its prizes pay
    settle(rt)
    books(rt, bounty_id)


def test_a_prize_a_reorg_gives_back_after_a_redeploy_is_never_handed_out_under_the_old_model(
        rt: Runtime, sevens: np.ndarray, tmp_path: Path, shipped: ModelArtifact) -> None:
    """An outsider's claim of prize P (with a coin of its own) is booked; the owner redeploys (P, claimed, is not
    moved); a reorg drops the claim by spending the outsider's coin elsewhere, so P is live again under the
    retired deployment. New submissions get the new model's prizes only, never P; the owner's withdrawal takes P
    home with the rest."""
    bounty_id = pool(rt, prizes=3)
    own = coin(rt, OUTSIDER, 20_000)
    settle(rt)
    contract, utxos = live_prizes(rt, bounty_id, 3)
    prize = utxos[0]
    claim_tx = Transaction([spend(prize, contract.claim_unlock(sevens[0])), spend(own, P2PKH().unlock(OUTSIDER))],
                           [TransactionOutput(P2PKH().lock(OUTSIDER.address()), 0)], version=TX_VERSION)
    claim_tx.outputs[0].satoshis = prize.satoshis + own.satoshis - fee(claim_tx, rt.settings.fee_rate) - 5
    rt.chain.broadcast(claim_tx.sign())
    settle(rt)
    with rt.session() as session:
        p = session.scalar(select(Prize).where(Prize.txid == prize.txid, Prize.vout == prize.vout))
        assert p is not None and p.status == PrizeStatus.CLAIMED
        old_id, prize_id = p.deployment_id, p.id
        assert prize_id == min(session.scalars(select(Prize.id).where(Prize.bounty_id == bounty_id)))
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    assert redeploy(rt, bounty_id, model_id).contract_version == 2
    elsewhere = Transaction([spend(own, P2PKH().unlock(OUTSIDER))],
                            [TransactionOutput(P2PKH().lock(STRANGER.address()), 0)], version=TX_VERSION)
    elsewhere.outputs[0].satoshis = own.satoshis - fee(elsewhere, rt.settings.fee_rate)
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[elsewhere.sign()])
    settle(rt)
    with rt.session() as session:
        _, active = live_pool(session, bounty_id)
        new_id = active.id
        assert active.version == 2 and new_id != old_id
        p = session.get(Prize, prize_id)
        assert p is not None and p.status == PrizeStatus.LIVE and p.deployment_id == old_id
        theirs = session.scalar(select(Submission).where(Submission.txid == claim_tx.txid()))
        assert theirs is not None and theirs.status == SubmissionStatus.ORPHANED and theirs.payout is None
        new_free = session.scalar(select(func.count(Prize.id)).where(Prize.deployment_id == new_id,
                                                                     Prize.status == PrizeStatus.LIVE))
    assert new_free is not None and new_free >= 1
    api = client(rt)
    for image in sevens[1:1 + new_free]:
        paid = post(api, bounty_id, image)
        assert paid["code"] == 202, paid
        tx = rt.chain.get_transaction(paid["txid"])
        assert tx is not None
        with rt.session() as session:
            row = session.get(Submission, paid["id"])
            assert row is not None and row.deployment_id == new_id
            spent = session.scalar(select(Prize).where(Prize.txid == tx.inputs[0].source_txid,
                                                       Prize.vout == tx.inputs[0].source_output_index))
            assert spent is not None and spent.deployment_id == new_id and spent.id != prize_id
    with rt.session() as session:
        p = session.get(Prize, prize_id)
        assert p is not None and p.status == PrizeStatus.LIVE and p.taken_at is None
    assert rt.chain.spender_of(prize.txid, prize.vout) is None
    settle(rt)
    books(rt, bounty_id)
    closed = withdraw_bounty(rt, bounty_id)  # P goes home with the rest: no satoshi is left behind
    withdrawal = rt.chain.get_transaction(closed.withdraw_txid or "")
    assert withdrawal is not None and rt.chain.spender_of(prize.txid, prize.vout) is not None
    with rt.session() as session:
        p = session.get(Prize, prize_id)
        assert p is not None and p.status == PrizeStatus.RECLAIMED and p.spent_txid == withdrawal.txid()
        assert sorted({str(s) for s in session.scalars(select(Prize.status).where(Prize.bounty_id == bounty_id))}) \
            == ["claimed", "reclaimed"]  # none left live or taken
    assert (closed.status, closed.remaining_sats, closed.images_left) == ("withdrawn", 0, 0)
    settle(rt)
    books(rt, bounty_id)


def test_a_claim_that_cannot_be_built_at_the_rate_in_force_frees_its_prize_at_once(
        rt: Runtime, sevens: np.ndarray, tmp_path: Path) -> None:
    """A prize holds its payout and the fee its claim needs at the rate it was made at. Once the rate in force is
    far above that (another process of the service, reconfigured), the claim cannot be built: the contributor gets
    a sentence, and the prize taken for it is free again at once, not held until the keeper frees stale takes."""
    bounty_id = pool(rt, prizes=2)
    settle(rt)
    assert prizes_of(rt, bounty_id) == {"live": 2}
    dear = open_runtime(settings_for(tmp_path / "home", rt.settings.database_url, fee_rate=rt.settings.fee_rate * 100,
                                     pool_wait_seconds=0.5, quota_per_payee_per_hour=0, quota_per_client_per_hour=0,
                                     novelty_index_mnist_test=False))
    try:
        refused = post(client(dear), bounty_id, sevens[0])
    finally:
        dear.close()
    assert refused["code"] == 409 and "cannot pay" in refused["detail"], refused
    assert prizes_of(rt, bounty_id) == {"live": 2}
    assert post(client(rt), bounty_id, sevens[0])["code"] == 202  # at the rate it was made for, it pays
    settle(rt)
    books(rt, bounty_id)


def test_a_held_appeal_to_a_two_digit_vetted_pool_approved_after_a_redeploy_is_paid_once_for_its_digit(
        tmp_path: Path, shipped: ModelArtifact, mnist: Mnist) -> None:
    """A held appeal is judged again, as the appeal it is and for the digit it names, by the model a redeploy put
    in place: one that still ranks the 7 second pays it once, from a prize of the new deployment."""
    read, ranked = reading_of_test_set(shipped.integer), ranking_of_test_set(shipped.integer)
    appeals = read.x[np.flatnonzero((mnist.y_test == 7) & (ranked[:, 1] == 7) & ~np.isin(read.labels, [2, 7])
                                    & (read.margins <= 3_900))]  # the variant below moves a logit by 1 at most
    rt = open_runtime(settings_for(tmp_path / "home", appeals_need_review=True, novelty_index_mnist_test=False,
                                   quota_per_payee_per_hour=0, quota_per_client_per_hour=0, pool_wait_seconds=5.0))
    try:
        bounty_id = create_bounty(rt, [2, 7], PAYOUT, 200_000, mode=BountyMode.VETTED, shape=BountyShape.POOL,
                                  prizes=2).id
        api = client(rt)
        held = hold_an_appeal(api, bounty_id, appeals[:16], digit=7)
        (model_id,) = register_variants(rt, shipped, tmp_path, 1)
        assert redeploy(rt, bounty_id, model_id).contract_version == 2
        (paid,) = decide_appeals(rt, [held["id"]], approve=True)
        assert (paid.id, paid.status, paid.payout_sats, paid.appeal, paid.claimed_digit) == (
            held["id"], "broadcast", PAYOUT, True, 7)
        with rt.session() as session:
            row = session.get(Submission, held["id"])
            assert row is not None and row.deployment is not None and row.deployment.version == 2
        settle(rt)
        books(rt, bounty_id)
    finally:
        rt.close()


def test_a_claim_losing_race_after_race_gives_up_after_the_retries_it_is_allowed(
        rt: Runtime, sevens: np.ndarray) -> None:
    """An outsider has spent ten of the pool's twelve prizes in one transaction the watcher has not read yet. A
    claim through the service takes them in turn and loses each race: after `RACE_RETRIES` lost races it gives up
    (a 409 naming the last double spend) instead of trying on, or sooner. The prizes it lost stay out of the
    hand-outs until the watcher books the outsider's claims, and the pool then pays again."""
    bounty_id = pool(rt, prizes=12)
    settle(rt)
    assert prizes_of(rt, bounty_id) == {"live": 12}
    contract, spent = live_prizes(rt, bounty_id, 10)
    direct = Transaction([spend(prize, contract.claim_unlock(image)) for prize, image in zip(spent, sevens[20:30],
                                                                                          strict=True)],
                         [TransactionOutput(P2PKH().lock(OUTSIDER.address()), 0)], version=TX_VERSION)
    direct.outputs[0].satoshis = sum(p.satoshis for p in spent) - fee(direct, rt.settings.fee_rate)
    rt.chain.broadcast(direct.sign())
    api = client(rt)
    refused = post(api, bounty_id, sevens[0])
    assert refused["code"] == 409 and "rejected: double spend of" in refused["detail"], refused
    assert prizes_of(rt, bounty_id) == {"taken": RACE_RETRIES, "live": 12 - RACE_RETRIES}
    settle(rt)  # the outsider's claims booked (and the keeper refills)
    after = prizes_of(rt, bounty_id)
    assert after["claimed"] == 10 and "taken" not in after, after
    assert [post(api, bounty_id, image)["code"] for image in sevens[1:3]] == [202, 202]
    settle(rt)
    books(rt, bounty_id)


def test_a_queued_claim_whose_booking_fails_after_its_broadcast_is_never_sent_again(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database fails (a fault at its boundary: "database is locked") right after a queued claim went out,
    before it is booked. The claim must not be queued again, or the next block pays the image twice: its row takes
    the claim's txid, and the watcher books its payout from the chain, once."""
    bounty_id = pool(rt, prizes=3)
    queued = queue_until_a_block(rt, client(rt), bounty_id, sevens[0])
    with (database_fails(rt.engine, at=lambda statement: "FROM prizes LEFT OUTER JOIN deployments" in statement)
          as failed, pytest.raises(OperationalError)):  # the booking's first read fails
        send_queued(rt)
    assert failed
    for _ in range(2):  # blocks come, the queue is sent again: nothing goes out twice
        assert rt.local_chain is not None
        rt.local_chain.mine(1)
        assert send_queued(rt) == 0
    settle(rt)
    with rt.session() as session:
        rows = session.scalars(select(Submission).where(Submission.bounty_id == bounty_id)).all()
        assert [(r.id, str(r.status), r.payout is not None) for r in rows] == [(queued["id"], "confirmed", True)]
        assert rows[0].payout is not None and rows[0].payout.satoshis == PAYOUT
    books(rt, bounty_id)


def test_the_services_own_claims_are_seen_once_the_watcher_reads_them(rt: Runtime, sevens: np.ndarray) -> None:
    """Claims the service booked as it sent them are only marked `seen` by the watcher (one statement a step), not
    booked again: their receipts say `seen` before any block, and their payouts stay one each."""
    bounty_id = pool(rt, prizes=3)
    settle(rt)
    api = client(rt)
    sent = [post(api, bounty_id, image) for image in sevens[:2]]
    assert [s["status"] for s in sent] == ["broadcast", "broadcast"], sent
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    assert [get_submission(rt, s["id"]).status for s in sent] == ["seen", "seen"]
    settle(rt)
    assert [get_submission(rt, s["id"]).status for s in sent] == ["confirmed", "confirmed"]
    books(rt, bounty_id)


def test_a_strangers_payment_that_spends_an_output_at_the_reserves_index_is_not_an_owner_move(
        rt: Runtime, sevens: np.ndarray) -> None:
    """Someone's own payment spends an output of theirs whose index is the pool reserve's (another transaction's
    output): the watcher must match the reserve by its whole outpoint, not take the payment for the owner's move
    (it would be inferred a withdrawal and close the pool)."""
    bounty_id = pool(rt, prizes=3)
    settle(rt)
    with rt.session() as session:
        reserve_at = live_pool(session, bounty_id)[1].current_vout
    own = coin(rt, OUTSIDER, 20_000)
    fan = Transaction([spend(own, P2PKH().unlock(OUTSIDER))],
                      [TransactionOutput(P2PKH().lock(OUTSIDER.address()), 1_000) for _ in range(reserve_at + 1)],
                      version=TX_VERSION)
    fan.outputs[0].satoshis = own.satoshis - reserve_at * 1_000 - fee(fan, rt.settings.fee_rate)
    rt.chain.broadcast(fan.sign())
    payment = Transaction([spend(Utxo.of(fan, reserve_at), P2PKH().unlock(OUTSIDER))],
                          [TransactionOutput(P2PKH().lock(STRANGER.address()), 0)], version=TX_VERSION)
    payment.outputs[0].satoshis = 1_000 - fee(payment, rt.settings.fee_rate)
    rt.chain.broadcast(payment.sign())
    before = counts(rt, bounty_id)
    settle(rt)
    assert counts(rt, bounty_id) == before  # no move booked, the pool open with its reserve
    assert post(client(rt), bounty_id, sevens[0])["code"] == 202
    settle(rt)
    books(rt, bounty_id)
