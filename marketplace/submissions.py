"""Submitting an image to a bounty, and the dry run.

The reference model pre-checks every image, so one the contract would refuse costs nothing.
An accepted image is built into a spend of the bounty's live contract output, validated locally,
broadcast, and recorded. Spends of one bounty form a chain: concurrent submissions in this
process take turns (a lock per bounty); one that still loses a race (another process, or someone
spending the contract directly) is rebuilt on the new tip. When the chain refuses a longer chain
of unconfirmed spends, the submission is queued and sent after the next block.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

import numpy as np
from bsv.utils import decode_address
from sqlalchemy import select

from contracts.errors import ContractError
from contracts.interpreter import validate_input
from contracts.transactions import submission
from marketplace.bounties import current_utxo, live, submission_view
from marketplace.chain.errors import MempoolChainTooLong, TransactionRejected
from marketplace.errors import BountyClosed, ImageRefused, InvalidRequest, NotFound
from marketplace.ledger import record_spend
from marketplace.runtime import Runtime
from marketplace.schema import (
    RejectReason,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from marketplace.views import SubmissionPublic, Verdict
from model.reference import IntegerModel, as_pixels, classify

log = logging.getLogger(__name__)
RACE_RETRIES = 8
_bounty_locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)


def check_address(rt: Runtime, address: str) -> bytes:
    """The recipient's public key hash, if `address` is a P2PKH address of this service's network."""
    try:
        pkh, network = decode_address(address)
    except Exception:  # bsv raises several types for malformed input
        raise InvalidRequest(f"{address!r} is not a valid P2PKH address") from None
    if network.value != rt.settings.network:
        raise InvalidRequest(f"{address} is a {network.value} address; this service pays on {rt.settings.network}")
    return bytes(pkh)


def classify_image(rt: Runtime, pixels: np.ndarray, bounty_id: int | None = None) -> Verdict:
    """Dry run: what the on-chain classifier answers, and whether a bounty would pay for it."""
    image = as_pixels(pixels)
    if bounty_id is None:
        artifact = rt.artifact()
        label, margin = (int(v[0]) for v in classify(artifact.integer, image))
        return Verdict(label=label, margin=margin, weights_sha256=artifact.weights_sha256)
    with rt.session() as session:
        bounty, deployment = live(session, bounty_id)
        label, margin = (int(v[0]) for v in classify(rt.contract(deployment).model, image))
        return Verdict(label=label, margin=margin, weights_sha256=deployment.model.weights_sha256,
                       bounty_id=bounty.id, accepted=label in bounty.digits and margin >= bounty.min_margin)


def submit(rt: Runtime, bounty_id: int, pixels: np.ndarray, address: str) -> SubmissionPublic:
    """Pay for an image the bounty's contract accepts; refuse one it would not, before any money moves."""
    image = as_pixels(pixels)[0].astype(np.uint8)
    pkh = check_address(rt, address)
    with rt.session() as session:  # judge first, outside the bounty's lock: a refusal waits for nobody
        bounty, deployment = live(session, bounty_id)
        label, margin = _judge(rt.contract(deployment).model, image, bounty.digits, bounty.min_margin)
        judged_by = deployment.model_id
    with _bounty_locks[bounty_id]:
        for _attempt in range(RACE_RETRIES):
            with rt.session() as session:
                bounty, deployment = live(session, bounty_id)
                contract = rt.contract(deployment)
                if deployment.model_id != judged_by:  # redeployed meanwhile: the new model decides
                    label, margin = _judge(contract.model, image, bounty.digits, bounty.min_margin)
                    judged_by = deployment.model_id
                utxo = current_utxo(rt, deployment)
                try:
                    tx = submission(contract, utxo, image, address, rt.settings.fee_rate)
                except ContractError as exc:
                    raise BountyClosed(f"bounty {bounty_id} cannot pay: {exc}") from None
                validate_input(tx, 0)  # never broadcast what the interpreter refuses
                try:
                    rt.chain.broadcast(tx)
                except MempoolChainTooLong:
                    row = Submission(bounty_id=bounty.id, deployment_id=deployment.id, pixels=image.tobytes(),
                                     recipient_address=address, recipient_pkh=pkh.hex(), predicted_label=label,
                                     margin=margin, model_sha256=deployment.model.weights_sha256,
                                     status=SubmissionStatus.PENDING, reason=RejectReason.CHAIN_TOO_LONG,
                                     source=SubmissionSource.API)  # queued: sent after the next block
                    session.add(row)
                    session.flush()
                    return submission_view(row)
                except TransactionRejected as exc:
                    if _lost_race(exc):
                        log.info("bounty %d: lost a race for %s:%d, rebuilding", bounty_id, utxo.txid, utxo.vout)
                        continue
                    raise
                booked = record_spend(session, rt, deployment, tx, 0, SubmissionSource.API,
                                      SubmissionStatus.BROADCAST)
                assert booked is not None  # a submission spend always reads back
                booked.source = SubmissionSource.API  # even if the watcher booked it first
                return submission_view(booked)
    raise BountyClosed(f"bounty {bounty_id} is too busy: {RACE_RETRIES} attempts lost the race; try again")


def _judge(model: IntegerModel, image: np.ndarray, digits: list[int], min_margin: int) -> tuple[int, int]:
    """The reference verdict; ImageRefused when the contract would not pay for the image."""
    label, margin = (int(v[0]) for v in classify(model, image))
    if label not in digits or margin < min_margin:
        why = "is not" if label not in digits else "is too close to call for"
        raise ImageRefused(f"the classifier reads a {label} (margin {margin}), which {why} this "
                           f"bounty's {' or '.join(map(str, digits))}", label, margin)
    return label, margin


def _lost_race(exc: TransactionRejected) -> bool:
    reason = exc.reason.lower()
    return "double spend" in reason or "double_spend" in reason or "missing" in reason


def send_queued(rt: Runtime) -> int:
    """Send the submissions that waited for a block (the chain refused a longer unconfirmed chain)."""
    sent = 0
    with rt.session() as session:
        queued = list(session.scalars(select(Submission).where(Submission.status == SubmissionStatus.PENDING,
                                                               Submission.txid.is_(None)).order_by(Submission.id)))
    for waiting in queued:
        with _bounty_locks[waiting.bounty_id], rt.session() as session:
            row = session.get(Submission, waiting.id)
            if row is None or row.txid is not None:
                continue
            try:
                _bounty, deployment = live(session, row.bounty_id)
                contract = rt.contract(deployment)
                tx = submission(contract, current_utxo(rt, deployment), np.frombuffer(row.pixels, np.uint8),
                                row.recipient_address, rt.settings.fee_rate)
                validate_input(tx, 0)
                rt.chain.broadcast(tx)
            except MempoolChainTooLong:
                return sent  # still too long: wait for the next block
            except (BountyClosed, ContractError, TransactionRejected) as exc:
                row.status, row.reason = SubmissionStatus.REJECTED, _reason_of(exc)
                continue
            row.txid, row.deployment_id, row.reason = tx.txid(), deployment.id, None
            row.status = SubmissionStatus.BROADCAST
            session.flush()
            record_spend(session, rt, deployment, tx, 0, SubmissionSource.API, SubmissionStatus.BROADCAST)
            sent += 1
    return sent


def _reason_of(exc: Exception) -> RejectReason:
    if isinstance(exc, BountyClosed):
        return RejectReason.BOUNTY_EXHAUSTED
    if isinstance(exc, TransactionRejected):
        return RejectReason.DOUBLE_SPEND if _lost_race(exc) else RejectReason.BROADCAST_FAILED
    return RejectReason.BOUNTY_EXHAUSTED


def get_submission(rt: Runtime, submission_id: int) -> SubmissionPublic:
    with rt.session() as session:
        row = session.get(Submission, submission_id)
        if row is None:
            raise NotFound(f"there is no submission {submission_id}")
        return submission_view(row)
