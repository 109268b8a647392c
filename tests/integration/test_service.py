"""The marketplace as operators and submitters use it: HTTP in, chain and books out, on SQLite and on
this machine's PostgreSQL, with the real interpreter behind the embedded dev chain."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bsv import P2PKH, Network, PrivateKey, Transaction
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from contracts.bounty import BountyContract
from contracts.fees import SLACK_BYTES, fee_for, max_fee_bound, worst_case_bytes
from contracts.transactions import Utxo
from contracts.transactions import submission as build_submission
from marketplace import migrate
from marketplace.api import create_app
from marketplace.bounties import (
    active_deployment,
    create_bounty,
    current_utxo,
    fund_bounty,
    get_bounty,
    redeploy,
    withdraw_bounty,
)
from marketplace.chain import LocalChain
from marketplace.cli import app as cli
from marketplace.errors import ImageRefused, InvalidRequest, NotFound
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import (
    Bounty,
    BountyMode,
    BountyShape,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Payout,
    Prize,
    RejectReason,
    ReviewStatus,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    TrainingImage,
)
from marketplace.submissions import (
    _close,
    _requeue,
    appeals_awaiting_review,
    decide_appeals,
    get_submission,
    send_queued,
    submissions_of_address,
)
from marketplace.watcher import Watcher
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.support.fees import assert_fee_allowed, fee_paid
from tests.support.holding import hold_an_appeal
from tests.support.images import paper_png
from tests.support.models import register_variants, variant_artifact
from tests.support.pool_books import pool_books_failures
from tests.support.pools import rescan
from tests.support.reference import ranking_of_test_set, reading_of_test_set
from tests.support.settings import runtime_on, seed_sqlite, settings_for

USER = PrivateKey(7001, network=Network.TESTNET)
OTHER = PrivateKey(7002, network=Network.TESTNET)
PAYOUT = 500


@pytest.fixture(scope="module")
def digits(sevens: np.ndarray, shipped: ModelArtifact) -> dict[str, np.ndarray]:
    """Test images the shipped model reads as 7 (sorted by margin, widest first) and as something else."""
    read = reading_of_test_set(shipped.integer)
    return {"sevens": sevens, "others": read.x[read.labels != 7]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    runtime = runtime_on(request.param, request, tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(settings_for(tmp_path / "home"))
    yield runtime
    runtime.close()


def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt, background=False))


def settle(rt: Runtime, blocks: int = 1) -> Watcher:
    """Let the watcher read everything, mine, and read again."""
    watcher = Watcher(rt)
    while watcher.run_once():
        pass
    assert rt.local_chain is not None
    rt.local_chain.mine(blocks)
    while watcher.run_once():
        pass
    return watcher


def books_balance(rt: Runtime, bounty_id: int, foreign: frozenset[str] = frozenset()) -> None:
    """Funding - payouts - fees == what the live contract holds, to the satoshi, in the database and on chain
    (where outputs strangers paid to its script, the transactions `foreign`, are no part of it)."""
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        paid, fees = session.execute(select(func.coalesce(func.sum(Payout.satoshis), 0),
                                            func.coalesce(func.sum(Payout.fee_sats), 0))
                                     .where(Payout.bounty_id == bounty_id)).one()
        deployment = active_deployment(session, bounty)
        assert deployment is not None
        assert bounty.budget_sats - paid - fees == deployment.current_satoshis
        on_chain = [u for u in rt.chain.utxos_for_script(rt.contract(deployment).lock().serialize())
                    if u.txid not in foreign]
        assert [u.satoshis for u in on_chain] == [deployment.current_satoshis]
        assert (on_chain[0].txid, on_chain[0].vout) == (deployment.current_txid, deployment.current_vout)
        spends = session.execute(select(Payout.txid, Payout.fee_sats).where(Payout.bounty_id == bounty_id)).all()
        owner = session.scalars(select(Deployment.deploy_txid).where(Deployment.bounty_id == bounty_id)).all()
    for txid, booked_fee in spends:  # each fee what its size allows at the rate in force, to the satoshi
        tx = rt.chain.get_transaction(txid)
        assert tx is not None and assert_fee_allowed(rt.chain, tx, rt.settings.fee_rate, last=len(tx.outputs) == 1) \
            == booked_fee
    for txid in owner:  # the deploy and every migration (top-ups and redeploys)
        tx = rt.chain.get_transaction(txid)
        assert tx is not None
        assert_fee_allowed(rt.chain, tx, rt.settings.fee_rate)


def post(api: TestClient, bounty_id: int, pixels: np.ndarray, address: str = USER.address(), **fields: object
         ) -> dict:
    """A submission through the HTTP API (`fields`: `appeal`, `digit`), its JSON answer with its status `code`."""
    response = api.post(f"/bounties/{bounty_id}/submissions",
                        json={"pixels": pixels.tolist(), "address": address, **fields})
    return {**response.json(), "code": response.status_code}


def test_accepted_images_are_paid_and_confirmed(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    accepted = [post(api, bounty.id, image) for image in digits["sevens"][:3]]
    refused = post(api, bounty.id, digits["others"][0])
    assert [a["code"] for a in accepted] == [202] * 3 and all(len(a["txid"]) == 64 for a in accepted)
    assert refused["code"] == 422 and refused["refusal"]["predicted"] != 7
    settle(rt)
    receipt = api.get(f"/submissions/{accepted[0]['id']}").json()
    assert receipt["status"] == "confirmed" and receipt["digit"] == 7 and receipt["payout_sats"] == PAYOUT
    assert receipt["model_version"] == 1 and receipt["confirmations"] == 1
    view = api.get(f"/bounties/{bounty.id}").json()
    assert view["accepted_count"] == 3 and view["paid_sats"] == 3 * PAYOUT
    with rt.session() as session:
        assert session.scalar(select(func.count(Submission.id))) == 3  # the refused image cost nothing
    books_balance(rt, bounty.id)


def test_fifty_concurrent_submissions_to_one_bounty(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 2_000_000)
    api = client(rt)
    images = [*digits["sevens"][:40], *digits["others"][:10]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda image: post(api, bounty.id, image), images))
    assert [r["code"] for r in results] == [202] * 40 + [422] * 10
    assert len({r["txid"] for r in results[:40]}) == 40
    settle(rt)
    with rt.session() as session:
        statuses = session.scalars(select(Submission.status)).all()
        assert statuses == [SubmissionStatus.CONFIRMED] * 40
        assert session.scalar(select(func.count(Payout.id))) == 40
    books_balance(rt, bounty.id)


def test_a_spend_made_directly_on_chain_is_picked_up(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        assert deployment is not None
        contract = rt.contract(deployment)
    utxo = rt.chain.utxos_for_script(contract.lock().serialize())[0]
    direct = build_submission(contract, utxo, digits["sevens"][5], OTHER.address())
    rt.chain.broadcast(direct)  # someone else's wallet, not our API
    through_api = post(client(rt), bounty.id, digits["sevens"][6])  # rebuilt on the new tip
    assert through_api["code"] == 202
    settle(rt)
    with rt.session() as session:
        row = session.scalar(select(Submission).where(Submission.txid == direct.txid()))
        assert row is not None and row.source == SubmissionSource.CHAIN
        assert row.recipient_address == OTHER.address() and row.status == SubmissionStatus.CONFIRMED
        assert np.array_equal(np.frombuffer(row.pixels, np.uint8), digits["sevens"][5])
        assert row.predicted_label == 7 and row.payout is not None
        assert row.claimed_digit is None and not row.appeal  # an open bounty pays the classifier's label
        paid = direct.outputs[row.payout.vout]  # the payout row points at the output that pays the recipient
        assert (row.payout.vout, paid.satoshis, row.payout.satoshis) == (1, PAYOUT, PAYOUT)
        assert paid.locking_script.serialize() == P2PKH().lock(OTHER.address()).serialize()
    books_balance(rt, bounty.id)


def test_a_watcher_restarted_mid_stream_misses_nothing_and_counts_nothing_twice(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 200_000)
    api = client(rt)
    for image in digits["sevens"][:4]:
        assert post(api, bounty.id, image)["code"] == 202
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        assert deployment is not None
        contract = rt.contract(deployment)
    for image in digits["sevens"][4:6]:  # two more straight on chain, which only the watcher can book
        utxo = rt.chain.utxos_for_script(contract.lock().serialize())[0]
        rt.chain.broadcast(build_submission(contract, utxo, image, OTHER.address()))
    steps = 0
    while Watcher(rt).run_once(limit=2):  # a new watcher every two events: a restart each time
        steps += 1
    assert steps >= 3
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(func.count(Submission.id))) == 6
        assert session.scalar(select(func.count(Payout.id))) == 6
        assert session.scalar(select(func.count(Submission.id)).where(Submission.source == SubmissionSource.CHAIN)) == 2
    books_balance(rt, bounty.id)


def books_of_either_shape(rt: Runtime, bounty_id: int) -> None:
    """The books to the satoshi: a pool's (tests/support/pool_books.py) or a chain bounty's (`books_balance`)."""
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        shape = bounty.shape
    if shape == BountyShape.POOL:
        assert pool_books_failures(rt, bounty_id) == []
    else:
        books_balance(rt, bounty_id)


def watch_after_each_broadcast(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Until `monkeypatch.undo()`, a watcher step follows each broadcast, in its own session committed before the
    sender goes on (the window between a broadcast and its booking); returns the txids broadcast, in order."""
    broadcast, sent = rt.chain.broadcast, list[str]()

    def broadcast_then_watch(tx: Transaction) -> object:
        result = broadcast(tx)
        sent.append(tx.txid())
        Watcher(rt).run_once()
        return result

    monkeypatch.setattr(rt.chain, "broadcast", broadcast_then_watch)
    return sent


def test_a_migration_the_watcher_books_first_is_booked_once(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service broadcasts a top-up migration and the watcher books it from the chain before the service
    records it itself (the window between the two): one new deployment, and the books still balance."""
    bounty = create_bounty(rt, [7], PAYOUT, 40_000)
    sent = watch_after_each_broadcast(rt, monkeypatch)
    funded = fund_bounty(rt, bounty.id, 10_000)
    assert funded.migrate_txid == sent[0] and funded.remaining_sats == 50_000
    with rt.session() as session:
        versions = session.execute(select(Deployment.version, Deployment.status, Deployment.deploy_txid)
                                   .where(Deployment.bounty_id == bounty.id).order_by(Deployment.version)).all()
        assert session.get(Bounty, bounty.id).budget_sats == 50_000  # type: ignore[union-attr]
    assert [(v, str(s)) for v, s, _ in versions] == [(1, "migrated"), (2, "active")] and versions[1][2] == sent[0]
    monkeypatch.undo()
    books_balance(rt, bounty.id)


def test_a_reorg_orphans_what_it_drops(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    settle(rt)  # the deploy is mined; the submissions go into the next block
    ours = post(api, bounty.id, digits["sevens"][0])
    settle(rt)
    assert api.get(f"/submissions/{ours['id']}").json()["status"] == "confirmed"
    chain = rt.local_chain
    assert chain is not None
    # the block is replaced by one in which someone else's spend of the same contract output won
    mined = chain.get_transaction(ours["txid"])
    assert mined is not None
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        assert deployment is not None
        contract = rt.contract(deployment)
    source = chain.get_transaction(mined.inputs[0].source_txid)
    assert source is not None
    rival = build_submission(contract, Utxo.of(source, mined.inputs[0].source_output_index), digits["sevens"][1],
                             OTHER.address())
    chain.rollback(1, replacement=[rival])
    settle(rt)
    receipt = api.get(f"/submissions/{ours['id']}").json()
    assert receipt["status"] == "orphaned" and receipt["reason"] == RejectReason.REORGED_OUT
    assert receipt["payout_sats"] is None  # never paid, never handed to the workers
    with rt.session() as session:
        winner = session.scalar(select(Submission).where(Submission.txid == rival.txid()))
        assert winner is not None and winner.status == SubmissionStatus.CONFIRMED
    books_balance(rt, bounty.id)
    assert post(api, bounty.id, digits["sevens"][2])["code"] == 202  # the bounty goes on from the new tip



def test_a_submission_right_after_a_reorg_spends_the_contract_the_rival_left_not_dust_at_its_script(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A reorg replaces the block of our paid spend with a rival's spend of the same contract output, and a
    submission arrives before the watcher has read it: the booked outpoint is gone from the chain, so the
    service takes the largest unspent output of the contract's script, the rival's successor, and not the
    1-sat output a griefer paid to that script. It is paid once and the books balance."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        assert deployment is not None
        contract = rt.contract(deployment)
    dust = _pay_to_script(rt, contract.lock().serialize(), 1)
    api = client(rt)
    settle(rt)
    ours = post(api, bounty.id, digits["sevens"][0])
    settle(rt)
    chain = rt.local_chain
    assert chain is not None
    mined = chain.get_transaction(ours["txid"])
    assert mined is not None
    source = chain.get_transaction(mined.inputs[0].source_txid)
    assert source is not None
    rival = build_submission(contract, Utxo.of(source, mined.inputs[0].source_output_index), digits["sevens"][1],
                             OTHER.address())
    chain.rollback(1, replacement=[rival])
    after = post(api, bounty.id, digits["sevens"][2])  # the watcher has not read the reorg yet
    assert after["code"] == 202 and after["payout_sats"] == PAYOUT, after
    spend = chain.get_transaction(after["txid"])
    assert spend is not None and (spend.inputs[0].source_txid, spend.inputs[0].source_output_index) == (
        rival.txid(), 0)
    settle(rt)
    assert api.get(f"/submissions/{ours['id']}").json()["status"] == "orphaned"
    assert api.get(f"/submissions/{after['id']}").json()["status"] == "confirmed"
    assert [(u.txid, u.satoshis) for u in chain.utxos_for_script(contract.lock().serialize())
            if u.txid == dust] == [(dust, 1)]  # the griefer's output untouched
    books_balance(rt, bounty.id, foreign=frozenset({dust}))



def test_a_submission_during_a_redeploy_no_one_has_booked_yet_is_refused_then_judged_by_the_new_model(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], shipped: ModelArtifact, tmp_path: Path) -> None:
    """Another process (a retraining worker) has broadcast a redeploy that this service has not booked yet: the
    contract's output now leads to a contract of another script. A submission in that moment is refused with a
    409 and nothing is sent (the service does not build a spend of the new contract as if it were the old one);
    once the watcher books the redeploy, the next image is paid under the new model."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        model = session.get(ModelVersion, model_id)
        assert deployment is not None and model is not None
        successor = rt.new_contract(model, deployment.bounty)
        contract, utxo = rt.contract(deployment), current_utxo(rt, deployment)
    redeployed = rt.wallet.build_migrate(rt.chain, contract, utxo, successor, 5_000, rt.settings.fee_rate)
    rt.chain.broadcast(redeployed)  # the other process's redeploy with a top-up (two outputs), unbooked here
    api, chain = client(rt), rt.local_chain
    assert chain is not None
    waiting = chain.stats().mempool_size
    refused = post(api, bounty.id, digits["sevens"][0])
    assert refused["code"] == 409 and "spent without a successor" in refused["detail"], refused
    assert chain.stats().mempool_size == waiting  # nothing sent
    settle(rt)
    paid = post(api, bounty.id, digits["sevens"][1])
    assert (paid["code"], paid["model_version"]) == (202, 2), paid
    settle(rt)
    books_balance(rt, bounty.id)


def test_a_rollback_without_a_rival_only_unconfirms(sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A block removed with no rival: its submissions are back to `seen`, with no block and no confirmation (the
    receipt says so), and confirmed again by the next block."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    ours = post(api, bounty.id, digits["sevens"][0])
    settle(rt)
    assert api.get(f"/submissions/{ours['id']}").json()["confirmations"] == 1
    assert rt.local_chain is not None
    rt.local_chain.rollback(1)
    Watcher(rt).run_once()
    receipt = api.get(f"/submissions/{ours['id']}").json()
    assert (receipt["status"], receipt["block_height"], receipt["confirmations"]) == ("seen", None, 0)
    settle(rt)
    assert api.get(f"/submissions/{ours['id']}").json()["status"] == "confirmed"
    books_balance(rt, bounty.id)


def test_submissions_wait_for_a_block_when_the_unconfirmed_chain_is_too_long(
        tmp_path: Path, digits: dict[str, np.ndarray]) -> None:
    settings = settings_for(tmp_path / "home")
    rt = Runtime(settings, chain=LocalChain(settings.chain_path, max_unconfirmed_ancestors=3))
    migrate.upgrade(settings.database)
    bounty = create_bounty(rt, [7], PAYOUT, 200_000)
    api = client(rt)
    results = [post(api, bounty.id, image) for image in digits["sevens"][:5]]
    assert all(r["code"] == 202 for r in results)
    queued = [r for r in results if r["txid"] is None]
    assert queued and all(r["status"] == "pending" for r in [api.get(f"/submissions/{q['id']}").json()
                                                           for q in queued])
    watcher = Watcher(rt, on_block=lambda: send_queued(rt))
    for _ in range(4):
        assert rt.local_chain is not None
        rt.local_chain.mine(1)
        while watcher.run_once():
            pass
    settle(rt)
    assert all(api.get(f"/submissions/{r['id']}").json()["status"] == "confirmed" for r in results)
    books_balance(rt, bounty.id)
    rt.close()


def test_an_exhausted_bounty_refuses_cleanly(sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, PAYOUT + 15_000, max_fee=15_000)  # one payout, fee included
    api = client(rt)
    first = post(api, bounty.id, digits["sevens"][0])
    assert first["code"] == 202
    second = post(api, bounty.id, digits["sevens"][1])
    assert second["code"] == 409 and "takes no submissions" in second["detail"]
    settle(rt)
    assert api.get(f"/bounties/{bounty.id}").json()["status"] == "exhausted"


def test_an_uploaded_photo_is_judged_like_the_pixels(sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    photo = paper_png(digits["sevens"][0], 8)  # dark ink on light paper, 224x224
    verdict = api.post("/classify", files={"image": ("seven.png", photo, "image/png")},
                       data={"bounty_id": str(bounty.id)}).json()
    assert verdict["label"] == 7 and verdict["accepted"] is True
    paid = api.post(f"/bounties/{bounty.id}/submissions", files={"image": ("seven.png", photo, "image/png")},
                    data={"address": USER.address()})
    assert paid.status_code == 202 and paid.json()["digit"] == 7


HOSTILE = [
    ("784 pixels expected", {"json": {"pixels": [0] * 783, "address": USER.address()}}),
    ("785 pixels", {"json": {"pixels": [0] * 785, "address": USER.address()}}),
    ("pixel 256", {"json": {"pixels": [256] + [0] * 783, "address": USER.address()}}),
    ("negative pixel", {"json": {"pixels": [-1] + [0] * 783, "address": USER.address()}}),
    ("non-integer", {"json": {"pixels": [1.5] + [0] * 783, "address": USER.address()}}),
    ("string pixel", {"json": {"pixels": ["7"] + [0] * 783, "address": USER.address()}}),
    ("missing address", {"json": {"pixels": [0] * 784}}),
    ("broken JSON", {"content": b'{"pixels": [0, 0', "headers": {"content-type": "application/json"}}),
    ("JSON array", {"json": [1, 2, 3]}),
    ("empty body", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("invalid address", {"json": {"pixels": [0] * 784, "address": "not-an-address"}}),
    ("mainnet address", {"json": {"pixels": [0] * 784, "address": PrivateKey(5).address()}}),
    ("not an image", {"files": {"image": ("x.png", b"hello, world", "image/png")}, "data": {"address": "x"}}),
    ("truncated PNG", {"files": {"image": ("x.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png")},
                       "data": {"address": USER.address()}}),
    ("oversized upload", {"files": {"image": ("x.png", b"\x89PNG" + b"\0" * 2_100_000, "image/png")},
                          "data": {"address": USER.address()}}),
    ("form without image", {"data": {"address": USER.address()}, "files": {"other": ("x", b"1", "text/plain")}}),
]


@pytest.mark.parametrize("case, request_kwargs", HOSTILE, ids=[c for c, _ in HOSTILE])
def test_hostile_input_gets_a_4xx_and_writes_nothing(sqlite_rt: Runtime, case: str, request_kwargs: dict) -> None:
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000) if case == HOSTILE[0][0] else None
    api = client(rt)
    bounty_id = bounty.id if bounty else 1
    if bounty is None:
        with rt.session() as session:
            if session.get(Bounty, 1) is None:
                create_bounty(rt, [7], PAYOUT, 100_000)
    response = api.post(f"/bounties/{bounty_id}/submissions", **request_kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    with rt.session() as session:
        assert session.scalar(select(func.count(Submission.id))) == 0


def test_unknown_bounty_and_submission_are_404(sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    api = client(sqlite_rt)
    assert post(api, 99, digits["sevens"][0])["code"] == 404
    assert api.get("/submissions/12345").status_code == 404
    assert api.get("/bounties/12345").status_code == 404


def test_each_client_is_rate_limited(tmp_path: Path, digits: dict[str, np.ndarray]) -> None:
    rt = open_runtime(settings_for(tmp_path / "home", rate_limit_per_minute=6))
    api = client(rt)
    codes = [api.post("/classify", json={"pixels": digits["sevens"][0].tolist()}).status_code for _ in range(4)]
    assert codes[0] == 200 and codes[-1] == 429
    limited = api.post("/classify", json={"pixels": digits["sevens"][0].tolist()})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert api.get("/healthz").status_code == 200  # reads are not limited
    rt.close()


def test_openapi_and_page_are_served(sqlite_rt: Runtime) -> None:
    api = client(sqlite_rt)
    schema = api.get("/openapi.json").json()
    assert {"/bounties", "/bounties/{bounty_id}", "/bounties/{bounty_id}/submissions", "/classify",
            "/submissions/{submission_id}", "/healthz"} <= set(schema["paths"])
    assert "<canvas" in api.get("/").text


def test_operator_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    seed_sqlite(tmp_path / "home")  # a database at the newest schema (tests/support/settings.py)
    from marketplace.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(cli, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    created = run("create", "--digit", "3", "--digit", "8", "--payout", "700", "--budget", "50000",
                  "--shape", "chain")
    assert created["digits"] == [3, 8] and created["remaining_sats"] == 50_000
    funded = run("fund", str(created["id"]), "25000")
    assert funded["remaining_sats"] == 75_000 and funded["contract_version"] == 2
    assert run("status", str(created["id"]))["budget_sats"] == 75_000
    assert [b["id"] for b in run("list")["bounties"]] == [created["id"]]
    assert run("submissions", str(created["id"])) == {"submissions": []}
    withdrawn = run("withdraw", str(created["id"]))
    assert withdrawn["status"] == "withdrawn" and 70_000 < withdrawn["withdrawn_sats"] < 75_000
    export = runner.invoke(cli, ["export", str(created["id"])])
    assert [d["version"] for d in json.loads(export.stdout)["deployments"]] == [1, 2]
    refused = runner.invoke(cli, ["withdraw", str(created["id"])])
    assert refused.exit_code == 1 and "takes no submissions" in refused.stderr
    missing = runner.invoke(cli, ["status", "42"])
    assert missing.exit_code == 1 and missing.stderr.strip() == "error: there is no bounty 42"
    get_settings.cache_clear()


def test_confirmed_images_are_kept_once_and_reviewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     digits: dict[str, np.ndarray]) -> None:
    from marketplace.settings import get_settings
    from workers.persistence import persist_accepted, persist_confirmed

    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    seed_sqlite(tmp_path / "home")  # a database at the newest schema (tests/support/settings.py)
    get_settings.cache_clear()
    rt = open_runtime(get_settings())
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    first, _second, copy = (post(api, bounty.id, image) for image in
                          (digits["sevens"][0], digits["sevens"][1], digits["sevens"][0]))
    assert persist_accepted(rt, first["id"]) is None  # not confirmed yet: nothing kept
    settle(rt)
    kept = persist_accepted(rt, first["id"])
    assert kept is not None and persist_accepted(rt, first["id"]) == kept  # a repeat delivery stores nothing
    assert persist_confirmed(rt) == 2 and persist_confirmed(rt) == 0
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["review", "list", "--json"]).stdout)["images"]
    assert [row["review"] for row in listed] == ["pending", "pending", "excluded"]  # the copy of the first
    assert listed[2]["duplicate_of"] == listed[0]["id"]
    assert get_submission(rt, copy["id"]).status == "confirmed"  # still paid: the contract judged it
    approved = runner.invoke(cli, ["review", "approve", str(listed[0]["id"]), "--json"])
    excluded = runner.invoke(cli, ["review", "exclude", str(listed[1]["id"]), "--json"])
    assert json.loads(approved.stdout)["images"][0]["review"] == "approved"
    assert json.loads(excluded.stdout)["images"][0]["review"] == "excluded"
    unknown = runner.invoke(cli, ["review", "approve", "999"])
    assert unknown.exit_code == 1 and "no training image 999" in unknown.stderr
    rt.close()
    get_settings.cache_clear()


# -- griefing: outputs paid to the contract's own script by someone else ---------------------------------

GRIEFER = PrivateKey(7003, network=Network.TESTNET)


def _pay_to_script(rt: Runtime, script: bytes, amount: int) -> str:
    """An outsider pays `amount` sats to the contract's locking script (anyone can)."""
    from bsv import Script, TransactionOutput

    from contracts.transactions import pay

    chain = rt.local_chain
    assert chain is not None
    chain.faucet(GRIEFER.address(), amount + 100_000)
    coins = chain.utxos_for_address(GRIEFER.address())
    tx = pay([TransactionOutput(Script(script), amount)], coins, GRIEFER, GRIEFER.address(), rt.settings.fee_rate)
    chain.broadcast(tx)
    return tx.txid()


@pytest.mark.parametrize("grief", [1, 10_000, 200_000])  # 200,000: more than the contract holds
def test_foreign_outputs_paid_to_the_script_neither_stall_nor_exhaust_the_bounty(
        rt: Runtime, digits: dict[str, np.ndarray], grief: int) -> None:
    """Measured on main: 1 sat paid to the bounty's script made every later submission fail with 409 and
    `withdraw` fail; 10,000 sats made the service spend that output and mark the bounty exhausted while the
    real contract still held its balance. The live contract is the booked outpoint, followed along its spends,
    however much more than the contract a foreign output holds."""
    bounty = create_bounty(rt, [7], PAYOUT, 60_000)
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        assert deployment is not None
        script = rt.contract(deployment).lock().serialize()
        funded_outpoint = (deployment.current_txid, deployment.current_vout)
    foreign = _pay_to_script(rt, script, grief)
    settle(rt)
    api = client(rt)
    for pixels in digits["sevens"][:3]:
        paid = post(api, bounty.id, pixels)
        assert paid["code"] == 202 and paid["status"] == "broadcast", paid
    settle(rt)
    with rt.session() as session:
        b = session.get(Bounty, bounty.id)
        assert b is not None and b.status == "active"
        deployment = active_deployment(session, b)
        assert deployment is not None
        paid_sats, fees = session.execute(select(func.coalesce(func.sum(Payout.satoshis), 0),
                                                 func.coalesce(func.sum(Payout.fee_sats), 0))
                                          .where(Payout.bounty_id == b.id)).one()
        assert paid_sats == 3 * PAYOUT
        # every payment came out of the contract's own chain of outputs, none out of the foreign one
        assert b.budget_sats - paid_sats - fees == deployment.current_satoshis
        assert deployment.current_txid not in (foreign, funded_outpoint[0])
    on_chain = {(u.txid, u.vout): u.satoshis for u in rt.chain.utxos_for_script(script)}
    assert on_chain == {(deployment.current_txid, 0): deployment.current_satoshis, (foreign, 0): grief}
    withdrawn = withdraw_bounty(rt, bounty.id)  # the owner's path takes the contract, not the foreign output
    assert deployment.current_satoshis - 10_000 < withdrawn.withdrawn_sats < deployment.current_satoshis



def test_every_owner_transaction_of_a_chain_bounty_pays_the_fee_rate_in_force(
        tmp_path: Path, digits: dict[str, np.ndarray], shipped: ModelArtifact) -> None:
    """At a rate other than the wallet's default (250 sat/kB; the default is 100): the deploy, a top-up, a
    redeploy and the withdrawal each pay what their size costs at that rate, to the satoshi."""
    rt = open_runtime(settings_for(tmp_path / "home", fee_rate=250, novelty_index_mnist_test=False))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 100_000)
        assert post(client(rt), bounty.id, digits["sevens"][0])["code"] == 202
        fund_bounty(rt, bounty.id, 10_000)
        (model_id,) = register_variants(rt, shipped, tmp_path, 1)
        redeploy(rt, bounty.id, model_id)
        settle(rt)
        books_balance(rt, bounty.id)  # the deploy, both migrations and the payout, each at 250 sat/kB
        withdrawal = rt.chain.get_transaction(withdraw_bounty(rt, bounty.id).withdraw_txid)
        assert withdrawal is not None
        assert_fee_allowed(rt.chain, withdrawal, 250)
    finally:
        rt.close()



def test_a_bounty_judges_with_the_model_it_was_created_with_else_with_the_newest_registered(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], shipped: ModelArtifact, tmp_path: Path) -> None:
    """`bounty create --model PATH` judges with that artifact (registered on first use, once); without it, a
    bounty judges with the newest registered model, and the very first one with the settings' model. The terms
    left out are the defaults: no margin."""
    rt = sqlite_rt
    first = create_bounty(rt, [7], PAYOUT, 100_000)
    assert (first.model_version, first.weights_sha256, first.min_margin) == (1, shipped.weights_sha256, 0)
    assert (first.accepted_count, first.paid_sats, first.fees_spent_sats) == (0, 0, 0)  # nothing paid yet
    path = variant_artifact(shipped, tmp_path, 1)
    chosen = create_bounty(rt, [7], PAYOUT, 100_000, model_path=path)
    again = create_bounty(rt, [7], PAYOUT, 100_000, model_path=path)
    newest = create_bounty(rt, [7], PAYOUT, 100_000)
    assert [b.model_version for b in (chosen, again, newest)] == [2, 2, 2]
    assert chosen.weights_sha256 == rt.artifact(path).weights_sha256 != shipped.weights_sha256
    paid = post(client(rt), chosen.id, digits["sevens"][0])
    assert (paid["code"], paid["model_version"]) == (202, 2), paid
    settle(rt)
    books_balance(rt, chosen.id)


def test_a_withdrawn_bounty_shows_its_own_last_contract_and_nothing_left(
        sqlite_rt: Runtime, shipped: ModelArtifact, tmp_path: Path) -> None:
    """After a redeploy and a withdrawal no contract of the bounty is active: its view shows its own last one
    (version 2, under the new model), nothing remaining and no image left, though another bounty holds more
    deployments and a higher version."""
    rt = sqlite_rt
    other = create_bounty(rt, [3], PAYOUT, 100_000)
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    first, second = register_variants(rt, shipped, tmp_path, 2)
    redeploy(rt, other.id, first)
    assert redeploy(rt, other.id, second).contract_version == 3
    moved = redeploy(rt, bounty.id, first)
    withdraw_bounty(rt, bounty.id)
    shown = get_bounty(rt, bounty.id)
    assert (shown.status, shown.contract_version, shown.model_version, shown.contract_txid) == (
        "withdrawn", 2, 2, moved.migrate_txid)
    assert (shown.remaining_sats, shown.images_left) == (0, 0)
    assert get_bounty(rt, other.id).images_left > 0


def test_a_budget_that_cannot_pay_one_image_is_refused_and_nothing_is_written(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """Measured on main: `create --budget 1000` made an active bounty that could never pay (each image costs
    its payout plus about 8,600 sats of fee at 100 sat/kB; about 6,700 with today's default model)."""
    with pytest.raises(InvalidRequest, match=r"cannot pay one image: .* must be at least 7,\d{3} sats"):
        create_bounty(rt, [7], PAYOUT, 1_000)
    with rt.session() as session:
        assert session.scalar(select(func.count(Bounty.id))) == 0
    created = create_bounty(rt, [7], PAYOUT, 7_300)  # payout + the largest fee: one image
    assert created.max_fee_sats + PAYOUT <= 7_300
    assert post(client(rt), created.id, digits["sevens"][0])["code"] == 202


# -- edges that let money leak if they break (issue 16's surviving mutants) ------------------------------------

def test_an_image_the_bounty_would_pay_is_refused_for_a_bad_or_wrong_network_address(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """The address checks must hold on their own: the image here is one the contract would pay for."""
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    mainnet = PrivateKey(7201, network=Network.MAINNET).address()
    for address, words in [(mainnet, "mainnet address"), ("1" * 34, "is not a Bitcoin SV address"),
                           (USER.address()[:-1] + ("A" if USER.address()[-1] != "A" else "B"), "is not a Bitcoin SV")]:
        refused = post(api, bounty.id, digits["sevens"][0], address)
        assert refused["code"] == 422 and words in refused["detail"], refused
    assert post(api, bounty.id, digits["sevens"][0])["code"] == 202  # the same image, a good address: paid
    settle(rt)
    books_balance(rt, bounty.id)


def test_a_margin_above_zero_is_enforced_through_the_api(rt: Runtime, shipped: ModelArtifact,
                                                         digits: dict[str, np.ndarray]) -> None:
    """A 7 below the bounty's margin gets a 422 with the reading (never a 500 from the script's refusal), one
    above it is paid."""
    _, margins = classify(shipped.integer, digits["sevens"])
    median = int(np.median(margins))
    bounty = create_bounty(rt, [7], PAYOUT, 100_000, min_margin=median)
    api = client(rt)
    low = digits["sevens"][int(np.flatnonzero(margins < median)[0])]
    high = digits["sevens"][int(np.flatnonzero(margins > median)[0])]
    refused = post(api, bounty.id, low)
    assert refused["code"] == 422 and refused["refusal"]["predicted"] == 7 and refused["refusal"]["margin"] < median
    assert "too close to call" in refused["detail"]
    assert post(api, bounty.id, high)["code"] == 202
    settle(rt)
    books_balance(rt, bounty.id)
    # exactly at the margin is paid: the contract compares with OP_GREATERTHANOREQUAL, and so must the service
    at = int(np.flatnonzero(margins > 0)[-1])
    exact = create_bounty(rt, [7], PAYOUT, 100_000, min_margin=int(margins[at]))
    assert post(api, exact.id, digits["sevens"][at])["code"] == 202
    settle(rt)
    books_balance(rt, exact.id)


def test_a_submission_is_confirmed_only_with_the_configured_confirmations(tmp_path: Path,
                                                                          digits: dict[str, np.ndarray]) -> None:
    rt = open_runtime(settings_for(tmp_path / "home", min_confirmations=3))
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    sent = post(api, bounty.id, digits["sevens"][0])
    seen = []
    for _ in range(3):
        settle(rt)  # one block each
        seen.append(api.get(f"/submissions/{sent['id']}").json()["status"])
    assert seen == ["seen", "seen", "confirmed"], seen
    rt.close()


def test_each_confirmed_submission_is_handed_to_the_workers_once_by_its_id(tmp_path: Path,
                                                                         digits: dict[str, np.ndarray]) -> None:
    """The watcher hands a submission to the workers (`on_confirmed`: keep the image, retrain) when it reaches the
    configured confirmations, once, by its id, even when its confirming block shares a step with a later event;
    neither the blocks that follow nor a watcher that reads the whole history again hand it over twice. A step
    calls `on_block` (send the queued claims) only when it read a block."""
    rt = open_runtime(settings_for(tmp_path / "home", min_confirmations=2))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 100_000)
        api = client(rt)
        ids = [post(api, bounty.id, image)["id"] for image in digits["sevens"][:2]]
        handed: list[int] = []
        blocks_read: list[None] = []
        watcher = Watcher(rt, on_confirmed=handed.append, on_block=lambda: blocks_read.append(None))
        handed_after_each_step, blocks_after_each_step = [], []
        for block in range(5):
            if block == 2:  # after the block that confirms the first two, before the watcher reads it
                ids.append(post(api, bounty.id, digits["sevens"][2])["id"])
            while watcher.run_once():
                pass
            handed_after_each_step.append(list(handed))
            blocks_after_each_step.append(len(blocks_read))
            assert rt.local_chain is not None
            rt.local_chain.mine(1)
        assert handed_after_each_step == [[], [], ids[:2], ids[:2], ids]
        assert blocks_after_each_step == [0, 1, 2, 3, 4]
        handed_again: list[int] = []
        rescan(rt, on_confirmed=handed_again.append)  # a watcher that lost its cursor reads every event again
        assert handed_again == []
        assert [get_submission(rt, i).status for i in ids] == ["confirmed"] * 3
    finally:
        rt.close()


def _live_contract(rt: Runtime, bounty_id: int) -> tuple[BountyContract, Utxo]:
    with rt.session() as session:
        deployment = active_deployment(session, session.get(Bounty, bounty_id))  # type: ignore[arg-type]
        assert deployment is not None
        contract = rt.contract(deployment)
        outpoint = (deployment.current_txid, deployment.current_vout)
    source = rt.chain.get_transaction(outpoint[0])
    assert source is not None
    return contract, Utxo.of(source, outpoint[1])


def test_submissions_and_a_withdrawal_pay_exactly_the_fee_their_size_needs(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    for image in digits["sevens"][:2]:
        assert post(api, bounty.id, image)["code"] == 202
    settle(rt)
    books_balance(rt, bounty.id)  # each submission's fee checked against its size
    _, utxo = _live_contract(rt, bounty.id)
    withdrawn = withdraw_bounty(rt, bounty.id)
    tx = rt.chain.get_transaction(withdrawn.withdraw_txid)
    assert tx is not None
    fee = assert_fee_allowed(rt.chain, tx, rt.settings.fee_rate)
    assert fee == fee_for(tx.byte_length(), rt.settings.fee_rate)  # a P2PKH-signed spend: its size is exact
    assert withdrawn.withdrawn_sats == utxo.satoshis - fee


def test_the_default_maximum_fee_is_the_largest_spends_fee_not_more(sqlite_rt: Runtime) -> None:
    """The bound is the fixed point: the fee, at the rate in force, of the largest spend of the contract that
    carries this very bound (plus the builders' slack). More would let each spend take more from the bounty."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    contract, _ = _live_contract(rt, bounty.id)
    assert contract.terms.max_fee == bounty.max_fee_sats
    largest = worst_case_bytes(contract)
    assert bounty.max_fee_sats == fee_for(largest + SLACK_BYTES, rt.settings.fee_rate)
    assert max_fee_bound(contract, rt.settings.fee_rate) == bounty.max_fee_sats


def test_a_lost_race_is_rebuilt_on_the_rivals_successor(sqlite_rt: Runtime, digits: dict[str, np.ndarray],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone else's spend of the same contract output reaches the chain between our build and our broadcast
    (injected at the chain: the real broadcast refuses ours as a double spend): ours is rebuilt and paid."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    contract, _ = _live_contract(rt, bounty.id)
    chain, broadcast = rt.chain, rt.chain.broadcast
    tried: list[Transaction] = []

    def rival_lands_first(tx: Transaction) -> object:
        if not tried:
            source = chain.get_transaction(tx.inputs[0].source_txid)
            assert source is not None
            tried.append(build_submission(contract, Utxo.of(source, tx.inputs[0].source_output_index),
                                          digits["sevens"][1], OTHER.address()))
            broadcast(tried[0])
        tried.append(tx)
        return broadcast(tx)

    monkeypatch.setattr(chain, "broadcast", rival_lands_first)
    ours = post(client(rt), bounty.id, digits["sevens"][0])
    monkeypatch.undo()
    assert ours["code"] == 202, ours
    rival, lost, rebuilt = tried
    assert lost.inputs[0].source_txid == rival.inputs[0].source_txid and ours["txid"] == rebuilt.txid()
    assert (rebuilt.inputs[0].source_txid, rebuilt.inputs[0].source_output_index) == (rival.txid(), 0)
    settle(rt)
    with rt.session() as session:
        assert session.scalar(select(func.count(Payout.id))) == 2
    books_balance(rt, bounty.id)


def test_near_copies_of_a_kept_image_are_excluded_from_training(sqlite_rt: Runtime,
                                                                digits: dict[str, np.ndarray]) -> None:
    from workers.persistence import NEAR_MAX_DIFFERING, NEAR_PIXEL_DELTA, persist_confirmed

    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    first, another = digits["sevens"][0], digits["sevens"][3]
    blank = np.flatnonzero(first == 0)  # background pixels, moved past the threshold below
    near, far, faint = first.copy(), first.copy(), first.copy()
    near[blank[:NEAR_MAX_DIFFERING]] = NEAR_PIXEL_DELTA + 1
    far[blank[:NEAR_MAX_DIFFERING + 1]] = NEAR_PIXEL_DELTA + 1
    faint[blank[:NEAR_MAX_DIFFERING + 1]] = NEAR_PIXEL_DELTA  # moved by the threshold itself: not "differing"
    sent = [post(api, bounty.id, image) for image in (first, another, near, far, faint)]
    assert [s["code"] for s in sent] == [202] * 5, sent
    settle(rt)
    assert persist_confirmed(rt) == 5
    with rt.session() as session:
        kept = [session.scalar(select(TrainingImage).where(TrainingImage.submission_id == s["id"])) for s in sent]
        assert all(kept)
        copies = [(k.duplicate_of, k.review) for k in kept]  # type: ignore[union-attr]
    original = (kept[0].id, ReviewStatus.EXCLUDED)  # type: ignore[union-attr]
    assert copies == [(None, ReviewStatus.PENDING), (None, ReviewStatus.PENDING), original,
                      (None, ReviewStatus.PENDING), original]


def test_each_worker_finds_near_copies_kept_by_the_others_even_when_their_commit_came_late(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """Each worker process holds the kept images in memory and reads only what is new (workers.kept_images): a
    near copy of an image another worker kept is still caught, also when that worker's row, with a lower id,
    committed after this worker had read a higher one."""
    from workers.persistence import persist_accepted

    rt, sevens = sqlite_rt, digits["sevens"]
    other = open_runtime(rt.settings)  # a second worker on the same database
    blank = np.flatnonzero(sevens[3] == 0)
    late = sevens[3].copy()
    near_late = late.copy()
    near_late[blank[:3]] = 255
    near_first = sevens[0].copy()
    near_first[np.flatnonzero(sevens[0] == 0)[:3]] = 255
    confirmed_spends(rt, [(sevens[0], None), (sevens[1], None), (sevens[2], None), (late, None),
                          (near_first, None), (near_late, None)])
    with rt.session() as session:
        ids = list(session.scalars(select(Submission.id).order_by(Submission.id)))
    try:
        assert persist_accepted(rt, ids[0]) is not None  # this worker now holds image 1
        assert persist_accepted(other, ids[1]) is not None
        with other.session() as session:  # the other worker's insert took id 10 and committed at once ...
            row = session.get(Submission, ids[2])
            assert row is not None
            session.add(TrainingImage(id=10, spend_key=f"{row.txid}:0", submission_id=row.id, bounty_id=row.bounty_id,
                                      label=7, pixels=row.pixels, pixels_sha256="a" * 64))
        assert persist_accepted(rt, ids[4]) is not None  # (this worker reads up to id 10 here)
        with other.session() as session:  # ... while its insert with id 9 committed only now
            row = session.get(Submission, ids[3])
            assert row is not None
            session.add(TrainingImage(id=9, spend_key=f"{row.txid}:0", submission_id=row.id, bounty_id=row.bounty_id,
                                      label=7, pixels=row.pixels, pixels_sha256="b" * 64))
        assert persist_accepted(rt, ids[5]) is not None
    finally:
        other.close()
    with rt.session() as session:
        copies = {i.submission_id: i.duplicate_of for i in session.scalars(select(TrainingImage))}
        first_image = session.scalar(select(TrainingImage.id).where(TrainingImage.submission_id == ids[0]))
    assert copies[ids[4]] == first_image  # kept by this worker, found again
    assert copies[ids[5]] == 9  # the late commit, found
    assert copies[ids[1]] is None and copies[ids[0]] is None


def confirmed_spends(rt: Runtime, spends: list[tuple[np.ndarray, int | None]]) -> None:
    """Confirmed spends of one bounty read as 7s, each (image, the digit claimed by an appeal or None), as the
    watcher books them: what the workers keep comes from these rows alone."""
    bounty = create_bounty(rt, [1, 7], PAYOUT, 100_000)
    with rt.session() as session:
        for n, (image, claimed) in enumerate(spends):
            session.add(Submission(bounty_id=bounty.id, txid=f"{n:064x}", pixels=image.tobytes(),
                                   recipient_address=USER.address(), recipient_pkh="00" * 20, predicted_label=7,
                                   margin=1, model_sha256="00" * 32, claimed_digit=claimed,
                                   appeal=claimed is not None, source=SubmissionSource.CHAIN,
                                   status=SubmissionStatus.CONFIRMED))


def test_every_fifth_image_kept_of_a_digit_is_held_out_copies_not_counted(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    from workers.persistence import HOLDOUT_EVERY, persist_confirmed

    sevens = digits["sevens"]
    order = [sevens[0], sevens[1], sevens[0], *sevens[2:2 * HOLDOUT_EVERY]]  # the third is a copy of the first
    ones = [(image, 1) for image in sevens[20:20 + HOLDOUT_EVERY - 1]]  # appeals paid as 1s: counted apart
    confirmed_spends(sqlite_rt, [*ones, *((image, None) for image in order)])
    assert persist_confirmed(sqlite_rt) == len(ones) + len(order)
    with sqlite_rt.session() as session:
        kept = session.scalars(select(TrainingImage).where(TrainingImage.label == 7).order_by(TrainingImage.id)).all()
        assert not any(session.scalars(select(TrainingImage.holdout).where(TrainingImage.label == 1)))
    assert [k.duplicate_of is not None for k in kept] == [False, False, True] + [False] * (len(order) - 3)
    originals = [k.holdout for k in kept if k.duplicate_of is None]
    assert originals == ([False] * (HOLDOUT_EVERY - 1) + [True]) * 2 and not kept[2].holdout


def test_an_image_is_kept_under_the_digit_paid_for_and_an_exact_copy_under_any_digit_is_excluded(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A vetted payment's label is the digit it was paid for (an appeal's claim), not the model's reading; an
    exact copy is a copy whatever label it came with (near copies count only under the same label)."""
    from workers.persistence import persist_confirmed

    rt = sqlite_rt
    image = digits["sevens"][0]
    near = image.copy()
    near[np.flatnonzero(image == 0)[:3]] = 255  # a near copy, paid as a 1: another label, so not a copy
    confirmed_spends(rt, [(image, None), (image, 1), (near, 1)])  # one image paid as a 7, then (an appeal) as a 1
    assert persist_confirmed(rt) == 3
    with rt.session() as session:
        first, appeal, other = session.scalars(select(TrainingImage).order_by(TrainingImage.id)).all()
        assert (first.label, first.duplicate_of, first.review) == (7, None, ReviewStatus.PENDING)
        assert (appeal.label, appeal.duplicate_of, appeal.review) == (1, first.id, ReviewStatus.EXCLUDED)
        assert (other.label, other.duplicate_of, other.review) == (1, None, ReviewStatus.PENDING)


def test_the_last_image_a_budget_pays_exhausts_the_bounty_to_the_satoshi(sqlite_rt: Runtime,
                                                                          digits: dict[str, np.ndarray]) -> None:
    """A budget of one image: its spend has no successor and takes what remains after the payout as fee; the
    contract then holds nothing, in the books and on chain."""
    rt = sqlite_rt
    probe = create_bounty(rt, [7], PAYOUT, 100_000)
    bounty = create_bounty(rt, [7], PAYOUT, PAYOUT + probe.max_fee_sats)  # all the fee a spend may take
    contract, _ = _live_contract(rt, bounty.id)
    assert post(client(rt), bounty.id, digits["sevens"][0])["code"] == 202
    settle(rt)
    with rt.session() as session:
        deployment = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty.id))
        payout = session.scalar(select(Payout).where(Payout.bounty_id == bounty.id))
        assert deployment is not None and payout is not None
        assert (deployment.status, deployment.current_satoshis) == (DeploymentStatus.EXHAUSTED, 0)
        assert payout.satoshis + payout.fee_sats == bounty.budget_sats
    tx = rt.chain.get_transaction(payout.txid)
    assert tx is not None and len(tx.outputs) == 1
    assert assert_fee_allowed(rt.chain, tx, rt.settings.fee_rate, last=True) == payout.fee_sats
    assert rt.chain.utxos_for_script(contract.lock().serialize()) == []
    view = client(rt).get(f"/bounties/{bounty.id}").json()
    assert (view["status"], view["remaining_sats"]) == ("exhausted", 0)


def test_a_withdrawal_made_directly_on_chain_closes_the_bounty(sqlite_rt: Runtime,
                                                               digits: dict[str, np.ndarray]) -> None:
    """The owner's key spends the contract without the service (another copy of the wallet): the watcher
    books the bounty withdrawn, and the API stops taking images for it."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    contract, utxo = _live_contract(rt, bounty.id)
    rt.chain.broadcast(rt.wallet.build_withdraw(contract, utxo, rt.settings.fee_rate))
    settle(rt)
    api = client(rt)
    assert api.get(f"/bounties/{bounty.id}").json()["status"] == "withdrawn"
    with rt.session() as session:
        deployment = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty.id))
        assert deployment is not None
        assert (deployment.status, deployment.current_satoshis) == (DeploymentStatus.WITHDRAWN, 0)
    refused = post(api, bounty.id, digits["sevens"][0])
    assert 400 <= refused["code"] < 500 and "withdrawn" in refused["detail"], refused


def test_a_reorg_that_drops_a_migration_puts_the_bounty_back_on_its_contract(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A top-up migration and a submission to the new contract are mined, then a reorg replaces their block
    with one where someone else's submission spent the old contract: the new deployment goes, the old one is
    live again (moved on by the rival's spend), the budget is what it was, and the books balance."""
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    settle(rt)
    old_contract, old_utxo = _live_contract(rt, bounty.id)
    fund_bounty(rt, bounty.id, 10_000)
    on_new = post(api, bounty.id, digits["sevens"][0])
    assert on_new["code"] == 202
    settle(rt)
    with rt.session() as session:
        retired = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty.id, Deployment.version == 1))
        assert retired is not None and (retired.status, retired.current_satoshis) == (DeploymentStatus.MIGRATED, 0)
    rival = build_submission(old_contract, old_utxo, digits["sevens"][1], OTHER.address())
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[rival])
    settle(rt)
    with rt.session() as session:
        versions = session.execute(select(Deployment.version, Deployment.status)
                                   .where(Deployment.bounty_id == bounty.id)).all()
        assert [(v, str(s)) for v, s in versions] == [(1, "active")]
        assert session.get(Bounty, bounty.id).budget_sats == 100_000  # type: ignore[union-attr]
        won = session.scalar(select(Submission).where(Submission.txid == rival.txid()))
        assert won is not None and won.status == SubmissionStatus.CONFIRMED and won.payout is not None
    assert api.get(f"/submissions/{on_new['id']}").json()["status"] == "orphaned"
    books_balance(rt, bounty.id)
    assert post(api, bounty.id, digits["sevens"][2])["code"] == 202  # the bounty goes on from the old contract
    settle(rt)
    books_balance(rt, bounty.id)


# -- a contributor's history (GET /submissions?address=...) --------------------------------------------------------

def test_a_payout_address_sees_its_own_submissions_newest_first_a_page_at_a_time(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    mine = [post(api, bounty.id, image)["id"] for image in digits["sevens"][:3]]
    theirs = post(api, bounty.id, digits["sevens"][3], OTHER.address())["id"]
    assert post(api, bounty.id, digits["others"][0])["code"] == 422  # refused before anything is stored
    settle(rt)

    history = api.get("/submissions", params={"address": USER.address()})
    assert history.status_code == 200
    page = history.json()
    assert (page["address"], page["total"], page["offset"], page["limit"]) == (USER.address(), 3, 0, 20)
    assert [s["id"] for s in page["submissions"]] == mine[::-1]  # newest first
    for seen in page["submissions"]:
        assert (seen["status"], seen["payout_sats"], seen["reason"], seen["reason_text"]) == (
            "confirmed", PAYOUT, None, None)
        assert seen["recipient_address"] == USER.address() and seen["txid_url"] == f"/chain/tx/{seen['txid']}"
        assert seen == api.get(f"/submissions/{seen['id']}").json()  # each as its own receipt shows it

    pages = [api.get("/submissions", params={"address": USER.address(), "limit": 2, "offset": offset}).json()
             for offset in (0, 2, 4)]
    assert [[s["id"] for s in p["submissions"]] for p in pages] == [mine[:0:-1], mine[:1], []]
    assert {p["total"] for p in pages} == {3}
    other = api.get("/submissions", params={"address": OTHER.address()}).json()
    assert [s["id"] for s in other["submissions"]] == [theirs] and other["total"] == 1
    nobody = PrivateKey(7003, network=Network.TESTNET).address()
    assert api.get("/submissions", params={"address": nobody}).json()["submissions"] == []


def test_a_history_request_with_a_bad_address_or_page_is_a_sentence(sqlite_rt: Runtime) -> None:
    api = client(sqlite_rt)
    mainnet = PrivateKey(7201, network=Network.MAINNET).address()
    answers = {
        "no address": (api.get("/submissions"), "address is missing (the payout address, the Bitcoin SV address "
                                                 "the bounty pays to)"),
        "not an address": (api.get("/submissions", params={"address": "my-wallet"}),
                           "'my-wallet' is not a Bitcoin SV address (a payout address starts with m or n on "
                           "testnet, with 1 on mainnet)"),
        "other network": (api.get("/submissions", params={"address": mainnet}),
                          f"{mainnet} is a mainnet address, but this service pays on testnet: give an address of "
                          "your testnet wallet"),
        "page too long": (api.get("/submissions", params={"address": USER.address(), "limit": 101}),
                          "limit should be less than or equal to 100"),
        "negative offset": (api.get("/submissions", params={"address": USER.address(), "offset": -1}),
                            "offset should be greater than or equal to 0"),
    }
    assert {name: (answer.status_code, answer.json()["detail"]) for name, (answer, _) in answers.items()} == {
        name: (422, sentence) for name, (_, sentence) in answers.items()}
    operation = api.get("/openapi.json").json()["paths"]["/submissions"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SubmissionHistory"}
    assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"}
    assert [p["name"] for p in operation["parameters"]] == ["address", "offset", "limit"]


def test_the_network_is_named_for_people(sqlite_rt: Runtime) -> None:
    assert client(sqlite_rt).get("/network").json() == {"name": "dev chain", "network": "testnet", "chain": "local"}


def test_a_form_without_an_address_asks_for_one_in_words(sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(sqlite_rt, [7], PAYOUT, 100_000)
    api = client(sqlite_rt)
    for fields in ({}, {"address": "  "}):
        answer = api.post(f"/bounties/{bounty.id}/submissions", data=fields,
                          files={"image": ("seven.png", paper_png(digits["sevens"][0], 4), "image/png")})
        assert (answer.status_code, answer.json()["detail"]) == (
            422, "enter your payout address: the Bitcoin SV address the bounty pays to")
    no_image = api.post(f"/bounties/{bounty.id}/submissions", data={"address": USER.address()},
                        files={"other": ("x.txt", b"x", "text/plain")})
    assert (no_image.status_code, no_image.json()["detail"]) == (
        422, "add an image: draw a digit, or upload a PNG or JPEG photo of one")


# -- submissions.py and watcher.py under mutation (issue 16): held appeals, decision lines, guards, adoptions ----

def decision_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The one line per decision on a submission (`submissions.log_decision`), in order."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("submission decision:")]


@pytest.fixture(scope="module")
def close_seconds(shipped: ModelArtifact, mnist: Mnist) -> np.ndarray:
    """Sevens the classifier ranks second, within the default appeal gap: an appeal for 7 may be paid."""
    read, ranked = reading_of_test_set(shipped.integer), ranking_of_test_set(shipped.integer)
    return read.x[np.flatnonzero((mnist.y_test == 7) & (ranked[:, 1] == 7) & (read.margins <= 4_000))]


@pytest.mark.parametrize("shape", [BountyShape.CHAIN, BountyShape.POOL])
def test_held_appeals_wait_for_an_operator_who_pays_or_refuses_each_once(
        tmp_path: Path, close_seconds: np.ndarray, shape: BountyShape, caplog: pytest.LogCaptureFixture) -> None:
    """With appeals held for review, an appeal that passed vetting is paid only when an operator approves it
    (`decide_appeals`): an unknown id decides nothing, an id named twice is paid once, a refusal pays nothing; each
    receipt keeps what vetting found beside the review's mark."""
    caplog.set_level(logging.INFO, logger="marketplace.submissions")
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, appeals_need_review=True,
                                   quota_per_payee_per_hour=0, quota_per_client_per_hour=0, pool_wait_seconds=20.0))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 200_000, mode=BountyMode.VETTED, shape=shape,
                               prizes=3 if shape == BountyShape.POOL else None)
        api = client(rt)
        held: list[dict] = []
        for image in close_seconds[:16]:
            answer = api.post(f"/bounties/{bounty.id}/submissions",
                              json={"pixels": image.tolist(), "address": USER.address(), "appeal": True})
            if answer.status_code == 202:
                held.append(answer.json())
            if len(held) == 4:
                break
        ids = [h["id"] for h in held]
        assert len(ids) == 4 and all((h["status"], h["txid"], h["vetting"]["review"]) == ("vetting", None, "awaiting")
                                     for h in held), held
        assert all(h["vetting"]["judge"]["reason"] is None and h["vetting"]["novelty"]["passed"] for h in held)
        assert [line for line in decision_lines(caplog) if "outcome=held" in line] == [
            f"submission decision: bounty={bounty.id} submission={i} outcome=held reason=- sats=0" for i in ids]
        awaiting = appeals_awaiting_review(rt)
        assert [(a.id, a.status, a.appeal, a.claimed_digit, (a.vetting or {}).get("review")) for a in awaiting] == [
            (i, "vetting", True, 7, "awaiting") for i in ids]  # oldest first

        with pytest.raises(NotFound, match=r"^no appeal awaits review as submission 99998, 99999$"):
            decide_appeals(rt, [ids[0], 99_999, 99_998], approve=True)
        assert [a.id for a in appeals_awaiting_review(rt)] == ids  # nothing decided, not even the good id

        caplog.clear()
        paid = decide_appeals(rt, [ids[1], ids[0], ids[1]], approve=True)
        refused = decide_appeals(rt, [ids[2], ids[3]], approve=False)
        assert [p.id for p in paid] == [ids[1], ids[0]]  # each once, in the order named
        for p in paid:
            assert (p.status, p.payout_sats, p.appeal, p.claimed_digit, p.reason) == (
                "broadcast", PAYOUT, True, 7, None)
            assert p.digit != 7 and (p.vetting or {}).get("review") == "approved"
            assert (p.vetting or {})["judge"]["reason"] is None and (p.vetting or {})["novelty"]["passed"]
            assert p.txid_url == f"/chain/tx/{p.txid}"
            tx = rt.chain.get_transaction(p.txid or "")
            assert tx is not None and tx.outputs[0 if shape == BountyShape.POOL else 1].satoshis == PAYOUT
        assert [(r.id, r.status, r.reason, r.txid, (r.vetting or {}).get("review"), "judge" in (r.vetting or {}))
                for r in refused] == [(i, "rejected", "refused_on_review", None, "refused", True) for i in ids[2:]]
        assert decision_lines(caplog) == [
            *(f"submission decision: bounty={bounty.id} submission={p.id} outcome=paid reason=- sats={PAYOUT}"
              for p in paid),
            *(f"submission decision: bounty={bounty.id} submission={i} outcome=refused reason=refused_on_review "
              "sats=0" for i in ids[2:])]
        assert appeals_awaiting_review(rt) == []
        with pytest.raises(NotFound):  # decided: neither paid twice nor refused after payment
            decide_appeals(rt, [ids[0]], approve=False)
        settle(rt)
        with rt.session() as session:
            rows = {r.id: r for r in session.scalars(select(Submission).where(Submission.id.in_(ids)))}
            assert [(str(rows[i].status), rows[i].payout is not None) for i in ids] == [
                ("confirmed", True), ("confirmed", True), ("rejected", False), ("rejected", False)]
            assert [rows[i].payout.recipient_address for i in ids[:2]] == [USER.address()] * 2  # type: ignore[union-attr]
        books_of_either_shape(rt, bounty.id)
    finally:
        rt.close()


def test_two_operators_approving_one_held_appeal_at_once_pay_it_once(tmp_path: Path,
                                                                     close_seconds: np.ndarray) -> None:
    """Two approvals of one held appeal that both passed `decide_appeals`' checks (two operators, two processes):
    the first, having found the appeal awaiting and in `vetting`, is held at the database until the second has
    paid; its move to `paying` then matches nothing, so it refuses instead of paying the same image again."""
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, appeals_need_review=True,
                                   quota_per_payee_per_hour=0, quota_per_client_per_hour=0))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 200_000, mode=BountyMode.VETTED)
        api = client(rt)
        held = hold_an_appeal(api, bounty.id, close_seconds[:16])
        first_at_update, second_paid = threading.Event(), threading.Event()

        def hold_the_first_approval(conn: object, cursor: object, statement: str, *_: object) -> None:
            if (threading.current_thread() is first and statement.startswith("UPDATE submissions SET vetting=")
                    and not first_at_update.is_set()):  # its review mark, before the move to `paying`
                first_at_update.set()
                second_paid.wait(60)

        outcome: list[BaseException | list] = []
        first = threading.Thread(target=lambda: outcome.append(_outcome_of(decide_appeals, rt, [held["id"]], True)))
        event.listen(rt.engine, "before_cursor_execute", hold_the_first_approval)
        first.start()
        assert first_at_update.wait(60)  # the first approval checked the row and is about to mark it
        paid = decide_appeals(rt, [held["id"]], approve=True)
        second_paid.set()
        first.join(60)
        event.remove(rt.engine, "before_cursor_execute", hold_the_first_approval)
        assert not first.is_alive()
        assert isinstance(outcome[0], InvalidRequest) and "already being paid or was decided" in str(outcome[0])
        assert [(p.id, p.status, p.payout_sats) for p in paid] == [(held["id"], "broadcast", PAYOUT)]
        settle(rt)
        with rt.session() as session:
            payouts = session.scalars(select(Payout).where(Payout.bounty_id == bounty.id)).all()
            assert [(p.submission_id, p.satoshis) for p in payouts] == [(held["id"], PAYOUT)]
        books_balance(rt, bounty.id)
    finally:
        rt.close()


def test_a_held_appeal_approved_after_a_redeploy_to_a_model_that_refuses_it_ends_rejected_unpaid(
        tmp_path: Path, shipped: ModelArtifact, close_seconds: np.ndarray) -> None:
    """A held appeal is judged again by the model live when an operator approves it: after a redeploy to a model
    that ranks the 7 last, the approval pays nothing and the receipt ends `rejected` with that model's reason,
    not left in `paying`; the books hold only the redeploy."""
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, appeals_need_review=True,
                                   quota_per_payee_per_hour=0, quota_per_client_per_hour=0))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 200_000, mode=BountyMode.VETTED)
        api = client(rt)
        held = hold_an_appeal(api, bounty.id, close_seconds[:16])
        b2 = shipped.integer.b2.copy()
        b2[7] -= 10**6  # far below every other logit: no image ranks a 7 second any more
        no_sevens = replace(shipped, integer=replace(shipped.integer, b2=b2), parent_sha256=shipped.weights_sha256)
        with rt.session() as session:
            model_id = rt.register_model(session, no_sevens.save(tmp_path / "no-sevens")).id
        redeploy(rt, bounty.id, model_id)
        with pytest.raises(ImageRefused, match="an appeal needs the classifier to rank the 7 second"):
            decide_appeals(rt, [held["id"]], approve=True)
        receipt = get_submission(rt, held["id"])
        assert (receipt.status, receipt.reason, receipt.txid, receipt.payout_sats) == (
            "rejected", "wrong_digit", None, None)
        assert appeals_awaiting_review(rt) == []
        settle(rt)
        with rt.session() as session:
            assert session.scalar(select(func.count()).select_from(Payout)) == 0
        books_balance(rt, bounty.id)
    finally:
        rt.close()


def _outcome_of(call: Callable[..., list], *args: object) -> BaseException | list:
    try:
        return call(*args)
    except BaseException as exc:  # handed to the test's thread, which asserts on it
        return exc


def test_a_queued_claim_the_chain_still_refuses_stays_one_pending_row_until_a_block(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A queued pool claim sent again while the chain still refuses its unconfirmed parent goes back to the queue
    as the same row (no second receipt, its prize given back), and is paid once after a block."""
    caplog.set_level(logging.INFO, logger="marketplace.submissions")
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 200_000, shape=BountyShape.POOL, prizes=3)
    assert rt.local_chain is not None
    monkeypatch.setattr(rt.local_chain, "max_unconfirmed_ancestors", 0)
    queued = post(client(rt), bounty.id, digits["sevens"][0])
    assert (queued["code"], queued["status"], queued["reason"]) == (202, "pending", "chain_too_long"), queued
    assert (queued["claimed_digit"], queued["appeal"]) == (None, False)  # an open pool pays the label: no claim
    caplog.clear()
    assert send_queued(rt) == 0  # no block yet: refused again
    with rt.session() as session:
        rows = session.scalars(select(Submission).where(Submission.bounty_id == bounty.id)).all()
        assert [(r.id, str(r.status), str(r.reason), r.txid) for r in rows] == [
            (queued["id"], "pending", "chain_too_long", None)]
        assert (rows[0].predicted_label, rows[0].recipient_address) == (7, USER.address())
    assert decision_lines(caplog) == [
        f"submission decision: bounty={bounty.id} submission={queued['id']} outcome=queued reason=chain_too_long "
        "sats=0"]
    monkeypatch.undo()
    rt.local_chain.mine(1)
    assert send_queued(rt) == 1 and send_queued(rt) == 0
    assert decision_lines(caplog)[1:] == [
        f"submission decision: bounty={bounty.id} submission={queued['id']} outcome=paid reason=- sats={PAYOUT}"]
    settle(rt)
    with rt.session() as session:
        row = session.get(Submission, queued["id"])
        assert row is not None and row.status == SubmissionStatus.CONFIRMED and row.payout is not None
        assert row.payout.satoshis == PAYOUT and row.payout.recipient_address == USER.address()
        assert session.scalar(select(func.count(Submission.id))) == 1
    assert pool_books_failures(rt, bounty.id) == []


def test_the_dry_run_on_a_pool_names_the_bounty_and_reads_its_reserve(sqlite_rt: Runtime,
                                                                     digits: dict[str, np.ndarray]) -> None:
    """Its only live prize being claimed, a pool still takes images while its reserve can create a prize: the dry
    run says so for this bounty, and refuses an image it would not pay with the same sentence."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 200_000, shape=BountyShape.POOL, prizes=1)
    api = client(rt)
    assert post(api, bounty.id, digits["sevens"][0])["code"] == 202  # takes the only prize (no keeper step yet)
    dry = api.post("/classify", json={"pixels": digits["sevens"][1].tolist(), "bounty_id": bounty.id}).json()
    assert (dry["bounty_id"], dry["label"], dry["accepted"], dry["reason"]) == (bounty.id, 7, True, None), dry
    other = api.post("/classify", json={"pixels": digits["others"][0].tolist(), "bounty_id": bounty.id}).json()
    assert other["bounty_id"] == bounty.id and other["accepted"] is False and "which is not" in other["reason"]


def test_a_payees_history_defaults_to_its_newest_twenty_and_counts_none_as_zero(sqlite_rt: Runtime) -> None:
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    with rt.session() as session:
        for n in range(21):
            session.add(Submission(bounty_id=bounty.id, txid=f"{n:064x}", pixels=bytes(784),
                                   recipient_address=USER.address(), recipient_pkh="00" * 20, predicted_label=7,
                                   margin=1, model_sha256="00" * 32, source=SubmissionSource.CHAIN,
                                   status=SubmissionStatus.SEEN))
    page = submissions_of_address(rt, USER.address())
    assert (page.total, page.offset, page.limit, len(page.submissions)) == (21, 0, 20, 20)
    assert [s.txid for s in page.submissions] == [f"{n:064x}" for n in range(20, 0, -1)]  # newest first
    nobody = submissions_of_address(rt, OTHER.address())
    assert (nobody.total, nobody.submissions) == (0, [])


def test_a_late_close_or_requeue_touches_only_its_own_unsent_claim(sqlite_rt: Runtime) -> None:
    """A refusal or an outage met while paying a queued or vetted claim acts on that claim alone, and only while it
    has no spend: a claim already sent, another claim being paid, or one already refused stay as they are."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    states = {"paying": (SubmissionStatus.PAYING, None), "other paying": (SubmissionStatus.PAYING, None),
              "paying, sent": (SubmissionStatus.PAYING, "ab" * 32), "refused": (SubmissionStatus.REJECTED, None),
              "broadcast": (SubmissionStatus.BROADCAST, "cd" * 32), "vetting": (SubmissionStatus.VETTING, None)}
    ids = {}
    with rt.session() as session:
        for name, (status, txid) in states.items():
            row = Submission(bounty_id=bounty.id, txid=txid, pixels=bytes(784), recipient_address=USER.address(),
                             recipient_pkh="00" * 20, predicted_label=7, margin=1, model_sha256="00" * 32,
                             source=SubmissionSource.API, status=status)
            session.add(row)
            session.flush()
            ids[name] = row.id
    for name in ("paying", "paying, sent", "refused", "broadcast"):
        _requeue(rt, ids[name])
    for name in ("other paying", "paying, sent", "refused", "broadcast", "vetting"):
        _close(rt, ids[name], RejectReason.BOUNTY_EXHAUSTED)
    with rt.session() as session:
        now = {name: (str(row.status), row.reason and str(row.reason))
               for name in states if (row := session.get(Submission, ids[name])) is not None}
    assert now == {"paying": ("pending", None), "other paying": ("rejected", "bounty_exhausted"),
                   "paying, sent": ("paying", None), "refused": ("rejected", None), "broadcast": ("broadcast", None),
                   "vetting": ("rejected", "bounty_exhausted")}


def test_a_redeploy_the_watcher_books_first_is_adopted_once_under_its_new_model(
        sqlite_rt: Runtime, shipped: ModelArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher reads a redeploy off the chain before the service records it: it recognises the new model's
    classifier inside the script (compiled once) and books the migration, not a withdrawal."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 40_000)
    first, second = register_variants(rt, shipped, tmp_path, 2)
    sent = watch_after_each_broadcast(rt, monkeypatch)
    moved = redeploy(rt, bounty.id, second)
    monkeypatch.undo()
    assert moved.migrate_txid == sent[0] and moved.contract_version == 2 and moved.status == "active"
    with rt.session() as session:
        versions = session.execute(select(Deployment.version, Deployment.status, Deployment.model_id,
                                          Deployment.deploy_txid)
                                   .where(Deployment.bounty_id == bounty.id).order_by(Deployment.version)).all()
    assert [(v, str(s), m) for v, s, m, _ in versions] == [(1, "migrated", versions[0][2]), (2, "active", second)]
    assert versions[1][3] == sent[0] and first != second
    books_balance(rt, bounty.id)


@pytest.mark.parametrize("shape", [BountyShape.CHAIN, BountyShape.POOL])
def test_queued_vetted_claims_and_appeals_are_sent_after_a_block_with_their_claim_and_cosigned(
        tmp_path: Path, digits: dict[str, np.ndarray], close_seconds: np.ndarray, shape: BountyShape,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A vetted claim and a vetted appeal the chain refused (a too long unconfirmed chain) wait as pending; after
    a block each is sent co-signed by the attestor, the appeal still claiming its digit, and paid once (at the fee
    rate in force, here not the default)."""
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, quota_per_payee_per_hour=0,
                                   quota_per_client_per_hour=0, pool_wait_seconds=20.0, fee_rate=250))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 200_000, mode=BountyMode.VETTED, shape=shape,
                               prizes=3 if shape == BountyShape.POOL else None)
        api = client(rt)
        assert rt.local_chain is not None
        monkeypatch.setattr(rt.local_chain, "max_unconfirmed_ancestors", 0)
        queued = [post(api, bounty.id, digits["sevens"][50])]
        for image in close_seconds[:12]:
            answer = api.post(f"/bounties/{bounty.id}/submissions",
                              json={"pixels": image.tolist(), "address": USER.address(), "appeal": True})
            if answer.status_code == 202:
                queued.append(answer.json())
                break
        assert [(q["status"], q["txid"], q["appeal"]) for q in queued] == [("pending", None, False),
                                                                          ("pending", None, True)], queued
        monkeypatch.undo()
        rt.local_chain.mine(1)
        assert send_queued(rt) == 2 and send_queued(rt) == 0
        settle(rt)
        with rt.session() as session:
            rows = [session.get(Submission, q["id"]) for q in queued]
            assert [(str(r.status), r.appeal, r.claimed_digit, r.payout is not None and r.payout.satoshis)
                    for r in rows if r is not None] == [("confirmed", False, 7, PAYOUT), ("confirmed", True, 7, PAYOUT)]
            assert rows[1] is not None and rows[1].predicted_label != 7  # paid for the claimed 7 it ranks second
            assert session.scalar(select(func.count(Submission.id))) == 2
        books_of_either_shape(rt, bounty.id)
    finally:
        rt.close()


def test_a_queued_claim_another_sender_took_or_that_was_closed_is_not_sent(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two senders (API processes after a block) may both find one queued claim: it goes out only from the one whose
    conditional update moved it from pending; one being paid or refused meanwhile is left alone."""
    from marketplace.submissions import _send_queued_claim
    from tests.support.pools import prizes_of

    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 200_000, shape=BountyShape.POOL, prizes=3)
    assert rt.local_chain is not None
    monkeypatch.setattr(rt.local_chain, "max_unconfirmed_ancestors", 0)
    queued = post(client(rt), bounty.id, digits["sevens"][0])
    assert queued["status"] == "pending", queued
    monkeypatch.undo()
    rt.local_chain.mine(1)

    def set_status(status: SubmissionStatus) -> None:
        with rt.session() as session:
            row = session.get(Submission, queued["id"])
            assert row is not None
            row.status = status

    for meanwhile in (SubmissionStatus.PAYING, SubmissionStatus.REJECTED):
        set_status(meanwhile)
        assert _send_queued_claim(rt, queued["id"]) == 0
        with rt.session() as session:
            row = session.get(Submission, queued["id"])
            assert row is not None and (row.status, row.txid) == (meanwhile, None)
        assert prizes_of(rt, bounty.id) == {"live": 3}  # no prize taken, nothing sent
    set_status(SubmissionStatus.PENDING)
    assert _send_queued_claim(rt, queued["id"]) == 1
    settle(rt)
    assert pool_books_failures(rt, bounty.id) == []


def test_a_queued_spend_another_sender_sent_meanwhile_is_skipped_and_the_rest_still_go(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two senders after one block (two API processes): while this one sends a queued pool claim, the other sends
    the first queued spend of a chain bounty and stops at the second, still too long for its chain. This sender
    then skips the spend already sent (never paying it twice), sends the second, and never a refused receipt."""
    rt, sevens = sqlite_rt, digits["sevens"]
    chain = rt.local_chain
    assert chain is not None
    pool_bounty = create_bounty(rt, [7], PAYOUT, 200_000, shape=BountyShape.POOL, prizes=3)
    chain_bounty = create_bounty(rt, [7], PAYOUT, 200_000)
    api = client(rt)
    monkeypatch.setattr(chain, "max_unconfirmed_ancestors", 0)
    queued = [post(api, pool_bounty.id, sevens[0]), post(api, chain_bounty.id, sevens[1]),
              post(api, chain_bounty.id, sevens[2])]
    assert [q["status"] for q in queued] == ["pending"] * 3, queued
    with rt.session() as session:  # a receipt vetting refused: it has no spend and must never get one
        refused = Submission(bounty_id=chain_bounty.id, pixels=sevens[3].tobytes(), recipient_address=USER.address(),
                             recipient_pkh="00" * 20, predicted_label=7, margin=1, model_sha256="00" * 32,
                             source=SubmissionSource.API, status=SubmissionStatus.REJECTED,
                             reason=RejectReason.KNOWN_IMAGE)
        session.add(refused)
        session.flush()
        refused_id = refused.id
    monkeypatch.undo()
    chain.mine(1)
    limit, broadcast = chain.max_unconfirmed_ancestors, chain.broadcast
    other: list[int] = []

    def the_other_sender_goes_first(tx: Transaction) -> object:
        if not other:
            other.append(-1)
            chain.max_unconfirmed_ancestors = 0  # its chain refuses the second spend
            try:
                other[0] = send_queued(rt)
            finally:
                chain.max_unconfirmed_ancestors = limit
        return broadcast(tx)

    monkeypatch.setattr(chain, "broadcast", the_other_sender_goes_first)
    assert send_queued(rt) == 2  # the pool claim and the second spend
    monkeypatch.undo()
    assert other == [1]  # the first spend
    settle(rt)
    with rt.session() as session:
        rows = [session.get(Submission, q["id"]) for q in queued]
        assert [(str(r.status), r.payout is not None) for r in rows if r is not None] == [("confirmed", True)] * 3
        late = session.get(Submission, refused_id)
        assert late is not None and (late.status, late.txid) == (SubmissionStatus.REJECTED, None)
        assert session.scalar(select(func.count(Payout.id))) == 3
    books_balance(rt, chain_bounty.id)
    assert pool_books_failures(rt, pool_bounty.id) == []


def test_a_refused_broadcast_is_a_lost_race_only_when_its_input_was_spent_or_is_missing(sqlite_rt: Runtime) -> None:
    """A lost race is rebuilt (and recorded as a double spend); any other refusal is the spend's own fault. In the
    chains' own words: the dev chain's, and ARC's status and message. The other reasons a queued or vetted spend
    is closed with: the model reading another digit, or this digit too close to call; a script refused; a bounty
    that cannot pay."""
    from contracts.errors import ContractError, ScriptError
    from marketplace.chain.errors import TransactionRejected
    from marketplace.errors import BountyClosed, ImageRefused
    from marketplace.submissions import _reason_of

    assert [_reason_of(exc) for exc in (ImageRefused("reads a 1", 1, 900, digits=(3, 7)),
                                        ImageRefused("a 7, too close", 7, 2, digits=(3, 7)),
                                        ScriptError("OP_VERIFY failed"), ContractError("too little to pay"),
                                        BountyClosed("withdrawn"))] == [
        RejectReason.WRONG_DIGIT, RejectReason.LOW_MARGIN, RejectReason.INVALID_SCRIPT,
        RejectReason.BOUNTY_EXHAUSTED, RejectReason.BOUNTY_EXHAUSTED]

    words = {"double spend of ab:0, already spent by cd": RejectReason.DOUBLE_SPEND,
             "missing inputs: ab:0 is not in the UTXO set or the mempool": RejectReason.DOUBLE_SPEND,
             "DOUBLE_SPEND_ATTEMPTED: competing transaction cd": RejectReason.DOUBLE_SPEND,
             "double spend attempted; competing transactions: cd": RejectReason.DOUBLE_SPEND,
             "fee of 10 sats is below the minimum of 90 sats": RejectReason.BROADCAST_FAILED,
             "input 0 fails its script: OP_VERIFY failed": RejectReason.BROADCAST_FAILED,
             "MALFORMED: no detail given": RejectReason.BROADCAST_FAILED}
    assert {reason: _reason_of(TransactionRejected(reason, "ab" * 32)) for reason in words} == words


@pytest.mark.parametrize("move", ["top-up", "redeploy"])
def test_a_migration_whose_sender_died_after_broadcasting_is_adopted_by_the_watcher(
        sqlite_rt: Runtime, shipped: ModelArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        digits: dict[str, np.ndarray], move: str) -> None:
    """The service broadcasts a migration and its process dies before recording it: the watcher recognises the
    contract the owner's spend created (the live model's for a top-up, another registered model's for a redeploy)
    and books the migration, never a withdrawal; the bounty goes on paying on the new contract."""
    class ProcessDied(BaseException):
        pass

    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 40_000)
    _, variant = register_variants(rt, shipped, tmp_path, 2)
    chain, broadcast = rt.chain, rt.chain.broadcast
    sent: list[str] = []

    def broadcast_then_die(tx: Transaction) -> object:
        broadcast(tx)
        sent.append(tx.txid())
        raise ProcessDied

    monkeypatch.setattr(chain, "broadcast", broadcast_then_die)
    with pytest.raises(ProcessDied):
        fund_bounty(rt, bounty.id, 10_000) if move == "top-up" else redeploy(rt, bounty.id, variant)
    monkeypatch.undo()
    with rt.session() as session:
        first_model = session.scalar(select(Deployment.model_id).where(Deployment.bounty_id == bounty.id))
        assert session.scalar(select(func.count(Deployment.id))) == 1  # nothing recorded
    Watcher(rt).run_once()
    with rt.session() as session:
        versions = session.execute(select(Deployment.version, Deployment.status, Deployment.model_id,
                                          Deployment.deploy_txid)
                                   .where(Deployment.bounty_id == bounty.id).order_by(Deployment.version)).all()
        b = session.get(Bounty, bounty.id)
        assert b is not None and b.status == "active"
    migration = rt.chain.get_transaction(sent[0])
    assert migration is not None
    # a top-up's fee is the wallet's; a redeploy's comes out of the contract, so out of the budget
    assert b.budget_sats == (50_000 if move == "top-up" else 40_000 - fee_paid(rt.chain, migration))
    assert [(v, str(s), m, t) for v, s, m, t in versions] == [
        (1, "migrated", first_model, versions[0][3]),
        (2, "active", first_model if move == "top-up" else variant, sent[0])]
    books_balance(rt, bounty.id)
    assert post(client(rt), bounty.id, digits["sevens"][0])["code"] == 202
    settle(rt)
    books_balance(rt, bounty.id)


def test_the_watcher_daemon_survives_a_failed_step_and_takes_a_backlog_back_to_back(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_forever`: a step that fails (the chain unreachable) is retried after the interval; a step that took its
    whole `limit` is followed at once by the next; it pauses only once caught up. Its stop event here is the
    test's clock: it records each pause, never sleeps, and ends the loop once the direct spends are booked."""
    import threading

    from marketplace.chain.errors import ChainError

    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    contract, _ = _live_contract(rt, bounty.id)

    def spend_directly(image: np.ndarray) -> None:
        utxo = rt.chain.utxos_for_script(contract.lock().serialize())[0]
        rt.chain.broadcast(build_submission(contract, utxo, image, OTHER.address()))

    def booked() -> int:
        with rt.session() as session:
            return int(session.scalar(select(func.count(Submission.id))
                                      .where(Submission.source == SubmissionSource.CHAIN)) or 0)

    class Clock(threading.Event):
        def __init__(self, until: int) -> None:
            super().__init__()
            self.until, self.pauses = until, []

        def wait(self, timeout: float | None = None) -> bool:
            self.pauses.append(timeout)
            if booked() == self.until or len(self.pauses) > 20:  # (20: a loop that never catches up ends too)
                self.set()
            return self.is_set()

    limits: list[int] = []
    failed: list[bool] = []
    events_since = rt.chain.events_since

    def unreachable_once(cursor: str, limit: int) -> object:
        limits.append(limit)
        if not failed:
            failed.append(True)
            raise ChainError("the chain's connection was reset")
        return events_since(cursor, limit)

    monkeypatch.setattr(rt.chain, "events_since", unreachable_once)
    for image in digits["sevens"][:2]:
        spend_directly(image)
    clock = Clock(until=2)
    Watcher(rt, keep=False).run_forever(clock, interval=0.25, limit=1)
    assert booked() == 2 and len(limits) > 4 and set(limits) == {1}
    assert clock.pauses == [0.25, 0.25]  # after the failure, and once caught up: none within the backlog

    spend_directly(digits["sevens"][2])
    limits.clear()
    clock = Clock(until=3)
    Watcher(rt, keep=False).run_forever(clock)  # the defaults: up to 200 events a step, a pause of 1 s
    assert booked() == 3 and limits == [200] and clock.pauses == [1.0]


def test_every_refusal_of_a_submission_is_one_decision_line_naming_why(
        tmp_path: Path, digits: dict[str, np.ndarray], mnist: Mnist, caplog: pytest.LogCaptureFixture) -> None:
    """What an operator greps for: the outcome and a reason word for each kind of refusal (the contract's reading,
    the bounty closed, a bad request, vetting's receipt with its id), and `paid` with the payout."""
    caplog.set_level(logging.INFO, logger="marketplace.submissions")
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, quota_per_payee_per_hour=0,
                                   quota_per_client_per_hour=0))
    try:
        open_ = create_bounty(rt, [7], PAYOUT, 100_000)
        strict = create_bounty(rt, [7], PAYOUT, 100_000, min_margin=10**9)
        closed = create_bounty(rt, [7], PAYOUT, 100_000)
        withdraw_bounty(rt, closed.id)
        vetted = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.VETTED)
        api = client(rt)
        caplog.clear()
        paid = post(api, open_.id, digits["sevens"][0])
        answers = [paid, post(api, open_.id, digits["others"][0]), post(api, strict.id, digits["sevens"][0]),
                   post(api, closed.id, digits["sevens"][0]), post(api, open_.id, digits["sevens"][0], "1" * 34),
                   post(api, 999, digits["sevens"][0])]
        known = post(api, vetted.id, mnist.x_train.reshape(-1, 784)[mnist.y_train == 7][0])  # MNIST itself
        assert [a["code"] for a in [*answers, known]] == [202, 422, 422, 409, 422, 404, 422], answers
        line = "submission decision: bounty={} submission={} outcome={} reason={} sats={}"
        assert decision_lines(caplog) == [
            line.format(open_.id, paid["id"], "paid", "-", PAYOUT),
            line.format(open_.id, "-", "refused", "wrong_digit", 0),
            line.format(strict.id, "-", "refused", "low_margin", 0),
            line.format(closed.id, "-", "refused", "bounty_closed", 0),
            line.format(open_.id, "-", "refused", "InvalidRequest", 0), line.format(999, "-", "refused", "NotFound", 0),
            line.format(vetted.id, known["refusal"]["submission_id"], "refused", "known_image", 0)]
        assert isinstance(known["refusal"]["submission_id"], int)  # the receipt vetting wrote
    finally:
        rt.close()


def test_a_dropped_migration_returns_its_own_bounty_to_its_contract_and_leaves_the_others(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A reorg drops the second top-up of a bounty (a rival spent the contract it retired): the bounty goes back to
    its own version just before (2, not 1, and not another bounty's 2), its budget what that contract held plus
    what it had paid out (its own payouts and fees, not another bounty's); the other bounty is untouched and pays."""
    rt = sqlite_rt
    api = client(rt)
    first = create_bounty(rt, [7], PAYOUT, 90_000)
    second = create_bounty(rt, [7], PAYOUT, 90_000)
    fund_bounty(rt, first.id, 10_000)  # each has a version 2, the first's written first
    fund_bounty(rt, second.id, 10_000)
    settle(rt)
    assert [post(api, b.id, digits["sevens"][n])["code"] for n, b in ((4, first), (5, second))] == [202, 202]
    settle(rt)
    old_contract, old_utxo = _live_contract(rt, second.id)
    fund_bounty(rt, second.id, 10_000)
    settle(rt)
    rival = build_submission(old_contract, old_utxo, digits["sevens"][1], OTHER.address())
    assert rt.local_chain is not None
    rt.local_chain.rollback(1, replacement=[rival])
    settle(rt)
    with rt.session() as session:
        versions = session.execute(select(Deployment.bounty_id, Deployment.version, Deployment.status)
                                   .order_by(Deployment.bounty_id, Deployment.version)).all()
        assert session.get(Bounty, second.id).budget_sats == 100_000  # type: ignore[union-attr]
    assert [(b, v, str(s)) for b, v, s in versions] == [(first.id, 1, "migrated"), (first.id, 2, "active"),
                                                        (second.id, 1, "migrated"), (second.id, 2, "active")]
    assert [post(api, b.id, digits["sevens"][n])["code"] for n, b in ((2, first), (3, second))] == [202, 202]
    settle(rt)
    books_balance(rt, first.id)
    books_balance(rt, second.id)


def test_a_reorg_dropping_a_chain_bountys_deploy_orphans_its_spend_and_the_watcher_goes_on(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """The competing chain spends the wallet coin that funded the deploy elsewhere: there is no earlier contract
    to return to, and the watcher must not stall on it: the spend of the dropped contract is orphaned, unpaid."""
    rt = sqlite_rt
    assert rt.local_chain is not None
    rt.wallet.fund_from_faucet(rt.local_chain, 10_000_000)
    payment = rt.wallet.build_payment(rt.chain, OTHER.address(), 1_000, rt.settings.fee_rate)  # held back
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    with rt.session() as session:
        deploy = rt.chain.get_transaction(str(session.scalar(select(Deployment.deploy_txid))))
    assert deploy is not None and {(i.source_txid, i.source_output_index) for i in deploy.inputs} & {
        (i.source_txid, i.source_output_index) for i in payment.inputs}  # the same coin
    settle(rt)
    paid = post(client(rt), bounty.id, digits["sevens"][0])
    assert paid["code"] == 202
    rt.local_chain.rollback(1, replacement=[payment])
    settle(rt)
    with rt.session() as session:
        row = session.get(Submission, paid["id"])
        assert row is not None and (row.status, row.reason, row.payout) == (
            SubmissionStatus.ORPHANED, RejectReason.REORGED_OUT, None)
    later = post(client(rt), bounty.id, digits["sevens"][1])  # no contract is left on chain: a refusal, not a 500
    assert later["code"] == 409 and "no unspent contract output" in later["detail"], later


def test_queued_spends_refused_for_good_are_closed_with_the_reason_logged_and_the_rest_still_go(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """After a block, a queued spend whose bounty was withdrawn meanwhile is closed as exhausted and the next one is
    still paid; spends the chain now refuses for good (here its minimum fee rate went up) are closed as failed
    broadcasts, a pool's prize given back. One decision line each."""
    from tests.support.pools import prizes_of

    caplog.set_level(logging.INFO, logger="marketplace.submissions")
    rt, sevens = sqlite_rt, digits["sevens"]
    chain = rt.local_chain
    assert chain is not None
    line = "submission decision: bounty={} submission={} outcome={} reason={} sats={}"

    def queue(*bounties: int) -> list[int]:
        monkeypatch.setattr(chain, "max_unconfirmed_ancestors", 0)
        sent = [post(client(rt), b, sevens[10 + n]) for n, b in enumerate(bounties)]
        monkeypatch.undo()
        assert [s["status"] for s in sent] == ["pending"] * len(bounties), sent
        return [s["id"] for s in sent]

    def closed(ids: list[int]) -> list[tuple[str, str | None, str | None]]:
        with rt.session() as session:
            rows = [session.get(Submission, i) for i in ids]
            return [(str(r.status), r.reason and str(r.reason), r.txid and "sent") for r in rows if r is not None]

    withdrawn, live = (create_bounty(rt, [7], PAYOUT, 100_000).id for _ in range(2))
    first = queue(withdrawn, live)
    withdraw_bounty(rt, withdrawn)
    chain.mine(1)
    caplog.clear()
    assert send_queued(rt) == 1
    assert closed(first) == [("rejected", "bounty_exhausted", None), ("broadcast", None, "sent")]
    assert decision_lines(caplog) == [line.format(withdrawn, first[0], "refused", "bounty_exhausted", 0),
                                      line.format(live, first[1], "paid", "-", PAYOUT)]

    chained = create_bounty(rt, [7], PAYOUT, 100_000).id
    pooled = create_bounty(rt, [7], PAYOUT, 200_000, shape=BountyShape.POOL, prizes=3).id
    second = queue(chained, pooled)
    chain.mine(1)
    caplog.clear()
    monkeypatch.setattr(chain, "min_fee_rate", 100_000)
    assert send_queued(rt) == 0
    monkeypatch.undo()
    assert closed(second) == [("rejected", "broadcast_failed", None)] * 2
    assert decision_lines(caplog) == [line.format(chained, second[0], "refused", "broadcast_failed", 0),
                                      line.format(pooled, second[1], "refused", "broadcast_failed", 0)]
    assert prizes_of(rt, pooled) == {"live": 3}
    settle(rt)
    books_balance(rt, live)
    books_balance(rt, chained)
    assert pool_books_failures(rt, pooled) == []


def test_a_vetted_bounty_counts_each_clients_attempts_against_its_hourly_quota(
        tmp_path: Path, digits: dict[str, np.ndarray]) -> None:
    """One client (one address on the API's side) sending for several payees is held to its own quota."""
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, quota_per_payee_per_hour=0,
                                   quota_per_client_per_hour=1))
    try:
        bounty = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.VETTED)
        api = client(rt)
        answers = [post(api, bounty.id, image, payee.address())
                   for image, payee in zip(digits["sevens"][60:62], (USER, OTHER), strict=True)]
        assert [a["code"] for a in answers] == [202, 422], answers
        assert answers[1]["refusal"]["reason"] == "quota"
    finally:
        rt.close()


def test_queued_claims_of_a_pool_redeployed_meanwhile_are_judged_again_by_the_new_model(
        sqlite_rt: Runtime, shipped: ModelArtifact, digits: dict[str, np.ndarray], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A claim queued under one model and sent after a redeploy to a model that reads its image otherwise (here one
    that reads everything as a 0) is refused by the new model's reading before any spend is built: closed as the
    wrong digit, its prize left to others."""
    from dataclasses import replace

    from tests.support.pools import prizes_of

    caplog.set_level(logging.INFO, logger="marketplace.submissions")
    rt = sqlite_rt
    b2 = shipped.integer.b2.copy()
    b2[0] += 10**6
    zeros = replace(shipped, integer=replace(shipped.integer, b2=b2), parent_sha256=shipped.weights_sha256)
    bounty = create_bounty(rt, [7], PAYOUT, 200_000, shape=BountyShape.POOL, prizes=3)  # the shipped model's
    with rt.session() as session:
        zeros_id = rt.register_model(session, zeros.save(tmp_path / "zeros")).id
    assert rt.local_chain is not None
    monkeypatch.setattr(rt.local_chain, "max_unconfirmed_ancestors", 0)
    queued = post(client(rt), bounty.id, digits["sevens"][0])
    monkeypatch.undo()
    assert queued["status"] == "pending", queued
    redeploy(rt, bounty.id, zeros_id)
    rt.local_chain.mine(1)
    prizes = prizes_of(rt, bounty.id)
    caplog.clear()
    assert send_queued(rt) == 0
    with rt.session() as session:
        row = session.get(Submission, queued["id"])
        assert row is not None and (row.status, row.reason, row.txid) == (
            SubmissionStatus.REJECTED, RejectReason.WRONG_DIGIT, None)
    assert decision_lines(caplog) == [f"submission decision: bounty={bounty.id} submission={queued['id']} "
                                      "outcome=refused reason=wrong_digit sats=0"]
    assert prizes_of(rt, bounty.id) == prizes and prizes["live"] > 0  # none taken, none spent


# -- submissions.py under mutation: the gate's sentences, the appeal hint, the deployment's model judging --------

def refusal_answer(detail: str, predicted: int, margin: int, appealable: bool = False) -> dict:
    """The whole 422 a contributor gets when the contract would refuse an image (`post`'s shape)."""
    return {"code": 422, "detail": detail, "refusal": {"predicted": predicted, "margin": margin,
                                                       "appealable": appealable, "reason": None,
                                                       "submission_id": None}}


def test_a_two_digit_bounty_refuses_with_a_sentence_naming_both_digits(
        sqlite_rt: Runtime, shipped: ModelArtifact, digits: dict[str, np.ndarray]) -> None:
    """What a contributor reads when an image is refused: the reading, and the bounty's digits as "1 or 7", for an
    image of another digit and for a 7 below the bounty's margin."""
    read = reading_of_test_set(shipped.integer)
    _, seven_margins = classify(shipped.integer, digits["sevens"])
    floor = int(np.median(seven_margins))
    bounty = create_bounty(sqlite_rt, [1, 7], PAYOUT, 100_000, min_margin=floor)
    other = int(np.flatnonzero(~np.isin(read.labels, [1, 7]))[0])
    close = int(np.flatnonzero(seven_margins < floor)[0])
    api = client(sqlite_rt)
    label, margin = int(read.labels[other]), int(read.margins[other])
    assert post(api, bounty.id, read.x[other]) == refusal_answer(
        f"the classifier reads a {label} (margin {margin}), which is not this bounty's 1 or 7", label, margin)
    margin = int(seven_margins[close])
    assert post(api, bounty.id, digits["sevens"][close]) == refusal_answer(
        f"the classifier reads a 7 (margin {margin}), which is too close to call for this bounty's 1 or 7", 7, margin)


def test_an_appeal_to_a_two_digit_bounty_must_name_one_of_its_digits(
        sqlite_rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    """A vetted bounty for 1 or 7 cannot guess which digit an appeal claims: without one, or with another digit,
    the appeal is refused before any judging, with a sentence saying what to send."""
    bounty = create_bounty(sqlite_rt, [1, 7], PAYOUT, 100_000, mode=BountyMode.VETTED)
    api = client(sqlite_rt)
    for claim, detail in (({}, f"bounty {bounty.id} pays for 1 or 7: an appeal must say which digit it claims"),
                          ({"digit": 3}, f"bounty {bounty.id} pays for 1 or 7, not for 3")):
        refused = post(api, bounty.id, digits["sevens"][0], appeal=True, **claim)
        assert (refused["code"], refused["detail"]) == (422, detail)
    assert get_bounty(sqlite_rt, bounty.id).accepted_count == 0


def test_only_a_vetted_bountys_close_second_within_its_gap_is_offered_an_appeal(
        tmp_path: Path, shipped: ModelArtifact) -> None:
    """The appeal hint (and `appealable`) is given when a vetted bounty refuses an image whose runner-up is the
    bounty's digit within its appeal gap; not by an open bounty (which takes no appeals), nor for a runner-up of
    another digit, nor for one further behind than the gap. The appeal itself passes the classifier's gate
    exactly when the hint is given: the 7 second, at most the gap behind (at the gap exactly, too)."""
    gap = 4_000
    read, ranked = reading_of_test_set(shipped.integer), ranking_of_test_set(shipped.integer)
    not_seven, second_seven = read.labels != 7, ranked[:, 1] == 7
    close_second = int(np.flatnonzero(not_seven & second_seven & (read.margins <= gap))[0])
    other_second = int(np.flatnonzero(not_seven & ~second_seven & (read.margins <= gap))[0])
    far_second = int(np.flatnonzero(not_seven & second_seven & (read.margins > gap))[0])
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False))
    try:
        vetted = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.VETTED, appeal_gap=gap)
        open_ = create_bounty(rt, [7], PAYOUT, 100_000)
        api = client(rt)

        def expected(i: int, hint: bool) -> dict:
            label, margin = int(read.labels[i]), int(read.margins[i])
            return refusal_answer(f"the classifier reads a {label} (margin {margin}), which is not this bounty's 7"
                                  + ("; you may appeal, claiming a 7" if hint else ""), label, margin, hint)

        def not_second(i: int, gap: int) -> dict:
            label, margin, second = int(read.labels[i]), int(read.margins[i]), int(ranked[i, 1])
            return refusal_answer(f"an appeal needs the classifier to rank the 7 second, within {gap} of its first "
                                  f"choice; it reads a {label} first and a {second} second, {margin} apart",
                                  label, margin)

        assert post(api, vetted.id, read.x[close_second]) == expected(close_second, hint=True)
        assert post(api, open_.id, read.x[close_second]) == expected(close_second, hint=False)
        assert post(api, vetted.id, read.x[other_second]) == expected(other_second, hint=False)
        assert post(api, vetted.id, read.x[far_second]) == expected(far_second, hint=False)
        # exactly at the gap an appeal is taken, so it is offered; one short of the margin it is not
        at_gap = int(read.margins[close_second])
        for edge_gap, hint in ((at_gap, True), (at_gap - 1, False)):
            edge = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.VETTED, appeal_gap=edge_gap)
            assert post(api, edge.id, read.x[close_second]) == expected(close_second, hint=hint)
            appealed = post(api, edge.id, read.x[close_second], appeal=True)
            if hint:  # past the classifier's gate: paid, or refused by the vetting after it (with its reason)
                assert appealed["code"] == 202 or appealed["refusal"]["reason"] is not None, appealed
            else:
                assert appealed == not_second(close_second, edge_gap)
        # an appeal needs the 7 second and within the gap: either alone is refused
        assert post(api, vetted.id, read.x[other_second], appeal=True) == not_second(other_second, gap)
        assert post(api, vetted.id, read.x[far_second], appeal=True) == not_second(far_second, gap)
    finally:
        rt.close()


def test_a_bounty_is_judged_by_its_deployments_model_not_the_default(
        sqlite_rt: Runtime, shipped: ModelArtifact, digits: dict[str, np.ndarray], tmp_path: Path) -> None:
    """A bounty created once a model other than the shipped one is the newest is judged by that model, in the dry
    run and on submission: a 7 the shipped model pays is refused with the new model's reading, while a bounty
    still on the shipped model pays it."""
    rt = sqlite_rt
    on_shipped = create_bounty(rt, [7], PAYOUT, 100_000)
    b2 = shipped.integer.b2.copy()
    b2[7] -= 10**6  # reads no 7 at all
    no_sevens = replace(shipped, integer=replace(shipped.integer, b2=b2), parent_sha256=shipped.weights_sha256)
    with rt.session() as session:
        rt.register_model(session, no_sevens.save(tmp_path / "no-sevens"))
    on_variant = create_bounty(rt, [7], PAYOUT, 100_000)  # the newest model's
    seven = digits["sevens"][0]
    label, margin = (int(v[0]) for v in classify(no_sevens.integer, seven))
    sentence = f"the classifier reads a {label} (margin {margin}), which is not this bounty's 7"
    api = client(rt)
    dry = api.post("/classify", json={"pixels": seven.tolist(), "bounty_id": on_variant.id}).json()
    assert dry == {"label": label, "margin": margin, "weights_sha256": no_sevens.weights_sha256,
                   "bounty_id": on_variant.id, "accepted": False, "reason": sentence}
    assert post(api, on_variant.id, seven) == refusal_answer(sentence, label, margin)
    paid = post(api, on_shipped.id, seven)
    assert (paid["code"], paid["digit"], paid["model_version"]) == (202, 7, 1), paid
    settle(rt)
    books_balance(rt, on_variant.id)
    books_balance(rt, on_shipped.id)


@pytest.mark.parametrize("shape", [BountyShape.CHAIN, BountyShape.POOL])
def test_a_held_appeal_to_a_two_digit_bounty_approved_after_a_redeploy_is_paid_once_for_its_claim(
        tmp_path: Path, shipped: ModelArtifact, close_seconds: np.ndarray, shape: BountyShape) -> None:
    """A held appeal claiming the 7 of a 1-or-7 bounty, approved after a redeploy to a model that still ranks the 7
    a close second, is judged again with its claim and paid once for the 7 under the new model: its receipt names
    the deployment (a pool's: the prize's) that paid it."""
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, appeals_need_review=True,
                                   quota_per_payee_per_hour=0, quota_per_client_per_hour=0, pool_wait_seconds=20.0))
    try:
        bounty = create_bounty(rt, [1, 7], PAYOUT, 200_000, mode=BountyMode.VETTED, shape=shape,
                               prizes=3 if shape == BountyShape.POOL else None)
        api = client(rt)
        held = hold_an_appeal(api, bounty.id, close_seconds[:16], digit=7)
        (variant,) = register_variants(rt, shipped, tmp_path, 1)
        redeploy(rt, bounty.id, variant)
        (paid,) = decide_appeals(rt, [held["id"]], approve=True)
        assert (paid.id, paid.status, paid.payout_sats, paid.appeal, paid.claimed_digit, paid.model_version) == (
            held["id"], "broadcast", PAYOUT, True, 7, 2)
        settle(rt)
        with rt.session() as session:
            row = session.get(Submission, held["id"])
            assert row is not None and row.deployment is not None and row.payout is not None
            assert (row.status, row.deployment.model_id, row.payout.satoshis) == (
                SubmissionStatus.CONFIRMED, variant, PAYOUT)
            if shape == BountyShape.POOL:
                prize = session.scalar(select(Prize).where(Prize.spent_txid == row.txid))
                assert prize is not None and row.deployment_id == prize.deployment_id
            assert session.scalar(select(func.count(Payout.id))) == 1
        books_of_either_shape(rt, bounty.id)
    finally:
        rt.close()


def test_the_owner_spending_the_change_of_a_bounty_deploy_leaves_the_bounty_alone(sqlite_rt: Runtime,
                                                                                 sevens: np.ndarray) -> None:
    """A deploy pays the bounty's contract (output 0) and the wallet's change (output 1). The wallet spending that
    change later shares a txid with the contract's outpoint, not the outpoint: the watcher must not take it for a
    spend of the contract (a withdrawal), and the bounty keeps paying."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    deploy = rt.chain.get_transaction(bounty.contract_txid)
    assert deploy is not None and len(deploy.outputs) == 2
    payment = rt.wallet.build_payment(rt.chain, USER.address(), 1_000)
    assert [(i.source_txid, i.source_output_index) for i in payment.inputs] == [(bounty.contract_txid, 1)]
    rt.chain.broadcast(payment)
    settle(rt)
    assert get_bounty(rt, bounty.id).status == "active"
    assert post(client(rt), bounty.id, sevens[0])["code"] == 202
    settle(rt)
    books_balance(rt, bounty.id)


def test_direct_spends_after_a_top_up_are_booked_under_the_live_contract(sqlite_rt: Runtime,
                                                                         sevens: np.ndarray) -> None:
    """A top-up migrates a bounty into an identical contract (same script) under a new version. Two submissions
    made straight on chain, the second spending the first's output (which no booking knows yet), are both
    booked under the live version, which then sits at the second's output."""
    rt = sqlite_rt
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    assert fund_bounty(rt, bounty.id, 50_000).contract_version == 2
    settle(rt)
    contract, utxo = _live_contract(rt, bounty.id)
    first = build_submission(contract, utxo, sevens[0], OTHER.address())
    second = build_submission(contract, Utxo.of(first, 0), sevens[1], OTHER.address())
    for tx in (first, second):
        rt.chain.broadcast(tx)
    settle(rt)
    with rt.session() as session:
        rows = session.scalars(select(Submission).where(Submission.bounty_id == bounty.id)
                               .order_by(Submission.id)).all()
        assert [(r.txid, r.deployment.version if r.deployment else None) for r in rows] == [
            (first.txid(), 2), (second.txid(), 2)]
        live = active_deployment(session, session.get(Bounty, bounty.id))  # type: ignore[arg-type]
        assert live is not None and (live.version, live.current_txid, live.current_vout) == (2, second.txid(), 0)
    books_balance(rt, bounty.id)
