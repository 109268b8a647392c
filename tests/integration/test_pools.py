"""Pool bounties as operators and submitters use them (marketplace.pools): prizes handed out to concurrent
claims, claims made directly on chain, the keeper's refills, top-ups, withdrawals, redeploys and reorgs, with
the books checked to the satoshi against the chain after each, on SQLite and on this machine's PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput
from bsv.fee_models import SatoshisPerKilobyte
from sqlalchemy import event, func, select

from contracts.interpreter import TX_VERSION
from contracts.pool import PoolContract
from contracts.transactions import Utxo
from contracts.transactions import claim as build_claim
from marketplace.bounties import create_bounty, export_bounty, fund_bounty, redeploy, withdraw_bounty
from marketplace.pool_ledger import prize_utxo, reserve_utxo, undo_drop
from marketplace.pools import keep_forever, keep_pools, live_pool
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import (
    Bounty,
    BountyMode,
    BountyStatus,
    Deployment,
    Payout,
    PoolMove,
    Prize,
    PrizeStatus,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from marketplace.watcher import Watcher
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import logits
from tests.support.models import register_variants
from tests.support.pools import OUTSIDER, PAYOUT, USER, books, client, pool, post, prizes_of, rescan, settle
from tests.support.reference import reading_of_test_set
from tests.support.settings import runtime_on, seed_sqlite, settings_for


@pytest.fixture(scope="module")
def digits(sevens: np.ndarray, shipped: ModelArtifact) -> dict[str, np.ndarray]:
    read = reading_of_test_set(shipped.integer)
    return {"sevens": sevens, "others": read.x[read.labels != 7]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    runtime = runtime_on(request.param, request, tmp_path, pool_wait_seconds=20.0, novelty_index_mnist_test=False,
                         quota_per_payee_per_hour=0, quota_per_client_per_hour=0)
    yield runtime
    runtime.close()


def test_a_pool_pays_accepted_images_from_its_prizes_and_refuses_others(rt: Runtime,
                                                                       digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=4)
    api = client(rt)
    view = api.get(f"/bounties/{bounty_id}").json()
    assert view["shape"] == "pool" and view["live_prizes"] == 4 and view["prizes"] == 4
    assert view["cost_sats_per_image"] < 6_000  # the classifier's bytes are paid once per prize, not twice
    accepted = [post(api, bounty_id, image) for image in digits["sevens"][:3]]
    refused = post(api, bounty_id, digits["others"][0])
    assert [a["code"] for a in accepted] == [202] * 3 and len({a["txid"] for a in accepted}) == 3
    assert refused["code"] == 422 and refused["refusal"]["predicted"] != 7
    claim = rt.chain.get_transaction(accepted[0]["txid"])
    assert claim is not None and claim.byte_length() < 1_500 and len(claim.inputs) == 1
    settle(rt)
    receipt = api.get(f"/submissions/{accepted[0]['id']}").json()
    assert receipt["status"] == "confirmed" and receipt["payout_sats"] == PAYOUT
    after = api.get(f"/bounties/{bounty_id}").json()
    assert after["accepted_count"] == 3 and after["paid_sats"] == 3 * PAYOUT
    assert after["live_prizes"] >= 2  # the keeper stocked the pool again
    books(rt, bounty_id)


def test_concurrent_claims_each_take_their_own_prize(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=24, budget=400_000)
    api = client(rt)
    images = digits["sevens"][:20]
    with ThreadPoolExecutor(max_workers=8) as threads:
        results = list(threads.map(lambda image: post(api, bounty_id, image), images))
    assert [r["code"] for r in results] == [202] * 20
    assert len({r["txid"] for r in results}) == 20
    assert prizes_of(rt, bounty_id) == {"claimed": 20, "live": 4}
    settle(rt)
    books(rt, bounty_id)


def test_claims_the_watcher_books_as_they_arrive_are_each_answered_and_booked_once(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """The embedded layout: the watcher runs beside the API and sees each claim as soon as the chain has it, so it
    often books a claim while the API is booking it: every claim is still answered 202, with one row and one
    payout each."""
    bounty_id = pool(rt, prizes=40, budget=800_000)
    api = client(rt)
    stop = threading.Event()
    watcher = threading.Thread(target=Watcher(rt, keep=False).run_forever, args=(stop, 0.001, 1))
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as threads:
            results = list(threads.map(lambda image: post(api, bounty_id, image), digits["sevens"][:32]))
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert [r["code"] for r in results] == [202] * 32, [r for r in results if r["code"] != 202][:2]
    assert all(r["payout_sats"] == PAYOUT for r in results)
    settle(rt)
    with rt.session() as session:
        rows = session.scalar(select(func.count(Submission.id)).where(Submission.bounty_id == bounty_id))
    assert rows == 32
    books(rt, bounty_id)


def test_a_claim_the_watcher_books_between_the_apis_row_and_its_payout_is_answered_and_paid_once(
        tmp_path: Path, digits: dict[str, np.ndarray]) -> None:
    """On SQLite the release of the savepoint that wrote the API's row commits it at once: the watcher, stepping
    right then, books that claim's payout first; the API's own payout then meets it and the claim is still
    answered 202, with one payout."""
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False))
    try:
        bounty_id = pool(rt, prizes=3)
        watcher, stepped = Watcher(rt, keep=False), []

        @event.listens_for(rt.engine, "after_cursor_execute")
        def step_after_the_rows_release(conn: object, cursor: object, statement: str, *_: object) -> None:
            # the claim's judging and take write no savepoint: the booking's first is the row's
            if statement.startswith("RELEASE SAVEPOINT") and threading.current_thread().name != "step" and not stepped:
                stepped.append(True)
                step = threading.Thread(target=watcher.run_once, name="step")
                step.start()
                step.join(timeout=60)

        paid = post(client(rt), bounty_id, digits["sevens"][0])
        assert stepped and paid["code"] == 202 and paid["payout_sats"] == PAYOUT, paid
        with rt.session() as session:
            row = session.scalar(select(Submission).where(Submission.txid == paid["txid"]))
            assert row is not None and session.scalar(select(func.count(Payout.id)).where(
                Payout.submission_id == row.id)) == 1
        settle(rt)
        books(rt, bounty_id)
    finally:
        rt.close()


def test_a_claim_made_directly_on_chain_is_booked_and_a_racing_submission_takes_another_prize(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=3)
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        first = session.scalar(select(Prize).where(Prize.bounty_id == bounty_id).order_by(Prize.id).limit(1))
        assert first is not None
        contract, utxo, first_id = rt.pool(deployment), prize_utxo(rt, first), first.id
    # an outsider claims the first prize; the service hands the same prize out before the watcher saw it
    direct = build_claim(contract, utxo, digits["sevens"][5], OUTSIDER.address(), rt.settings.fee_rate)
    rt.chain.broadcast(direct)
    paid = post(client(rt), bounty_id, digits["sevens"][6])
    assert paid["code"] == 202 and paid["txid"] != direct.txid()
    settle(rt)
    with rt.session() as session:
        outsider = session.scalar(select(Submission).where(Submission.txid == direct.txid()))
        assert outsider is not None and outsider.source == SubmissionSource.CHAIN
        assert outsider.recipient_address == OUTSIDER.address() and outsider.payout is not None
        assert session.get(Prize, first_id).status == PrizeStatus.CLAIMED  # type: ignore[union-attr]
    books(rt, bounty_id)


def test_top_up_withdraw_and_the_books(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=3, budget=60_000)
    api = client(rt)
    assert post(api, bounty_id, digits["sevens"][0])["code"] == 202
    before = api.get(f"/bounties/{bounty_id}").json()
    topped = fund_bounty(rt, bounty_id, 25_000)
    assert topped.budget_sats == 85_000 and topped.reserve_sats is not None
    assert topped.reserve_sats > (before["reserve_sats"] or 0) + 24_000
    shown = api.get(f"/bounties/{bounty_id}").json()
    assert {b["id"]: b for b in api.get("/bounties").json()}[bounty_id] == shown  # the list shows the pool's figures
    exported = export_bounty(rt, bounty_id).bounty
    assert (exported.live_prizes, exported.reserve_sats, exported.remaining_sats) == (
        shown["live_prizes"], shown["reserve_sats"], shown["remaining_sats"])
    books(rt, bounty_id)
    settle(rt)
    live_value = prizes_of(rt, bounty_id)
    wallet_before = rt.wallet.balance(rt.chain)
    withdrawn = withdraw_bounty(rt, bounty_id)
    assert withdrawn.status == "withdrawn" and live_value.get("live", 0) >= 1
    assert rt.wallet.balance(rt.chain) == wallet_before + withdrawn.withdrawn_sats
    assert prizes_of(rt, bounty_id).get("live", 0) == 0
    assert deployments_of(rt, bounty_id) == [(1, "withdrawn", 0)]  # no contract of the bounty stays active
    assert post(api, bounty_id, digits["sevens"][1])["code"] == 409
    settle(rt)
    books(rt, bounty_id)


def test_the_keeper_refills_from_the_reserve_in_batches(rt: Runtime, digits: dict[str, np.ndarray],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """It stocks only active pools: a chain bounty and a withdrawn pool beside this one are not looked at (no
    warning of a pool it could not stock)."""
    caplog.set_level(logging.WARNING, logger="marketplace.pools")
    create_bounty(rt, [7], PAYOUT, 100_000)
    withdraw_bounty(rt, pool(rt, prizes=2))
    bounty_id = pool(rt, prizes=6, budget=300_000)
    api = client(rt)
    for image in digits["sevens"][:5]:
        assert post(api, bounty_id, image)["code"] == 202
    assert prizes_of(rt, bounty_id) == {"claimed": 5, "live": 1}
    assert keep_pools(rt) == 4  # five claims in the last minute: five live
    with rt.session() as session:
        moves = [m.kind for m in session.scalars(select(PoolMove).where(PoolMove.bounty_id == bounty_id))]
    assert moves == ["deploy", "refill"]
    assert prizes_of(rt, bounty_id)["live"] == 5
    assert keep_pools(rt) == 0  # stocked: nothing to do
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    books(rt, bounty_id)


def test_the_keepers_own_thread_stocks_the_pool_while_claims_come_with_no_watcher_step(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """The services run the keeper as a loop of its own (`keep_forever`): claims that take every prize wait for
    its next batch, not for a watcher step, and the loop ends when told."""
    bounty_id = pool(rt, prizes=4, budget=300_000)
    stop = threading.Event()
    keeper = threading.Thread(target=keep_forever, args=(rt, stop))
    keeper.start()
    try:
        results = [post(client(rt), bounty_id, image) for image in digits["sevens"][:12]]
    finally:
        stop.set()
        keeper.join(timeout=30)
    assert not keeper.is_alive()
    assert [r["code"] for r in results] == [202] * 12, [r for r in results if r["code"] != 202][:1]
    with rt.session() as session:
        refills = session.scalar(select(func.count(PoolMove.id)).where(PoolMove.bounty_id == bounty_id,
                                                                      PoolMove.kind == "refill"))
    assert refills and refills >= 2  # 12 claims from 4 prizes
    settle(rt)
    books(rt, bounty_id)


def test_a_reorg_that_drops_a_claim_gives_the_prize_back(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=3)
    paid = post(client(rt), bounty_id, digits["sevens"][0])
    settle(rt)
    claim_tx = rt.chain.get_transaction(paid["txid"])
    assert claim_tx is not None
    with rt.session() as session:
        prize = session.scalar(select(Prize).where(Prize.spent_txid == paid["txid"]))
        assert prize is not None
        deployment = live_pool(session, bounty_id)[1]
        contract, utxo = rt.pool(deployment), prize_utxo(rt, prize)
    # the competing chain holds an outsider's claim of the same prize instead
    rival = build_claim(contract, utxo, digits["sevens"][9], OUTSIDER.address(), rt.settings.fee_rate)
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[rival])
    settle(rt)
    with rt.session() as session:
        ours = session.scalar(select(Submission).where(Submission.txid == paid["txid"]))
        theirs = session.scalar(select(Submission).where(Submission.txid == rival.txid()))
        assert ours is not None and ours.status == SubmissionStatus.ORPHANED and ours.payout is None
        assert theirs is not None and theirs.status == SubmissionStatus.CONFIRMED and theirs.payout is not None
    books(rt, bounty_id)


def test_a_reorg_that_drops_a_refill_takes_its_prizes_away(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=4, budget=300_000)
    api = client(rt)
    for image in digits["sevens"][:3]:
        assert post(api, bounty_id, image)["code"] == 202
    settle(rt)  # the keeper refilled, and the refill was mined
    with rt.session() as session:
        refill = session.scalar(select(PoolMove).where(PoolMove.bounty_id == bounty_id, PoolMove.kind == "refill"))
        assert refill is not None and refill.reserve_before is not None
        refill_txid = refill.txid
        refilled = session.scalar(select(func.count(Prize.id)).where(Prize.txid == refill_txid))
        deployment = live_pool(session, bounty_id)[1]
        contract = rt.pool(deployment)
    refill_tx = rt.chain.get_transaction(refill_txid)
    assert refill_tx is not None and refilled
    reserve_txid, reserve_vout, _ = refill.reserve_before.split(":")
    source = rt.chain.get_transaction(reserve_txid)
    assert source is not None
    # the competing chain spends the same reserve into a single prize
    other = rt.wallet.build_pool_move(rt.chain, bounty_id, pool=contract, count=1,
                                      reserve=Utxo.of(source, int(reserve_vout)), fee_rate=rt.settings.fee_rate)
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[other])
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    with rt.session() as session:
        assert session.scalar(select(PoolMove.dropped).where(PoolMove.txid == refill_txid)) is True
        assert session.scalar(select(func.count(Prize.id)).where(Prize.txid == refill_txid,
                                                                 Prize.status == PrizeStatus.DROPPED)) == refilled
        assert session.scalar(select(PoolMove.kind).where(PoolMove.txid == other.txid())) == "refill"
    books(rt, bounty_id)


def test_a_vetted_pool_pays_only_what_vetting_passed(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty_id = pool(rt, prizes=3, mode=BountyMode.VETTED)
    api = client(rt)
    paid = post(api, bounty_id, digits["sevens"][40])
    assert paid["code"] == 202, paid
    claim_tx = rt.chain.get_transaction(paid["txid"])
    assert claim_tx is not None and claim_tx.outputs[0].satoshis == PAYOUT
    again = post(api, bounty_id, digits["sevens"][40], OUTSIDER.address())  # the same image, another payee
    assert again["code"] == 422
    settle(rt)
    books(rt, bounty_id)


def test_a_redeploy_moves_the_live_prizes_to_the_new_model(rt: Runtime, digits: dict[str, np.ndarray],
                                                          tmp_path: Path, shipped: ModelArtifact) -> None:
    bounty_id = pool(rt, prizes=3)
    assert post(client(rt), bounty_id, digits["sevens"][0])["code"] == 202
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    moved = redeploy(rt, bounty_id, model_id)
    assert moved.model_version == 2 and moved.live_prizes == 2 and moved.contract_version == 2
    assert post(client(rt), bounty_id, digits["sevens"][1])["code"] == 202
    settle(rt)
    books(rt, bounty_id)
    with rt.session() as session:
        assert session.scalar(select(func.count(Prize.id)).where(Prize.bounty_id == bounty_id,
                                                                 Prize.status == PrizeStatus.RECLAIMED)) == 2


def test_operator_commands_on_a_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from marketplace.cli import app as cli
    from marketplace.settings import get_settings

    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    seed_sqlite(tmp_path / "home")  # a database at the newest schema (tests/support/settings.py)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(cli, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    created = run("create", "--digit", "3", "--digit", "8", "--payout", "700", "--budget", "50000", "--open",
                  "--prizes", "3")
    assert created["shape"] == "pool" and created["live_prizes"] == 3 and created["budget_sats"] == 50_000
    assert created["remaining_sats"] == 50_000 - created["fees_spent_sats"]  # the deploy's fee, from the budget
    funded = run("fund", str(created["id"]), "25000")
    assert funded["budget_sats"] == 75_000 and funded["reserve_sats"] > created["reserve_sats"] + 24_000
    assert funded["remaining_sats"] == 75_000 - funded["fees_spent_sats"]
    withdrawn = run("withdraw", str(created["id"]))
    assert withdrawn["status"] == "withdrawn" and withdrawn["live_prizes"] == 0
    assert withdrawn["withdrawn_sats"] == funded["remaining_sats"] - (withdrawn["fees_spent_sats"]
                                                                      - funded["fees_spent_sats"])
    human = runner.invoke(cli, ["status", str(created["id"])])
    assert "a pool of 0 live prizes (at most 3)" in human.stdout
    wrong = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "3000", "--open"])
    assert wrong.exit_code == 1 and wrong.stderr.startswith("error: a budget of 3,000 sats cannot create one prize")
    chain_only = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "30000", "--open",
                                     "--shape", "chain", "--prizes", "4"])
    assert chain_only.exit_code == 1 and "--prizes is for pool bounties" in chain_only.stderr
    get_settings.cache_clear()


def test_a_vetted_pool_pays_an_appeal_for_the_close_second_through_its_appeal_path(
        rt: Runtime, shipped: ModelArtifact, mnist: Mnist) -> None:
    x = mnist.x_test.reshape(-1, 784)
    z = logits(shipped.integer, x)
    order = np.argsort(-z, axis=1, kind="stable")
    gap = z[np.arange(len(z)), order[:, 0]] - z[np.arange(len(z)), order[:, 1]]
    misread_sevens = np.flatnonzero((mnist.y_test == 7) & (order[:, 1] == 7) & (gap <= 4_000))
    bounty_id = pool(rt, prizes=3, mode=BountyMode.VETTED)
    api = client(rt)
    answers = [api.post(f"/bounties/{bounty_id}/submissions",
                        json={"pixels": x[i].tolist(), "address": USER.address(), "appeal": True})
               for i in misread_sevens[:3]]
    paid = [a.json() for a in answers if a.status_code == 202]
    assert len(paid) >= 2, [a.json() for a in answers]
    assert all(p["appeal"] and p["claimed_digit"] == 7 and p["digit"] != 7 for p in paid)
    claim = rt.chain.get_transaction(paid[0]["txid"])
    assert claim is not None
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        read = rt.pool(deployment).read_claim(claim.inputs[0].unlocking_script)
    assert read is not None and read.appeal == 7  # the appeal path of the prize script paid it
    settle(rt)
    books(rt, bounty_id)


# -- The pool ledger's edges (mutation-tested) ----------------------------------------------------------------
# Each test below fails on mutants of marketplace/pool_ledger.py that the tests above let through (see the
# README's "Mutation testing" table): reorgs that drop the deploy, a top-up or a move on a redeployed pool, a
# pool with no reserve, the watcher reading a whole history again, owner transactions the watcher adopts.


def pool_without_reserve(rt: Runtime, prizes: int = 2, reserve: int = 0) -> int:
    """A pool whose budget makes exactly its prizes, its deploy's fee and a reserve of `reserve` sats (none when 0):
    a probe pool of the same shape tells what its deploy costs (its reserve is what the exact budget leaves out)."""
    probe = pool(rt, prizes=prizes, budget=60_000)
    with rt.session() as session:
        left = session.scalar(select(Deployment.current_satoshis).where(Deployment.bounty_id == probe))
    bounty_id = pool(rt, prizes=prizes, budget=60_000 - int(left or 0) + reserve)
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        assert (deployment.current_satoshis, prizes_of(rt, bounty_id)) == (reserve, {"live": prizes})
    return bounty_id


def a_rival_of(rt: Runtime, bounty_id: int, txid: str) -> Transaction:
    """What the competing chain holds instead of owner transaction `txid`: its reserve input spent into one prize."""
    with rt.session() as session:
        move = session.scalar(select(PoolMove).where(PoolMove.txid == txid))
        assert move is not None and move.reserve_before is not None
        contract = rt.pool(live_pool(session, bounty_id)[1])
        source_txid, vout, _ = move.reserve_before.split(":")
    source = rt.chain.get_transaction(source_txid)
    assert source is not None
    return rt.wallet.build_pool_move(rt.chain, bounty_id, pool=contract, count=1, reserve=Utxo.of(source, int(vout)),
                                     fee_rate=rt.settings.fee_rate)


def deployments_of(rt: Runtime, bounty_id: int) -> list[tuple[int, str, int]]:
    with rt.session() as session:
        return [(d.version, str(d.status), d.current_satoshis) for d in session.scalars(
            select(Deployment).where(Deployment.bounty_id == bounty_id).order_by(Deployment.version))]


def test_a_reorg_dropping_the_deploy_leaves_its_deployment_withdrawn_and_empty(rt: Runtime) -> None:
    other = pool(rt, prizes=2)  # mined a block earlier: the reorg leaves it alone
    settle(rt)
    assert rt.local_chain is not None
    rt.wallet.fund_from_faucet(rt.local_chain, 10_000_000)
    payment = rt.wallet.build_payment(rt.chain, OUTSIDER.address(), 1_000, rt.settings.fee_rate)  # held back
    bounty_id = pool(rt, prizes=2)
    settle(rt)
    rt.local_chain.rollback(1, replacement=[payment])  # the deploy's coin, spent elsewhere
    settle(rt)
    assert deployments_of(rt, bounty_id) == [(1, "withdrawn", 0)]
    with rt.session() as session:
        assert session.scalar(select(Bounty.status).where(Bounty.id == bounty_id)) == BountyStatus.WITHDRAWN
    books(rt, bounty_id)
    books(rt, other)  # the dropped deploy's budget counts as withdrawn for its own pool only


def test_a_reorg_dropping_a_top_up_of_a_pool_with_no_reserve_leaves_it_none_even_read_again(rt: Runtime) -> None:
    """The top-up created the pool's only reserve: dropped, the pool holds no reserve again and the budget is what
    it was; a watcher reading the whole history again undoes nothing twice."""
    bounty_id = pool_without_reserve(rt)
    with rt.session() as session:
        budget = session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id))
    settle(rt)
    payment = rt.wallet.build_payment(rt.chain, OUTSIDER.address(), 1_000, rt.settings.fee_rate)  # held back
    topped = fund_bounty(rt, bounty_id, 7_000)
    assert topped.reserve_sats and topped.budget_sats == budget + 7_000
    top_up = rt.chain.get_transaction(topped.migrate_txid)
    assert top_up is not None and {(i.source_txid, i.source_output_index) for i in top_up.inputs} & \
        {(i.source_txid, i.source_output_index) for i in payment.inputs}  # the same wallet coin
    settle(rt)
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[payment])
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(PoolMove.dropped).where(PoolMove.txid == topped.migrate_txid)) is True
        assert session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id)) == budget
    assert deployments_of(rt, bounty_id) == [(1, "active", 0)]
    books(rt, bounty_id)
    rescan(rt)
    with rt.session() as session:
        assert session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id)) == budget
    books(rt, bounty_id)


def test_a_reorg_dropping_top_ups_of_a_redeployed_pool_and_of_another_restores_each_ones_reserve(
        rt: Runtime, tmp_path: Path, shipped: ModelArtifact) -> None:
    """Two pools, the first redeployed (its second deployment active, the first retired): one reorg drops a top-up
    of each. Each pool's own live deployment gets its reserve back, whatever the other deployments."""
    redeployed, other = pool(rt, prizes=2), pool(rt, prizes=2)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    assert redeploy(rt, redeployed, model_id).contract_version == 2
    settle(rt)
    topped = {bounty_id: fund_bounty(rt, bounty_id, 5_000).migrate_txid for bounty_id in (redeployed, other)}
    settle(rt)
    rivals = [a_rival_of(rt, bounty_id, txid) for bounty_id, txid in topped.items()]
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=rivals)
    settle(rt)
    with rt.session() as session:
        assert all(session.scalar(select(PoolMove.dropped).where(PoolMove.txid == txid)) for txid in topped.values())
    assert [(v, s) for v, s, _ in deployments_of(rt, redeployed)] == [(1, "migrated"), (2, "active")]
    assert [(v, s) for v, s, _ in deployments_of(rt, other)] == [(1, "active")]
    books(rt, redeployed)
    books(rt, other)


def first_prize(rt: Runtime, bounty_id: int) -> tuple[PoolContract, Utxo]:
    """The pool's contract and its first prize's output, as an outsider claiming it directly needs them."""
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        prize = session.scalar(select(Prize).where(Prize.deployment_id == deployment.id).order_by(Prize.id).limit(1))
        assert prize is not None
        return rt.pool(deployment), prize_utxo(rt, prize)


def test_a_reorg_dropping_a_redeploy_leaves_the_deployment_it_started_dropped_and_empty(
        rt: Runtime, sevens: np.ndarray, tmp_path: Path, shipped: ModelArtifact) -> None:
    bounty_id = pool(rt, prizes=2)
    contract, utxo = first_prize(rt, bounty_id)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    redeploy(rt, bounty_id, model_id)
    settle(rt)
    assert rt.local_chain is not None  # the competing chain holds an outsider's claim of a prize it reclaimed
    rt.local_chain.rollback(1, replacement=[build_claim(contract, utxo, sevens[0], OUTSIDER.address(),
                                                        rt.settings.fee_rate)])
    settle(rt)
    assert deployments_of(rt, bounty_id)[1] == (2, "dropped", 0)
    assert deployments_of(rt, bounty_id)[0][:2] == (1, "active")
    books(rt, bounty_id)


def test_a_one_satoshi_top_up_the_watcher_adopts_is_a_top_up(rt: Runtime) -> None:
    """An owner transaction sent but never booked that adds a single satoshi: the watcher books a top-up (the
    budget one satoshi larger), not a refill."""
    bounty_id = pool(rt, prizes=2)
    with rt.session() as session:
        bounty, deployment = live_pool(session, bounty_id)
        reserve, budget = reserve_utxo(rt, deployment), bounty.budget_sats
    tx = rt.wallet.build_pool_move(rt.chain, bounty_id, reserve=reserve, add=1, fee_rate=rt.settings.fee_rate)
    rt.chain.broadcast(tx)  # ... and the service stopped here
    settle(rt)
    with rt.session() as session:
        move = session.scalar(select(PoolMove).where(PoolMove.txid == tx.txid()))
        assert move is not None and (str(move.kind), move.added_sats) == ("top_up", 1)
        assert session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id)) == budget + 1
    books(rt, bounty_id)


def test_a_reserve_of_one_satoshi_is_the_pools_and_is_withdrawn(rt: Runtime) -> None:
    bounty_id = pool_without_reserve(rt, reserve=1)
    with rt.session() as session:
        reserve = reserve_utxo(rt, live_pool(session, bounty_id)[1])
    assert reserve is not None and reserve.satoshis == 1
    withdrawn = withdraw_bounty(rt, bounty_id)
    tx = rt.chain.get_transaction(withdrawn.withdraw_txid)
    assert tx is not None and (reserve.txid, reserve.vout) in {(i.source_txid, i.source_output_index)
                                                               for i in tx.inputs}
    assert rt.chain.spender_of(reserve.txid, reserve.vout) is not None
    settle(rt)
    books(rt, bounty_id)


def spend(utxo: Utxo, template: object) -> TransactionInput:
    tx_input = TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout,
                                unlocking_script_template=template)
    tx_input.satoshis, tx_input.locking_script = utxo.satoshis, utxo.locking_script
    return tx_input


def test_a_claims_payee_is_its_first_real_p2pkh_output_not_one_shaped_like_it(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """An outsider's claim whose first output is an OP_RETURN of 25 bytes ending like a P2PKH script (88 ac): the
    payee is the P2PKH output after it, which gets the payout."""
    bounty_id = pool(rt, prizes=2)
    contract, utxo = first_prize(rt, bounty_id)
    look_alike = Script(b"\x00\x6a\x16" + bytes(20) + b"\x88\xac")
    assert len(look_alike.serialize()) == 25
    tx = Transaction([spend(utxo, contract.claim_unlock(digits["sevens"][0]))],
                     [TransactionOutput(look_alike, 0), TransactionOutput(P2PKH().lock(OUTSIDER.address()), 0)],
                     version=TX_VERSION)
    tx.outputs[1].satoshis = utxo.satoshis - int(SatoshisPerKilobyte(rt.settings.fee_rate).compute_fee(tx))
    rt.chain.broadcast(tx.sign())
    settle(rt)
    with rt.session() as session:
        row = session.scalar(select(Submission).where(Submission.txid == tx.txid()))
        assert row is not None and row.recipient_address == OUTSIDER.address() and row.payout is not None
        assert (row.payout.vout, row.payout.satoshis) == (1, tx.outputs[1].satoshis)
    books(rt, bounty_id)


@contextmanager
def a_watcher_step_right_after(rt: Runtime, *statement_parts: str) -> Iterator[list[bool]]:
    """The first statement (outside the watcher's own thread) that holds every part is followed, at once, by a
    whole watcher step that books what the chain shows: the other writer getting in between a look-up and its
    insert. On SQLite a session that has only read holds no lock, so the step commits before the insert runs."""
    watcher, stepped = Watcher(rt, keep=False), []

    def step_after(conn: object, cursor: object, statement: str, *_: object) -> None:
        if not stepped and threading.current_thread().name != "step" and all(p in statement for p in statement_parts):
            stepped.append(True)
            step = threading.Thread(target=watcher.run_once, name="step")
            step.start()
            step.join(timeout=60)

    event.listen(rt.engine, "after_cursor_execute", step_after)
    try:
        yield stepped
    finally:
        event.remove(rt.engine, "after_cursor_execute", step_after)


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    """SQLite only: the races below rely on its locking (a reading session holds no lock)."""
    runtime = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False))
    yield runtime
    runtime.close()


def test_a_claim_the_watcher_books_between_the_apis_look_up_and_its_insert_is_answered_and_paid_once(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    rt = sqlite_rt
    bounty_id = pool(rt, prizes=3)
    before = post(client(rt), bounty_id, digits["sevens"][1])  # another claim's row, booked before
    with a_watcher_step_right_after(rt, "FROM submissions", "submissions.input_index = ?") as stepped:
        paid = post(client(rt), bounty_id, digits["sevens"][0])
    assert stepped and paid["code"] == 202 and paid["payout_sats"] == PAYOUT, paid
    assert paid["txid"] != before["txid"] and paid["id"] != before["id"]  # its own row, not the other claim's
    with rt.session() as session:
        rows = list(session.scalars(select(Submission).where(Submission.txid == paid["txid"])))
        assert [(r.id, r.source) for r in rows] == [(paid["id"], SubmissionSource.API)]
        assert session.scalar(select(func.count(Payout.id)).where(Payout.submission_id == rows[0].id)) == 1
    settle(rt)
    books(rt, bounty_id)


@pytest.mark.parametrize("kind", ["top_up", "withdraw"])
def test_an_owner_move_the_watcher_books_between_the_services_look_up_and_its_insert_is_booked_once(
        sqlite_rt: Runtime, kind: str) -> None:
    """The service's answer is still its own move's: the budget a top-up raised, the sats a withdrawal took."""
    rt = sqlite_rt
    bounty_id = pool(rt, prizes=2)
    with rt.session() as session:
        budget = session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id))
    wallet_before = rt.wallet.balance(rt.chain)
    with a_watcher_step_right_after(rt, "FROM pool_moves", "pool_moves.txid = ?") as stepped:
        if kind == "top_up":
            assert fund_bounty(rt, bounty_id, 6_000).budget_sats == budget + 6_000
        else:
            withdrawn = withdraw_bounty(rt, bounty_id)
            assert withdrawn.withdrawn_sats > 0
            assert rt.wallet.balance(rt.chain) == wallet_before + withdrawn.withdrawn_sats
    assert stepped
    with rt.session() as session:
        moves = [str(m.kind) for m in session.scalars(
            select(PoolMove).where(PoolMove.bounty_id == bounty_id).order_by(PoolMove.id))]
    assert moves == ["deploy", kind]
    settle(rt)
    books(rt, bounty_id)


def test_a_redeploy_the_watcher_books_between_the_services_look_up_and_its_insert_starts_one_deployment(
        sqlite_rt: Runtime, tmp_path: Path, shipped: ModelArtifact) -> None:
    rt = sqlite_rt
    bounty_id = pool(rt, prizes=2)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    with a_watcher_step_right_after(rt, "FROM deployments", "deployments.deploy_txid = ?") as stepped:
        moved = redeploy(rt, bounty_id, model_id)
    assert stepped and moved.contract_version == 2 and moved.live_prizes == 2
    assert [(v, s) for v, s, _ in deployments_of(rt, bounty_id)] == [(1, "migrated"), (2, "active")]
    with rt.session() as session:
        assert [str(k) for k in session.scalars(select(PoolMove.kind).where(PoolMove.bounty_id == bounty_id)
                                                .order_by(PoolMove.id))] == ["deploy", "redeploy"]
    settle(rt)
    books(rt, bounty_id)


def test_a_claims_row_keeps_its_status_model_and_vetted_digit_from_the_api_and_from_the_chain(
        rt: Runtime, shipped: ModelArtifact, mnist: Mnist, digits: dict[str, np.ndarray]) -> None:
    """The API's answer to a claim it sent: broadcast, judged by the pool's model version 1, no appeal. A vetted
    pool's claims made on chain (the attestor signed them: a service of its own, say) as the watcher books them:
    seen, the digit paid for is the one read, or the one appealed for."""
    api = client(rt)
    sent = post(api, pool(rt, prizes=2), digits["sevens"][0])
    assert (sent["code"], sent["status"], sent["model_version"], sent["appeal"], sent["claimed_digit"]) == \
        (202, "broadcast", 1, False, None), sent
    x = mnist.x_test.reshape(-1, 784)
    z = logits(shipped.integer, x)
    order = np.argsort(-z, axis=1, kind="stable")
    gap = z[np.arange(len(z)), order[:, 0]] - z[np.arange(len(z)), order[:, 1]]
    misread = x[np.flatnonzero((mnist.y_test == 7) & (order[:, 1] == 7) & (gap <= rt.settings.appeal_gap))[0]]
    bounty_id = pool(rt, prizes=2, mode=BountyMode.VETTED)
    with rt.session() as session:
        deployment = live_pool(session, bounty_id)[1]
        contract = rt.pool(deployment)
        first, second = (prize_utxo(rt, p) for p in session.scalars(
            select(Prize).where(Prize.deployment_id == deployment.id).order_by(Prize.id)))
    plain = build_claim(contract, first, digits["sevens"][1], OUTSIDER.address(), rt.settings.fee_rate,
                        attestor=rt.attestor.sign)
    appealed = build_claim(contract, second, misread, OUTSIDER.address(), rt.settings.fee_rate,
                           attestor=rt.attestor.sign, appeal=7)
    for tx in (plain, appealed):
        rt.chain.broadcast(tx)
    watcher = Watcher(rt, keep=False)
    while watcher.run_once():
        pass
    with rt.session() as session:
        rows = {r.txid: r for r in session.scalars(select(Submission).where(Submission.bounty_id == bounty_id))}
        assert (rows[plain.txid()].status, rows[plain.txid()].appeal, rows[plain.txid()].claimed_digit,
                rows[plain.txid()].predicted_label) == (SubmissionStatus.SEEN, False, 7, 7)
        assert (rows[appealed.txid()].appeal, rows[appealed.txid()].claimed_digit) == (True, 7)
        assert rows[appealed.txid()].predicted_label != 7
    settle(rt)
    books(rt, bounty_id)


def test_undo_drop_says_whether_a_dropped_transaction_touched_a_pool_and_undoes_it_once(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A reorg drops a claim and a top-up: each touched the pool, a faucet payment did not. Undone here first,
    then again by the watcher's own reading of the drops: nothing is undone twice."""
    bounty_id = pool(rt, prizes=3)  # stocked after one claim: no refill spends the top-up's reserve
    paid = post(client(rt), bounty_id, digits["sevens"][0])
    topped = fund_bounty(rt, bounty_id, 5_000)
    settle(rt)
    with rt.session() as session:
        prize = session.scalar(select(Prize).where(Prize.spent_txid == paid["txid"]))
        assert prize is not None
        contract, utxo = rt.pool(live_pool(session, bounty_id)[1]), prize_utxo(rt, prize)
    rivals = [build_claim(contract, utxo, digits["sevens"][1], OUTSIDER.address(), rt.settings.fee_rate),
              a_rival_of(rt, bounty_id, topped.migrate_txid)]
    assert rt.local_chain is not None
    stranger = rt.local_chain.faucet(OUTSIDER.address(), 1_000)
    rt.local_chain.rollback(1, replacement=rivals)
    with rt.session() as session:
        assert undo_drop(session, rt, paid["txid"]) is True
        assert undo_drop(session, rt, topped.migrate_txid) is True
        assert undo_drop(session, rt, stranger) is False
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(Bounty.budget_sats).where(Bounty.id == bounty_id)) == topped.budget_sats - 5_000
    books(rt, bounty_id)


def test_each_prize_carries_its_share_of_its_moves_fee_and_the_shares_add_up_to_it(rt: Runtime) -> None:
    """The fee of the transaction that created prizes is split among them to the satoshi (the first ones a
    satoshi larger): what an image cost to offer is read from its prize."""
    bounty_id = pool(rt, prizes=3)
    with rt.session() as session:
        for move in session.scalars(select(PoolMove).where(PoolMove.bounty_id == bounty_id)):
            shares = session.scalars(select(Prize.creation_fee_sats).where(Prize.txid == move.txid)
                                     .order_by(Prize.vout)).all()
            if not shares:
                continue
            assert sum(shares) == move.fee_sats and max(shares) - min(shares) <= 1
            assert list(shares) == sorted(shares, reverse=True)
