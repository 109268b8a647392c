"""Attacks on the money paths of pool bounties (marketplace.pools, marketplace.pool_ledger), made the way an
adversary can: with the public weights, any valid transaction broadcast to the dev chain, reorgs of it, a
process that stops between a broadcast and its commit, and the public API. After each the books must be exact
to the satoshi (tests/support/pool_books.py), nothing paid or booked twice, and every refusal a sentence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bsv import P2PKH, Network, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.fee_models import SatoshisPerKilobyte
from sqlalchemy import func, select, update

from contracts.interpreter import TX_VERSION
from contracts.pool import PoolContract
from contracts.transactions import Utxo
from contracts.transactions import claim as build_claim
from marketplace.bounties import fund_bounty, redeploy, withdraw_bounty
from marketplace.chain import START
from marketplace.chain.errors import TransactionRejected
from marketplace.pool_ledger import pool_totals, prize_utxo, reserve_utxo
from marketplace.pools import live_pool
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyMode,
    Payout,
    PoolMove,
    Prize,
    PrizeStatus,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    WatcherState,
)
from marketplace.watcher import CURSOR_KEY, Watcher
from model.artifact import ModelArtifact
from tests.integration.test_pools import OUTSIDER, books, client, pool, post, prizes_of, settle
from tests.support.models import register_variants
from tests.support.pool_books import pool_books_failures
from tests.support.settings import runtime_on

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
