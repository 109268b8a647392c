"""Operator actions on bounties (create, fund, withdraw, redeploy) and the views of them.

The CLI and the HTTP API call these same functions. Every action that moves money builds and
broadcasts one transaction and records it in the same database transaction, which commits only
after the chain accepted it: a refusal leaves nothing written.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from contracts.fees import default_max_fee, images_payable
from contracts.transactions import Utxo
from marketplace.chain.base import TxState
from marketplace.errors import REASON_TEXT, BountyClosed, ConfigError, InvalidRequest, NotFound
from marketplace.explorer import linked
from marketplace.ledger import record_migration
from marketplace.pools import create_pool, fund_pool, pool_view_figures, redeploy_pool, withdraw_pool
from marketplace.runtime import Runtime, script_sha256
from marketplace.schema import (
    Bounty,
    BountyMode,
    BountyShape,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Payout,
    Submission,
)
from marketplace.views import (
    BountyExport,
    BountyMigrated,
    BountyPublic,
    BountyWithdrawn,
    DeploymentRecord,
    SubmissionPublic,
    SubmissionRecord,
)

FAUCET_HEADROOM = 1_000_000  # dev chain only: what the faucet adds on top of a budget, for fees


def create_bounty(rt: Runtime, digits: list[int], payout: int, budget: int, min_margin: int = 0,
                  max_fee: int | None = None, mode: BountyMode = BountyMode.OPEN,
                  appeal_gap: int | None = None, shape: BountyShape = BountyShape.CHAIN,
                  prizes: int | None = None, model_path: Path | None = None) -> BountyPublic:
    """Deploy a new bounty funded from the operator wallet (the dev chain's faucet tops it up).

    A vetted bounty (the CLI's default) is co-signed by this service's attestor after vetting, with the
    settings' appeal gap unless given; an open one pays any image its classifier accepts. The chain shape is
    one contract output every paid image spends and re-creates; a pool (marketplace.pools) keeps up to
    `prizes` prize outputs live (the settings' `pool_prizes` unless given) and the rest in a reserve. It judges
    with the artifact at `model_path` when given (registered on first use), else with the newest registered
    model."""
    with rt.session() as session:
        model = rt.register_model(session, model_path) if model_path else (
            newest_model(session) or rt.register_model(session))
        bounty = Bounty(digits=sorted(set(digits)), payout_sats=payout, min_margin=min_margin, max_fee_sats=0,
                        budget_sats=budget, owner_pubkey=rt.wallet.public_key.hex(), network=rt.settings.network,
                        mode=mode)
        if mode == BountyMode.VETTED:
            if rt.attestor.public_key == rt.wallet.public_key:
                raise ConfigError("the attestor key is the operator's key: give the attestor a key of its own")
            bounty.attestor_pubkey = rt.attestor.public_key.hex()
            bounty.appeal_gap = rt.settings.appeal_gap if appeal_gap is None else appeal_gap
            bounty.judge_sha256 = rt.vetting.judge.policy_sha256
            rt.vetting.index()  # the MNIST novelty index is built now (once), not on the first submission
        elif appeal_gap:
            raise InvalidRequest("an open bounty takes no appeals: --appeal-gap is for vetted bounties")
        if shape == BountyShape.POOL:
            bounty.shape, bounty.prizes = shape, prizes or rt.settings.pool_prizes
            if bounty.prizes < 1:
                raise InvalidRequest(f"a pool keeps at least one prize live, not {bounty.prizes}")
        elif prizes is not None:
            raise InvalidRequest("--prizes is for pool bounties (--shape pool)")
        session.add(bounty)
        session.flush()  # the id is part of the script (its tag)
        needed = default_max_fee(rt.new_pool(model, bounty), rt.settings.fee_rate) if shape == BountyShape.POOL \
            else default_max_fee(rt.new_contract(model, bounty), rt.settings.fee_rate)  # sized with a zero limit
        if max_fee is not None and max_fee < needed:  # some images could never be paid: images_left would lie
            raise InvalidRequest(f"a maximum fee of {max_fee:,} sats is below the {needed:,} sats the largest "
                                 f"submission to this bounty needs at {rt.settings.fee_rate} sat/kB: leave --max-fee "
                                 f"out, or give at least {needed:,}")
        bounty.max_fee_sats = needed if max_fee is None else max_fee
        if budget < payout + bounty.max_fee_sats:  # nothing is written: the session rolls back
            raise InvalidRequest(f"a budget of {budget:,} sats cannot pay one image: each costs the {payout:,}-sat "
                                 f"payout plus up to {bounty.max_fee_sats:,} sats of fee at "
                                 f"{rt.settings.fee_rate} sat/kB, so the budget must be at least "
                                 f"{payout + bounty.max_fee_sats:,} sats")
        _ensure_funds(rt, budget)
        if shape == BountyShape.POOL:
            create_pool(rt, session, bounty, model, budget)
            return _published(rt, bounty_view(rt, session, bounty))
        contract = rt.new_contract(model, bounty)
        tx = rt.wallet.build_deploy(rt.chain, contract, budget, rt.settings.fee_rate)
        rt.chain.broadcast(tx)
        deployment = Deployment(bounty=bounty, version=1, model_id=model.id,
                                locking_script_sha256=script_sha256(contract), deploy_txid=tx.txid(),
                                current_txid=tx.txid(), current_vout=0, current_satoshis=budget)
        session.add(deployment)
        session.flush()
        return _published(rt, bounty_view(rt, session, bounty))


def fund_bounty(rt: Runtime, bounty_id: int, amount: int) -> BountyMigrated:
    """Top up: migrate the live contract into an identical one holding `amount` more sats."""
    if amount < 1:
        raise InvalidRequest("the amount must be at least 1 satoshi")
    with rt.session() as session:
        bounty, deployment = live(session, bounty_id)
        if bounty.shape == BountyShape.POOL:
            _ensure_funds(rt, amount)
            tx = fund_pool(rt, session, bounty, deployment, amount)
            return linked(BountyMigrated(**bounty_view(rt, session, bounty).model_dump(), migrate_txid=tx.txid()),
                          rt.settings)
    return _migrate(rt, bounty_id, top_up=amount)


def redeploy(rt: Runtime, bounty_id: int, model_id: int) -> BountyMigrated:
    """Move the balance into a contract judged by the registered model `model_id`, in one owner transaction (a
    pool: its live prizes and reserve into as many prizes under the model)."""
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        model = session.get(ModelVersion, model_id)
        if bounty is None or model is None:
            raise NotFound(f"there is no bounty {bounty_id}" if bounty is None else f"there is no model {model_id}")
        shape = bounty.shape
    if shape == BountyShape.POOL:
        tx = redeploy_pool(rt, bounty_id, model)
        with rt.session() as session:
            bounty = session.get(Bounty, bounty_id)
            assert bounty is not None
            return linked(BountyMigrated(**bounty_view(rt, session, bounty).model_dump(), migrate_txid=tx.txid()),
                          rt.settings)
    return _migrate(rt, bounty_id, model_id=model_id)


def withdraw_bounty(rt: Runtime, bounty_id: int) -> BountyWithdrawn:
    """Owner path: the whole balance back to the operator wallet; the bounty closes."""
    with rt.session() as session:
        shape = live(session, bounty_id)[0].shape
    if shape == BountyShape.POOL:
        tx, withdrawn = withdraw_pool(rt, bounty_id)
        with rt.session() as session:
            bounty = session.get(Bounty, bounty_id)
            assert bounty is not None
            return linked(BountyWithdrawn(**bounty_view(rt, session, bounty).model_dump(), withdraw_txid=tx.txid(),
                                          withdrawn_sats=withdrawn), rt.settings)
    with rt.session() as session:
        bounty, deployment = live(session, bounty_id)
        contract = rt.contract(deployment)
        utxo = current_utxo(rt, deployment)
        tx = rt.wallet.build_withdraw(contract, utxo, rt.settings.fee_rate)
        rt.chain.broadcast(tx)
        deployment.status, deployment.current_satoshis = DeploymentStatus.WITHDRAWN, 0
        bounty.status = BountyStatus.WITHDRAWN
        view = bounty_view(rt, session, bounty)
        return linked(BountyWithdrawn(**view.model_dump(), withdraw_txid=tx.txid(),
                                      withdrawn_sats=tx.outputs[0].satoshis), rt.settings)


def _migrate(rt: Runtime, bounty_id: int, top_up: int = 0, model_id: int | None = None) -> BountyMigrated:
    with rt.session() as session:
        bounty, old = live(session, bounty_id)
        contract = rt.contract(old)
        model = old.model if model_id is None else session.get(ModelVersion, model_id)
        if model is None:
            raise NotFound(f"there is no model {model_id}")
        successor = rt.new_contract(model, bounty)
        utxo = current_utxo(rt, old)
        if top_up:
            _ensure_funds(rt, top_up)
        tx = rt.wallet.build_migrate(rt.chain, contract, utxo, successor, top_up, rt.settings.fee_rate)
        rt.chain.broadcast(tx)
        record_migration(session, old, model, tx, utxo.satoshis)  # the watcher may have booked it already
        return linked(BountyMigrated(**bounty_view(rt, session, bounty).model_dump(), migrate_txid=tx.txid()),
                      rt.settings)


def prepare_vetting(rt: Runtime) -> None:
    """Load the vetting state (novelty index, judge) when there are vetted bounties, so the first submission
    does not wait for it. Run in the background at the API's start."""
    with rt.session() as session:
        if session.scalar(select(Bounty.id).where(Bounty.mode == BountyMode.VETTED).limit(1)) is None:
            return
    rt.vetting.index()
    _ = rt.vetting.judge


def newest_model(session: Session) -> ModelVersion | None:
    """The latest model a retraining registered (new bounties start on it), if any."""
    return session.scalar(select(ModelVersion).order_by(ModelVersion.version.desc()).limit(1))


def _ensure_funds(rt: Runtime, amount: int) -> None:
    chain = rt.local_chain
    if chain is not None and rt.wallet.balance(chain) < amount + FAUCET_HEADROOM // 2:
        rt.wallet.fund_from_faucet(chain, amount + FAUCET_HEADROOM)


def live(session: Session, bounty_id: int) -> tuple[Bounty, Deployment]:
    """The bounty and its active deployment, or a clear refusal."""
    bounty = session.get(Bounty, bounty_id)
    if bounty is None:
        raise NotFound(f"there is no bounty {bounty_id}")
    deployment = active_deployment(session, bounty)
    if bounty.status != BountyStatus.ACTIVE or deployment is None:
        raise BountyClosed(f"bounty {bounty_id} is {bounty.status} and takes no submissions")
    return bounty, deployment


def active_deployment(session: Session, bounty: Bounty) -> Deployment | None:
    """The bounty's live deployment, its model loaded with it (a judge reads it next)."""
    return session.scalar(select(Deployment).where(Deployment.bounty_id == bounty.id,
                                                   Deployment.status == DeploymentStatus.ACTIVE)
                          .options(joinedload(Deployment.model)))


def current_utxo(rt: Runtime, deployment: Deployment) -> Utxo:
    """The live contract output: the booked outpoint, followed along the spends the database has not
    recorded yet (ours in flight, or someone's made directly on chain), each of which must leave the
    contract in its output 0. Other outputs paid to the same script are not the contract: dust sent there
    must not stall the bounty (the owner can sweep them). Only when the booked output is gone from the
    chain (a reorg dropped it) is the largest unspent output of the script taken instead."""
    script = rt.contract(deployment).lock().serialize()
    txid, vout = deployment.current_txid, deployment.current_vout
    while (spender := rt.chain.spender_of(txid, vout)) is not None:
        tx = rt.chain.get_transaction(spender.txid)
        if tx is None or tx.outputs[0].locking_script.serialize() != script or len(tx.outputs) < 2:
            raise BountyClosed(f"bounty {deployment.bounty_id}'s contract was spent without a successor: "
                               "it takes no more submissions")
        txid, vout = spender.txid, 0
    source = rt.chain.get_transaction(txid)
    if source is not None and rt.chain.status(txid).state != TxState.UNKNOWN:
        utxo = Utxo.of(source, vout)
    else:
        found = rt.chain.utxos_for_script(script)
        if not found:
            raise BountyClosed(f"bounty {deployment.bounty_id} has no unspent contract output: it is exhausted")
        utxo = max(found, key=lambda u: u.satoshis)
    deployment.current_txid, deployment.current_vout, deployment.current_satoshis = utxo.txid, utxo.vout, utxo.satoshis
    return utxo


# -- views ---------------------------------------------------------------------------------------------

def bounty_view(rt: Runtime, session: Session, bounty: Bounty) -> BountyPublic:
    deployment = active_deployment(session, bounty) or session.scalar(
        select(Deployment).where(Deployment.bounty_id == bounty.id).order_by(Deployment.version.desc()))
    accepted, paid, fees = session.execute(
        select(func.count(Payout.id), func.coalesce(func.sum(Payout.satoshis), 0),
               func.coalesce(func.sum(Payout.fee_sats), 0)).where(Payout.bounty_id == bounty.id)
    ).one()
    remaining = deployment.current_satoshis if deployment else 0
    figures: dict[str, int] = {}
    if bounty.shape == BountyShape.POOL:
        figures = pool_view_figures(rt, session, bounty, deployment)
        remaining = figures["remaining_sats"]
    view = BountyPublic(
        id=bounty.id,
        digits=list(bounty.digits),
        payout_sats=bounty.payout_sats,
        min_margin=bounty.min_margin,
        max_fee_sats=bounty.max_fee_sats,
        budget_sats=bounty.budget_sats,
        status=str(bounty.status),
        remaining_sats=remaining,
        fee_sats_per_image=bounty.max_fee_sats,
        cost_sats_per_image=bounty.payout_sats + bounty.max_fee_sats,
        images_left=images_payable(remaining, bounty.payout_sats, bounty.max_fee_sats)
        if bounty.status == BountyStatus.ACTIVE else 0,
        accepted_count=int(accepted),
        paid_sats=int(paid),
        fees_spent_sats=int(fees),
        model_version=deployment.model.version if deployment else None,
        weights_sha256=deployment.model.weights_sha256 if deployment else None,
        contract_txid=deployment.deploy_txid if deployment else None,
        contract_version=deployment.version if deployment else None,
        current_outpoint=f"{deployment.current_txid}:{deployment.current_vout}" if deployment else None,
        mode=str(bounty.mode),
        appeal_gap=bounty.appeal_gap,
        attestor_pubkey=bounty.attestor_pubkey,
        judge_sha256=bounty.judge_sha256,
        shape=str(bounty.shape),
        prizes=bounty.prizes,
    )
    if not figures:
        return view
    cost = bounty.payout_sats + figures["fee_sats_per_image"]
    return view.model_copy(update={**figures, "cost_sats_per_image": cost})


def list_bounties(rt: Runtime) -> list[BountyPublic]:
    with rt.session() as session:
        bounties = session.scalars(select(Bounty).order_by(Bounty.id))
        return [_published(rt, bounty_view(rt, session, b)) for b in bounties]


def get_bounty(rt: Runtime, bounty_id: int) -> BountyPublic:
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        if bounty is None:
            raise NotFound(f"there is no bounty {bounty_id}")
        return _published(rt, bounty_view(rt, session, bounty))


def _published(rt: Runtime, view: BountyPublic) -> BountyPublic:
    """A bounty's view as served: its explorer links, and for a vetted bounty its published vetting policy."""
    view = linked(view, rt.settings)
    return view.model_copy(update={"vetting_policy": rt.vetting.policy()}) if view.mode == BountyMode.VETTED else view


def submission_view(submission: Submission) -> SubmissionPublic:
    return SubmissionPublic(
        id=submission.id,
        bounty_id=submission.bounty_id,
        status=str(submission.status),
        reason=str(submission.reason) if submission.reason else None,
        reason_text=REASON_TEXT.get(str(submission.reason)) if submission.reason else None,
        digit=submission.predicted_label,
        margin=submission.margin,
        model_sha256=submission.model_sha256,
        model_version=submission.deployment.model.version if submission.deployment else None,
        txid=submission.txid,
        recipient_address=submission.recipient_address,
        source=str(submission.source),
        block_height=submission.block_height,
        confirmations=submission.confirmations,
        payout_sats=submission.payout.satoshis if submission.payout else None,
        created_at=submission.created_at.isoformat(),
        claimed_digit=submission.claimed_digit,
        appeal=submission.appeal,
        vetting=submission.vetting,
    )


def _submissions_of(bounty_id: int) -> Select[Submission]:
    """A bounty's submissions in order, their payouts loaded with them (the views read them)."""
    return (select(Submission).where(Submission.bounty_id == bounty_id).order_by(Submission.id)
            .options(selectinload(Submission.payout)))


def list_submissions(rt: Runtime, bounty_id: int) -> list[SubmissionPublic]:
    with rt.session() as session:
        if session.get(Bounty, bounty_id) is None:
            raise NotFound(f"there is no bounty {bounty_id}")
        return [linked(submission_view(s), rt.settings) for s in session.scalars(_submissions_of(bounty_id))]


def export_bounty(rt: Runtime, bounty_id: int) -> BountyExport:
    """The audit export: the terms, every deployment and every submission with its txid and verdict."""
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        if bounty is None:
            raise NotFound(f"there is no bounty {bounty_id}")
        deployments = [DeploymentRecord(version=d.version, status=str(d.status), model_sha256=d.model.weights_sha256,
                                        deploy_txid=d.deploy_txid, locking_script_sha256=d.locking_script_sha256)
                       for d in bounty.deployments]
        submissions = [SubmissionRecord(**submission_view(s).model_dump(), pixels_hex=s.pixels.hex())
                       for s in session.scalars(_submissions_of(bounty_id))]
        return linked(BountyExport(bounty=bounty_view(rt, session, bounty), deployments=deployments,
                                   submissions=submissions), rt.settings)
