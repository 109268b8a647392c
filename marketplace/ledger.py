"""The books: what one spend of a bounty contract paid, and where the contract went next.

The API (for spends it sends) and the watcher (for every spend it sees on chain, whoever made it)
both record through `record_spend`, which is idempotent: a submission is keyed by txid and input
index, a payout by its submission, and the contract only moves forward from the outpoint the
spend consumed. Recording the same spend twice, in either order, changes nothing the second time.
"""

from __future__ import annotations

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
                           model_sha256=deployment.model.weights_sha256, status=status, source=source)
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
