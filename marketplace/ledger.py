"""The books: what one spend of a bounty contract paid, and where the contract went next.

The API (for spends it sends) and the watcher (for every spend it sees on chain, whoever made it)
both record through `record_spend`, which is idempotent: a submission is keyed by txid and input
index, a payout by its submission, and the contract only moves forward from the outpoint the
spend consumed. Recording the same spend twice, in either order, changes nothing the second time.
An owner's migration into a new contract is booked the same way, by `record_migration`.
"""

from __future__ import annotations

import hashlib

import bsv
from bsv import Transaction
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.runtime import Runtime
from marketplace.schema import (
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Payout,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from model.reference import classify

LIVE = (SubmissionStatus.PENDING, SubmissionStatus.BROADCAST)  # states a sighting may move forward


def pkh_address(pkh: bytes, network: str) -> str:
    prefix = bsv.NETWORK_ADDRESS_PREFIX_DICT[bsv.Network(network)]
    return str(bsv.base58check_encode(prefix + pkh))


def record_spend(session: Session, rt: Runtime, deployment: Deployment, tx: Transaction, input_index: int,
                 source: SubmissionSource, status: SubmissionStatus) -> Submission | None:
    """Book a spend of `deployment`'s contract; None when it was the owner's (withdraw or migrate)."""
    contract = rt.contract(deployment)
    claim = contract.read_submission(tx.inputs[input_index].unlocking_script)
    if claim is None:
        return None
    txid = tx.txid()
    row = session.scalar(select(Submission).where(Submission.txid == txid, Submission.input_index == input_index))
    if row is None:
        label, margin = (int(v[0]) for v in classify(contract.model, claim.image))  # the receipt, recomputed
        fresh = Submission(bounty_id=deployment.bounty_id, deployment_id=deployment.id, txid=txid,
                           input_index=input_index, pixels=claim.image.tobytes(),
                           recipient_address=pkh_address(claim.recipient_pkh, deployment.bounty.network),
                           recipient_pkh=claim.recipient_pkh.hex(), predicted_label=label, margin=margin,
                           model_sha256=deployment.model.weights_sha256, status=status, source=source,
                           appeal=claim.appeal is not None,
                           claimed_digit=claim.appeal if claim.appeal is not None else
                           label if contract.terms.vetted else None)
        try:
            with session.begin_nested():  # the API and the watcher may book the same spend at once
                session.add(fresh)
            row = fresh
        except IntegrityError:
            row = session.scalar(select(Submission).where(Submission.txid == txid,
                                                          Submission.input_index == input_index))
            if row is None:
                raise
    if row.status in LIVE and status not in LIVE:
        row.status = status
    spent = tx.inputs[input_index]
    if session.scalar(select(Payout.id).where(Payout.submission_id == row.id)) is None:
        value = spent.satoshis if spent.satoshis is not None else _output_value(rt, spent.source_txid,
                                                                                spent.source_output_index)
        payout = Payout(submission_id=row.id, bounty_id=row.bounty_id, txid=txid, vout=len(tx.outputs) - 1,
                        satoshis=tx.outputs[-1].satoshis, fee_sats=value - sum(o.satoshis for o in tx.outputs),
                        recipient_address=row.recipient_address)
        try:
            with session.begin_nested():
                session.add(payout)
        except IntegrityError:  # booked by the other writer in the meantime
            pass
    if (deployment.current_txid, deployment.current_vout) == (spent.source_txid, spent.source_output_index):
        advance(deployment, tx)
    session.flush()
    return row


def record_migration(session: Session, old: Deployment, model: ModelVersion, tx: Transaction,
                     spent_satoshis: int) -> None:
    """Book an owner transaction that moved `old`'s balance (`spent_satoshis`) into output 0 of `tx`, a
    contract judged by `model`. The service that sent it and the watcher that saw it on chain may both
    book it, even at the same moment: one new deployment results, keyed by its txid."""
    txid = tx.txid()
    bounty = old.bounty
    try:
        with session.begin_nested():
            old.status, old.current_satoshis = DeploymentStatus.MIGRATED, 0  # current_* keeps its last outpoint
            session.flush()  # one active deployment per bounty: retire the old one first
            session.add(Deployment(bounty=bounty, version=old.version + 1, model_id=model.id,
                                   locking_script_sha256=hashlib.sha256(
                                       tx.outputs[0].locking_script.serialize()).hexdigest(),
                                   deploy_txid=txid, current_txid=txid, current_vout=0,
                                   current_satoshis=tx.outputs[0].satoshis))
            # budget = what the contract was funded with, net of owner-transaction fees it paid itself, so
            # budget - payouts - submission fees == the live balance stays true to the satoshi
            bounty.budget_sats += tx.outputs[0].satoshis - spent_satoshis
            bounty.status = BountyStatus.ACTIVE
            session.flush()
    except IntegrityError:  # the other writer booked it first (deploy_txid is unique)
        if session.scalar(select(Deployment.id).where(Deployment.deploy_txid == txid)) is None:
            raise


def advance(deployment: Deployment, tx: Transaction) -> None:
    """The contract now lives in output 0 of `tx`, or, with no successor, the bounty is exhausted."""
    if len(tx.outputs) == 2:
        deployment.current_txid, deployment.current_vout = tx.txid(), 0
        deployment.current_satoshis = tx.outputs[0].satoshis
    else:
        deployment.status, deployment.current_satoshis = DeploymentStatus.EXHAUSTED, 0
        deployment.bounty.status = BountyStatus.EXHAUSTED


def _output_value(rt: Runtime, txid: str, vout: int) -> int:
    source = rt.chain.get_transaction(txid)
    if source is None:
        raise LookupError(f"the chain does not know {txid}, spent by a contract spend")
    return int(source.outputs[vout].satoshis)
