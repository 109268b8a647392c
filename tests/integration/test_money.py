"""Money made visible (issue 15): what a paid image costs a bounty and how many its balance still pays for, in
the API and the CLI, from the books; the dry run giving the verdict a submission gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select
from typer.testing import CliRunner

from marketplace import views
from marketplace.bounties import (
    FAUCET_HEADROOM,
    create_bounty,
    export_bounty,
    fund_bounty,
    get_bounty,
    list_bounties,
    list_submissions,
    newest_model,
    prepare_vetting,
    redeploy,
    withdraw_bounty,
)
from marketplace.cli import app as cli
from marketplace.errors import ConfigError, InvalidRequest, NotFound
from marketplace.explorer import is_txid_field, linked, tx_url
from marketplace.runtime import OPERATOR_KEY_FILE, Runtime, open_runtime
from marketplace.schema import BountyMode, BountyShape, Deployment, ModelVersion, Payout, Submission
from marketplace.views import BountyExport, BountyPublic, SubmissionRecord
from model.artifact import ModelArtifact
from model.reference import classify
from tests.integration.test_service import PAYOUT, USER, books_balance, client, post, settle
from tests.support.fees import fee_paid
from tests.support.models import register_variants
from tests.support.reference import reading_of_test_set
from tests.support.settings import seed_sqlite, settings_for


@pytest.fixture(scope="module")
def digits(sevens: np.ndarray, shipped: ModelArtifact) -> dict[str, np.ndarray]:
    """Test images the shipped model reads as 7 (widest margin first) and as something else."""
    read = reading_of_test_set(shipped.integer)
    return {"sevens": sevens, "others": read.x[read.labels != 7]}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(settings_for(tmp_path / "home"))
    yield runtime
    runtime.close()


def test_a_bounty_shows_the_cost_of_an_image_what_its_balance_pays_for_and_the_fees_spent(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    probe = create_bounty(rt, [7], PAYOUT, 100_000)  # the same terms price every bounty alike
    cost = PAYOUT + probe.max_fee_sats
    bounty = create_bounty(rt, [7], PAYOUT, 3 * cost + 100)
    api = client(rt)
    view = api.get(f"/bounties/{bounty.id}").json()
    # the shipped model's spend is about 66 KB: its largest fee at 100 sat/kB is about 6,700 sats
    assert view["fee_sats_per_image"] == bounty.max_fee_sats and 6_000 < view["fee_sats_per_image"] < 7_500
    assert view["cost_sats_per_image"] == cost and view["images_left"] == 3 and view["fees_spent_sats"] == 0
    paid = [post(api, bounty.id, image) for image in digits["sevens"][:3]]
    assert [p["code"] for p in paid] == [202] * 3
    settle(rt)
    view = api.get(f"/bounties/{bounty.id}").json()
    with rt.session() as session:
        fees = session.scalar(select(func.sum(Payout.fee_sats)).where(Payout.bounty_id == bounty.id))
    assert view["fees_spent_sats"] == fees == view["budget_sats"] - view["paid_sats"] - view["remaining_sats"]
    assert 3 * 6_000 < fees <= 3 * bounty.max_fee_sats  # each spend's real fee, within the contract's bound
    assert view["images_left"] == 0 and view["remaining_sats"] < cost  # and the contract agrees: nothing more pays
    assert post(api, bounty.id, digits["sevens"][3])["code"] == 409
    listed = {b["id"]: b for b in api.get("/bounties").json()}
    assert listed[bounty.id] == view
    books_balance(rt, bounty.id)


def test_the_cli_shows_the_cost_and_refuses_a_budget_that_cannot_pay_one_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    seed_sqlite(tmp_path / "home")  # a database at the newest schema (tests/support/settings.py)
    from marketplace.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    refused = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "1000", "--open",
                                    "--shape", "chain"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.stderr.startswith("error: a budget of 1,000 sats cannot pay one image: each costs the 500-sat "
                                     "payout plus up to ") and refused.stderr.count("\n") == 1
    too_low = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "40000", "--open",
                                  "--max-fee", "3000", "--shape", "chain"])  # below any spend's fee: none is payable
    assert too_low.exit_code == 1 and too_low.stderr.startswith("error: a maximum fee of 3,000 sats is below the ")
    created = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "40000", "--open",
                                  "--shape", "chain"])
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("bounty created: each paid image costs up to ")
    assert "the balance of 40,000 sats pays for 5 more" in created.stdout  # 7,200 sats an image
    status = json.loads(runner.invoke(cli, ["status", "1", "--json"]).stdout)
    assert status["cost_sats_per_image"] == 500 + status["fee_sats_per_image"] and status["images_left"] == 5
    assert status["fees_spent_sats"] == 0
    table = runner.invoke(cli, ["list"]).stdout.splitlines()
    assert table[0].split() == ["id", "digits", "payout", "cost/image", "remaining", "images", "left", "accepted",
                                "fees", "spent", "status"]
    assert table[1].split() == ["1", "7", "500", str(status["cost_sats_per_image"]), "40000", "5", "0", "0", "active"]
    get_settings.cache_clear()


def _classified(api: TestClient, bounty_id: int, image: np.ndarray) -> dict:
    response = api.post("/classify", json={"pixels": image.tolist(), "bounty_id": bounty_id})
    return {**response.json(), "code": response.status_code}


def test_the_dry_run_gives_the_verdict_a_submission_gets(rt: Runtime, shipped: ModelArtifact,
                                                           digits: dict[str, np.ndarray]) -> None:
    """Measured on main: /classify said "would pay" for a bounty whose balance could never pay an image."""
    _, margins = classify(shipped.integer, digits["sevens"])
    median = int(np.median(margins))
    low = digits["sevens"][int(np.flatnonzero(margins < median)[0])]
    high = digits["sevens"][int(np.flatnonzero(margins > median)[0])]
    open_ = create_bounty(rt, [7], PAYOUT, 100_000, min_margin=median)
    cost = PAYOUT + open_.max_fee_sats
    short = create_bounty(rt, [7], PAYOUT, cost + 1_000)  # one image, then more than a payout, less than an image
    closed = create_bounty(rt, [7], PAYOUT, 100_000)
    withdraw_bounty(rt, closed.id)
    api = client(rt)
    assert post(api, short.id, high)["code"] == 202
    settle(rt)
    left = api.get(f"/bounties/{short.id}").json()  # active, above the payout, and yet it can pay no image
    assert left["status"] == "active" and PAYOUT < left["remaining_sats"] < cost and left["images_left"] == 0
    cases = {"payable": (open_.id, high), "wrong digit": (open_.id, digits["others"][0]),
             "low margin": (open_.id, low), "exhausted": (short.id, high), "closed": (closed.id, high)}
    expected = {"payable": (200, 202), "wrong digit": (200, 422), "low margin": (200, 422), "exhausted": (409, 409),
                "closed": (409, 409)}
    for case, (bounty_id, image) in cases.items():
        dry, real = _classified(api, bounty_id, image), post(api, bounty_id, image)
        assert (dry["code"], real["code"]) == expected[case], (case, dry, real)
        if real["code"] == 202:
            assert dry["accepted"] is True and dry["reason"] is None and real["digit"] == dry["label"] == 7
            assert real["margin"] == dry["margin"]
        elif real["code"] == 422:
            assert dry["accepted"] is False and dry["reason"] == real["detail"], case
            assert (dry["label"], dry["margin"]) == (real["refusal"]["predicted"], real["refusal"]["margin"])
        else:
            assert dry["detail"] == real["detail"] and "takes no submissions" in dry["detail"], case
    short_cost = PAYOUT + short.max_fee_sats  # its own terms (no margin): may differ from `cost` by a byte
    assert f"less than the {short_cost:,} sats one image may cost" in _classified(api, short.id, high)["detail"]
    settle(rt)
    books_balance(rt, open_.id)


# -- every txid with its explorer link ------------------------------------------------------------------------

def test_every_txid_links_to_the_dev_chains_own_page(rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    assert bounty.contract_txid_url == f"/chain/tx/{bounty.contract_txid}"
    api = client(rt)
    paid = post(api, bounty.id, digits["sevens"][0])
    assert paid["code"] == 202 and paid["txid_url"] == f"/chain/tx/{paid['txid']}"
    page = api.get(paid["txid_url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert paid["txid"] in page.text and '<dd id="confirmations">0</dd>' in page.text  # in the mempool
    settle(rt)
    receipt = api.get(f"/submissions/{paid['id']}").json()
    assert receipt["txid_url"] == paid["txid_url"]
    page = api.get(receipt["txid_url"]).text
    assert '<dd id="confirmations">1</dd>' in page
    assert f'<a href="/chain/tx/{bounty.contract_txid}">{bounty.contract_txid}</a>:0' in page  # spends the contract
    assert f"<td>{PAYOUT}</td><td>{USER.address()}</td>" in page  # the payout output, to the submitter
    view = api.get(f"/bounties/{bounty.id}").json()
    assert api.get(view["contract_txid_url"]).status_code == 200
    assert f'<a href="{paid["txid_url"]}">{paid["txid"]}</a>' in api.get(view["contract_txid_url"]).text  # spent by
    funded = fund_bounty(rt, bounty.id, 10_000)
    assert funded.migrate_txid_url == f"/chain/tx/{funded.migrate_txid}"
    assert api.get(funded.migrate_txid_url).status_code == 200
    exported = export_bounty(rt, bounty.id)
    assert [d.deploy_txid_url for d in exported.deployments] == [f"/chain/tx/{d.deploy_txid}"
                                                                 for d in exported.deployments]
    assert exported.submissions[0].txid_url == paid["txid_url"] and exported.bounty.contract_txid_url
    withdrawn = withdraw_bounty(rt, bounty.id)
    assert withdrawn.withdraw_txid_url == f"/chain/tx/{withdrawn.withdraw_txid}"
    unknown = api.get(f"/chain/tx/{'ab' * 32}")
    assert unknown.status_code == 404 and unknown.json()["detail"] == f"the dev chain has no transaction {'ab' * 32}"
    assert api.get("/chain/tx/not-a-txid").status_code == 422


@pytest.mark.parametrize(("network", "site"), [("testnet", "https://test.whatsonchain.com/tx/"),
                                               ("mainnet", "https://whatsonchain.com/tx/")])
def test_on_the_network_the_links_are_whatsonchains(tmp_path: Path, network: str, site: str) -> None:
    settings = settings_for(tmp_path / "home", chain="network", network=network, arc_url="http://127.0.0.1:9")
    view = SubmissionRecord(id=1, bounty_id=1, status="confirmed", reason=None, digit=7, margin=1, model_sha256="",
                            model_version=1, txid="cd" * 32, recipient_address="", source="api", block_height=1,
                            confirmations=1, payout_sats=PAYOUT, created_at="", pixels_hex="")
    export = linked(BountyExport(bounty=_bounty_view("ef" * 32), deployments=[], submissions=[view]), settings)
    assert export.submissions[0].txid_url == f"{site}{'cd' * 32}"
    assert export.bounty.contract_txid_url == f"{site}{'ef' * 32}"
    assert tx_url(settings, None) is None


def _bounty_view(contract_txid: str) -> BountyPublic:
    return BountyPublic(id=1, digits=[7], payout_sats=PAYOUT, min_margin=0, max_fee_sats=9_000, budget_sats=100_000,
                        status="active", remaining_sats=100_000, fee_sats_per_image=9_000, cost_sats_per_image=9_500,
                        images_left=10, accepted_count=0, paid_sats=0, fees_spent_sats=0, model_version=1,
                        weights_sha256=None, contract_txid=contract_txid, contract_version=1, current_outpoint=None,
                        mode="open", appeal_gap=0, attestor_pubkey=None, judge_sha256=None)


def test_every_view_that_shows_a_txid_has_a_link_field_beside_it() -> None:
    shown = [model for model in vars(views).values()
             if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == views.__name__]
    missing = [f"{model.__name__}.{name}" for model in shown for name in model.model_fields
               if is_txid_field(name) and f"{name}_url" not in model.model_fields]
    assert len(shown) > 10 and missing == []


# -- the operator's actions to the satoshi (mutation survivors of marketplace/bounties.py) ------------------------


def test_the_dev_wallet_asks_the_faucet_only_below_the_amount_plus_half_its_headroom(rt: Runtime) -> None:
    """On the dev chain an action that needs `amount` sats tops the wallet up by amount + FAUCET_HEADROOM when it
    holds less than amount + half of that; otherwise the wallet pays from what it holds."""
    assert rt.wallet.balance(rt.chain) == 0

    def created(budget: int) -> tuple[int, int]:
        before = rt.wallet.balance(rt.chain)
        view = create_bounty(rt, [7], PAYOUT, budget)
        deploy = rt.chain.get_transaction(view.contract_txid or "")
        assert deploy is not None
        return before, rt.wallet.balance(rt.chain) - before + budget + fee_paid(rt.chain, deploy)

    assert created(100_000) == (0, 100_000 + FAUCET_HEADROOM)  # an empty wallet: topped up
    balance = rt.wallet.balance(rt.chain)
    assert created(balance - FAUCET_HEADROOM // 2) == (balance, 0)  # exactly the amount plus half: enough
    balance = rt.wallet.balance(rt.chain)
    assert balance < 100_000 + FAUCET_HEADROOM // 2 and created(100_000) == (balance, 100_000 + FAUCET_HEADROOM)
    balance = rt.wallet.balance(rt.chain)
    budget = balance - FAUCET_HEADROOM * 2 // 5  # more than a third of the headroom left, less than half
    assert created(budget) == (balance, budget + FAUCET_HEADROOM)


def test_a_top_up_of_one_satoshi_is_taken_and_of_none_is_refused(rt: Runtime) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 50_000)
    with pytest.raises(InvalidRequest, match="at least 1 satoshi"):
        fund_bounty(rt, bounty.id, 0)
    funded = fund_bounty(rt, bounty.id, 1)
    assert (funded.budget_sats, funded.remaining_sats, funded.contract_version) == (50_001, 50_001, 2)
    books_balance(rt, bounty.id)


def test_a_new_bounty_is_judged_by_the_newest_registered_model(rt: Runtime, tmp_path: Path,
                                                               shipped: ModelArtifact) -> None:
    create_bounty(rt, [7], PAYOUT, 50_000)  # registers the shipped model: version 1
    register_variants(rt, shipped, tmp_path, 2)
    with rt.session() as session:
        assert newest_model(session).version == 3  # type: ignore[union-attr]
    assert create_bounty(rt, [7], PAYOUT, 50_000).model_version == 3


def test_vetting_is_loaded_ahead_only_when_there_is_a_vetted_bounty(tmp_path: Path) -> None:
    """At the API's start (`prepare_vetting`): a service with no vetted bounty loads no novelty index and no
    judge; one with a vetted bounty loads both, so its first submission does not wait for them."""
    settings = settings_for(tmp_path / "home", novelty_index_mnist_test=False)
    first = open_runtime(settings)
    try:
        create_bounty(first, [7], PAYOUT, 50_000)
        prepare_vetting(first)
        assert first.vetting._index is None and first.vetting._judge is None
        create_bounty(first, [7], PAYOUT, 50_000, mode=BountyMode.VETTED)
    finally:
        first.close()
    restarted = open_runtime(settings)
    try:
        assert restarted.vetting._index is None and restarted.vetting._judge is None
        prepare_vetting(restarted)
        assert restarted.vetting._index is not None and restarted.vetting._judge is not None
    finally:
        restarted.close()


def test_a_redeploy_to_a_model_that_does_not_exist_is_refused_and_moves_nothing(
        rt: Runtime, tmp_path: Path, shipped: ModelArtifact, digits: dict[str, np.ndarray]) -> None:
    chain = create_bounty(rt, [7], PAYOUT, 50_000)
    pool = create_bounty(rt, [7], PAYOUT, 50_000, shape=BountyShape.POOL, prizes=2)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    for bounty in (chain, pool):
        with pytest.raises(NotFound, match=f"there is no model {model_id + 1}"):
            redeploy(rt, bounty.id, model_id + 1)
        assert get_bounty(rt, bounty.id) == bounty  # nothing moved
    with pytest.raises(NotFound, match=f"there is no bounty {pool.id + 1}"):
        redeploy(rt, pool.id + 1, model_id)
    moved = redeploy(rt, chain.id, model_id)
    assert (moved.contract_version, moved.model_version, moved.budget_sats) == (2, 2, moved.remaining_sats)
    migration = rt.chain.get_transaction(moved.migrate_txid)
    assert migration is not None and migration.outputs[0].satoshis == moved.remaining_sats
    assert post(client(rt), chain.id, digits["sevens"][0])["code"] == 202  # the new contract pays
    settle(rt)
    books_balance(rt, chain.id)


def test_a_bounty_is_refused_terms_it_could_not_keep_and_created_at_the_least_it_can(rt: Runtime) -> None:
    probe = create_bounty(rt, [7], PAYOUT, 50_000)  # the same terms price every chain bounty alike
    needed = probe.max_fee_sats
    refusals = {
        "an open bounty takes no appeals": dict(appeal_gap=3),
        "--prizes is for pool bounties": dict(prizes=2),
        "a pool keeps at least one prize live, not -1": dict(shape=BountyShape.POOL, prizes=-1),
        f"a maximum fee of {needed - 1:,} sats is below the {needed:,} sats": dict(max_fee=needed - 1),
        f"the budget must be at least {PAYOUT + needed:,} sats": dict(budget=PAYOUT + needed - 1),
    }
    for words, terms in refusals.items():
        with pytest.raises(InvalidRequest, match=words):
            create_bounty(rt, [7], PAYOUT, **{"budget": 50_000, **terms})  # type: ignore[arg-type]
    assert [b.id for b in list_bounties(rt)] == [probe.id]  # a refusal writes nothing
    least = create_bounty(rt, [7, 7], PAYOUT, PAYOUT + needed, max_fee=needed)
    assert (least.digits, least.max_fee_sats, least.images_left, least.remaining_sats) == \
        ([7], needed, 1, PAYOUT + needed)
    # a pool's prizes: the settings' number unless given (0 is not a number of prizes)
    assert create_bounty(rt, [7], PAYOUT, 50_000, shape=BountyShape.POOL).prizes == rt.settings.pool_prizes
    assert create_bounty(rt, [7], PAYOUT, 50_000, shape=BountyShape.POOL, prizes=0).prizes == rt.settings.pool_prizes
    assert create_bounty(rt, [7], PAYOUT, 50_000, shape=BountyShape.POOL, prizes=1).live_prizes == 1  # the least


def test_a_vetted_bounty_takes_the_settings_appeal_gap_unless_given_and_refuses_the_operators_key(
        tmp_path: Path) -> None:
    rt = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False, appeal_gap=1_234))
    try:
        default = create_bounty(rt, [7], PAYOUT, 50_000, mode=BountyMode.VETTED)
        assert (default.appeal_gap, default.attestor_pubkey) == (1_234, rt.attestor.public_key.hex())
        assert default.judge_sha256 == rt.vetting.judge.policy_sha256
        none = create_bounty(rt, [7], PAYOUT, 50_000, mode=BountyMode.VETTED, appeal_gap=0)
        assert none.appeal_gap == 0
        assert rt.attestor.public_key != rt.wallet.public_key
    finally:
        rt.close()
    own_key = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False,
                                        attestor_key_file=tmp_path / "home" / OPERATOR_KEY_FILE))
    try:
        with pytest.raises(ConfigError, match="the attestor key is the operator's key"):
            create_bounty(own_key, [7], PAYOUT, 50_000, mode=BountyMode.VETTED)
        assert create_bounty(own_key, [7], PAYOUT, 50_000).mode == "open"  # an open bounty needs no attestor
    finally:
        own_key.close()


def test_a_chain_bountys_view_shows_its_terms_its_books_and_its_newest_contract_once_closed(
        rt: Runtime, tmp_path: Path, shipped: ModelArtifact, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7, 1], PAYOUT, 60_000, min_margin=5)
    cost = PAYOUT + bounty.max_fee_sats
    assert post(client(rt), bounty.id, digits["sevens"][0])["code"] == 202
    settle(rt)
    with rt.session() as session:
        payout = session.scalar(select(Payout).where(Payout.bounty_id == bounty.id))
        assert payout is not None
        claim_txid, fee = payout.txid, payout.fee_sats
    paid = get_bounty(rt, bounty.id)
    remaining = 60_000 - PAYOUT - fee
    assert paid.model_dump(exclude={"vetting_policy"}) == {
        **bounty.model_dump(exclude={"vetting_policy"}), "remaining_sats": remaining,
        "images_left": remaining // cost, "accepted_count": 1, "paid_sats": PAYOUT, "fees_spent_sats": fee,
        "current_outpoint": f"{claim_txid}:0"}
    assert (paid.digits, paid.min_margin, paid.budget_sats, paid.status, paid.mode, paid.shape, paid.prizes) == \
        ([1, 7], 5, 60_000, "active", "open", "chain", None)
    assert (paid.fee_sats_per_image, paid.cost_sats_per_image, paid.contract_version, paid.model_version) == \
        (bounty.max_fee_sats, cost, 1, 1)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    moved = redeploy(rt, bounty.id, model_id)
    closed = withdraw_bounty(rt, bounty.id)
    with rt.session() as session:
        newest = session.scalar(select(ModelVersion).where(ModelVersion.id == model_id))
        assert newest is not None
        weights = newest.weights_sha256
    assert (closed.status, closed.images_left, closed.remaining_sats, closed.accepted_count) == ("withdrawn", 0, 0, 1)
    assert (closed.contract_version, closed.model_version, closed.weights_sha256, closed.contract_txid) == \
        (2, 2, weights, moved.migrate_txid)  # the newest contract, no longer active
    assert closed.withdrawn_sats == moved.remaining_sats - fee_paid(rt.chain, rt.chain.get_transaction(
        closed.withdraw_txid))  # type: ignore[arg-type]


def test_the_audit_export_holds_every_contract_and_every_submission_as_booked(
        rt: Runtime, tmp_path: Path, shipped: ModelArtifact, digits: dict[str, np.ndarray]) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 60_000)
    create_bounty(rt, [7], PAYOUT, 60_000)  # another bounty's rows stay out
    api = client(rt)
    sent = [post(api, bounty.id, image) for image in digits["sevens"][:2]]
    assert [s["code"] for s in sent] == [202, 202]
    assert post(api, bounty.id, digits["others"][0])["code"] == 422  # refused: not a submission of the bounty
    settle(rt)
    (model_id,) = register_variants(rt, shipped, tmp_path, 1)
    redeploy(rt, bounty.id, model_id)
    exported = export_bounty(rt, bounty.id)
    with rt.session() as session:
        contracts = [(d.version, str(d.status), d.model.weights_sha256, d.deploy_txid, d.locking_script_sha256)
                     for d in session.scalars(select(Deployment).where(Deployment.bounty_id == bounty.id)
                                              .order_by(Deployment.version))]
        rows = list(session.scalars(select(Submission).where(Submission.bounty_id == bounty.id)
                                    .order_by(Submission.id)))
        booked = [(r.id, str(r.status), str(r.reason) if r.reason else None, r.predicted_label, r.margin,
                   r.txid, r.block_height, r.created_at.isoformat(), r.pixels.hex()) for r in rows]
    assert [c[:2] for c in contracts] == [(1, "migrated"), (2, "active")]
    assert [(d.version, d.status, d.model_sha256, d.deploy_txid, d.locking_script_sha256)
            for d in exported.deployments] == contracts
    assert [(s.id, s.status, s.reason, s.digit, s.margin, s.txid, s.block_height, s.created_at, s.pixels_hex)
            for s in exported.submissions] == booked
    assert [s.txid for s in exported.submissions] == [s["txid"] for s in sent]
    for paid, image in zip(exported.submissions, digits["sevens"], strict=False):
        assert (paid.status, paid.payout_sats, paid.confirmations, paid.model_version, paid.digit) == \
            ("confirmed", PAYOUT, 1, 1, 7)
        assert (paid.recipient_address, paid.source, paid.reason, paid.reason_text) == \
            (USER.address(), "api", None, None)
        assert paid.pixels_hex == image.astype(np.uint8).tobytes().hex()
    assert exported.bounty == get_bounty(rt, bounty.id).model_copy(update={"vetting_policy": None})
    listed = list_submissions(rt, bounty.id)
    assert [s.model_dump() for s in listed] == [s.model_dump(exclude={"pixels_hex"}) for s in exported.submissions]
    for missing in (export_bounty, list_submissions, get_bounty):
        with pytest.raises(NotFound, match="there is no bounty 99"):
            missing(rt, 99)
