"""Submitting an image to a bounty, and the dry run.

The reference model pre-checks every image, so one the contract would refuse costs nothing.
An accepted image is built into a spend of the bounty's live contract output, validated locally,
broadcast, and recorded. Spends of one bounty form a chain: concurrent submissions in this
process take turns (a lock per bounty); one that still loses a race (another process, or someone
spending the contract directly) is rebuilt on the new tip. When the chain refuses a longer chain
of unconfirmed spends, the submission is queued and sent after the next block.

A pool bounty (marketplace.pools) has no chain of spends: each submission takes a free prize of its own
and claims it, with no lock, so claims to one bounty run side by side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from bsv.utils import decode_address
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, joinedload, selectinload

from contracts.errors import ContractError, ScriptError
from contracts.fees import images_payable
from contracts.interpreter import validate_once
from contracts.pool import PoolContract
from contracts.transactions import Utxo, claim, submission
from marketplace.bounties import current_utxo, live, submission_view
from marketplace.chain.base import TxState
from marketplace.chain.errors import ChainUnavailable, MempoolChainTooLong, TransactionRejected
from marketplace.errors import (
    BountyClosed,
    DatabaseError,
    ImageRefused,
    InvalidRequest,
    NotFound,
    SubmissionRefused,
)
from marketplace.explorer import linked
from marketplace.ledger import record_spend
from marketplace.pool_ledger import book_claim
from marketplace.pools import booked_prize, can_pay_more, release_prize, take_prize
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyMode,
    BountyShape,
    Deployment,
    Prize,
    RejectReason,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from marketplace.views import SubmissionHistory, SubmissionPublic, Verdict
from model.errors import BountyError
from model.reference import IntegerModel, as_pixels, classify, logits

log = logging.getLogger(__name__)
RACE_RETRIES = 8
AWAITING = "awaiting"  # an appeal's vetting["review"] while an operator has not decided
_bounty_locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)


def check_address(rt: Runtime, address: str) -> bytes:
    """The recipient's public key hash, if `address` is a P2PKH address of this service's network."""
    try:
        pkh, network = decode_address(address)
    except Exception:  # bsv raises several types for malformed input
        raise InvalidRequest(f"{address!r} is not a Bitcoin SV address (a payout address starts with m or n on "
                             "testnet, with 1 on mainnet)") from None
    if network.value != rt.settings.network:
        raise InvalidRequest(f"{address} is a {network.value} address, but this service pays on {rt.settings.network}: "
                             f"give an address of your {rt.settings.network} wallet")
    return bytes(pkh)


def classify_image(rt: Runtime, pixels: np.ndarray, bounty_id: int | None = None) -> Verdict:
    """Dry run: what the on-chain classifier answers and, for a bounty, the verdict a submission of the image
    would get before vetting: refused as closed or exhausted (BountyClosed, as `submit` raises it), or
    accepted or not with the refusal's sentence. A vetted bounty's vetting (novelty, judge, quotas) is not run:
    it would claim the image."""
    image = as_pixels(pixels)
    if bounty_id is None:
        artifact = rt.artifact()
        label, margin = (int(v[0]) for v in classify(artifact.integer, image))
        return Verdict(label=label, margin=margin, weights_sha256=artifact.weights_sha256)
    with rt.session() as session:
        bounty, deployment = live(session, bounty_id)
        check_can_pay(rt, session, bounty, deployment)
        verdict = Verdict(label=0, margin=0, weights_sha256=deployment.model.weights_sha256, bounty_id=bounty.id,
                          accepted=True)
        try:
            verdict.label, verdict.margin, _ = _gate(_judging(rt, deployment), image[0].astype(np.uint8), bounty,
                                                     False, None)
        except ImageRefused as refused:
            verdict.label, verdict.margin, verdict.accepted, verdict.reason = (refused.label, refused.margin, False,
                                                                               str(refused))
        return verdict


def _judging(rt: Runtime, deployment: Deployment) -> IntegerModel:
    """The model a deployment's script runs (either shape)."""
    return rt.artifact(deployment.model.artifact_path).integer


def check_can_pay(rt: Runtime, session: Session, bounty: Bounty, deployment: Deployment) -> None:
    """Refuse before any work when the bounty cannot pay one more image (its view's `images_left` is 0)."""
    if bounty.shape != BountyShape.POOL:
        check_balance(bounty, deployment.current_satoshis)
    elif not can_pay_more(rt, session, bounty, deployment):  # its view's images_left, cheaply
        raise BountyClosed(f"bounty {bounty.id} is exhausted and takes no submissions: it has no live prize and "
                           "its reserve cannot create one; only its owner can withdraw the rest")


def check_balance(bounty: Bounty, satoshis: int) -> None:
    """Refuse before any work when a bounty's balance cannot pay one more image, whatever the image (the
    same count as the bounty view's `images_left`)."""
    if images_payable(satoshis, bounty.payout_sats, bounty.max_fee_sats) < 1:
        raise BountyClosed(f"bounty {bounty.id} is exhausted and takes no submissions: it holds {satoshis:,} sats, "
                           f"less than the {bounty.payout_sats + bounty.max_fee_sats:,} sats one image may cost "
                           f"({bounty.payout_sats:,} payout + up to {bounty.max_fee_sats:,} fee); only its owner "
                           "can withdraw the rest")


@dataclass
class _Offer:
    """One submission on its way to payment: the image, who is paid, and the contract's verdict so far."""

    image: np.ndarray
    address: str
    pkh: bytes
    appeal: bool
    label: int
    margin: int
    claimed: int | None
    judged_by: int  # the model whose verdict this is
    row_id: int | None = None  # a vetted bounty's receipt, written by vetting
    pool: bool = False  # the bounty is a prize pool (its claims take a prize each, without a lock)
    tried_txid: str | None = None  # the claim last handed to the chain (it may have gone out even if that failed)


def submit(rt: Runtime, bounty_id: int, pixels: np.ndarray, address: str, appeal: bool = False,
           digit: int | None = None, client: str | None = None) -> SubmissionPublic:
    """Pay for an image the bounty's contract accepts; refuse one it would not, before any money moves.

    A vetted bounty first vets the image (marketplace.vetting) and its attestor then co-signs the payment;
    an `appeal` claims `digit` (the bounty's own when it has one) for an image the classifier ranks second.
    Each decision is logged in one line (`log_decision`).
    """
    try:
        view = _submit(rt, bounty_id, pixels, address, appeal, digit, client)
    except BountyError as exc:
        receipt = exc.receipt.id if isinstance(exc, SubmissionRefused) else None
        log_decision(bounty_id, receipt, "refused", _refusal_reason(exc), 0)
        raise
    log_decision(bounty_id, view.id, _outcome(view), view.reason, view.payout_sats or 0)
    return view


def log_decision(bounty_id: int, submission_id: int | None, outcome: str, reason: str | None, sats: int) -> None:
    """One line per decision on a submission: never the pixels, the address or a key (the request id, which the
    access log sets, ties it to its request)."""
    log.info("submission decision: bounty=%d submission=%s outcome=%s reason=%s sats=%d", bounty_id,
             submission_id if submission_id is not None else "-", outcome, reason or "-", sats)


def _outcome(view: SubmissionPublic) -> str:
    if view.status == SubmissionStatus.PENDING:
        return "queued"  # paid after the next block (send_queued)
    if view.status == SubmissionStatus.VETTING:
        return "held"  # an appeal awaiting an operator
    return "paid" if view.txid else str(view.status)


def _refusal_reason(exc: BountyError) -> str:
    if isinstance(exc, SubmissionRefused):
        return exc.reason
    if isinstance(exc, ImageRefused):
        return str(_reason_of(exc))
    if isinstance(exc, BountyClosed):
        return "bounty_closed"
    return type(exc).__name__  # an unknown bounty, a bad address, ...


def _submit(rt: Runtime, bounty_id: int, pixels: np.ndarray, address: str, appeal: bool, digit: int | None,
            client: str | None) -> SubmissionPublic:
    image = as_pixels(pixels)[0].astype(np.uint8)
    pkh = check_address(rt, address)
    with rt.session() as session:  # judge first, outside the bounty's lock: a refusal waits for nobody
        bounty, deployment = live(session, bounty_id)
        check_can_pay(rt, session, bounty, deployment)
        vetted = bounty.mode == BountyMode.VETTED
        if (appeal or digit is not None) and not vetted:
            raise InvalidRequest(f"bounty {bounty_id} is open: it takes no appeals and no claimed digit")
        label, margin, claimed = _gate(_judging(rt, deployment), image, bounty, appeal, digit)
        offer = _Offer(image, address, pkh, appeal, label, margin, claimed, deployment.model_id,
                       pool=bounty.shape == BountyShape.POOL)
        row = Submission(bounty_id=bounty.id, deployment_id=deployment.id, pixels=image.tobytes(),
                         recipient_address=address, recipient_pkh=pkh.hex(), predicted_label=label, margin=margin,
                         model_sha256=deployment.model.weights_sha256, claimed_digit=claimed, appeal=appeal,
                         status=SubmissionStatus.VETTING, source=SubmissionSource.API)
        # an open pool's claim takes its prize in this same transaction: one round of the database fewer
        taken = _take(rt, session, bounty_id, offer) if offer.pool and not vetted else None
    if not vetted:
        return linked(_pay_prize(rt, bounty_id, offer, taken) if offer.pool else _pay(rt, bounty_id, offer),
                      rt.settings)
    offer.row_id = _vet(rt, row, image, client)
    if appeal and rt.settings.appeals_need_review:  # a person decides (decide_appeals), then it is paid
        return _hold_for_review(rt, offer.row_id)
    return linked(_pay_vetted(rt, bounty_id, offer), rt.settings)


def _pay_vetted(rt: Runtime, bounty_id: int, offer: _Offer) -> SubmissionPublic:
    """Pay a vetted submission once: its row moves from `vetting` to `paying` in one conditional update, so of
    two processes (or one approval repeated) only one builds, co-signs and broadcasts its spend."""
    assert offer.row_id is not None
    with rt.session() as session:
        result = session.execute(update(Submission).where(Submission.id == offer.row_id,
                                                          Submission.status == SubmissionStatus.VETTING)
                                 .values(status=SubmissionStatus.PAYING))
        taken = getattr(result, "rowcount", 0)  # a CursorResult: how many rows the condition matched
    if taken != 1:
        raise InvalidRequest(f"submission {offer.row_id} is already being paid or was decided")
    try:
        return _pay(rt, bounty_id, offer)
    except BountyError as exc:  # vetted, then not paid: the receipt says why (and the image is not claimed)
        _close(rt, offer.row_id, _reason_of(exc))
        raise


def _hold_for_review(rt: Runtime, row_id: int) -> SubmissionPublic:
    with rt.session() as session:
        row = session.get(Submission, row_id)
        assert row is not None
        row.vetting = {**(row.vetting or {}), "review": AWAITING}
        return submission_view(row)


def appeals_awaiting_review(rt: Runtime) -> list[SubmissionPublic]:
    """Appeals that passed vetting and wait for an operator (with BOUNTY_APPEALS_NEED_REVIEW), oldest first."""
    with rt.session() as session:
        rows = session.scalars(select(Submission).where(Submission.status == SubmissionStatus.VETTING,
                                                        Submission.appeal.is_(True)).order_by(Submission.id))
        return [submission_view(r) for r in rows if (r.vetting or {}).get("review") == AWAITING]


def decide_appeals(rt: Runtime, submission_ids: list[int], approve: bool) -> list[SubmissionPublic]:
    """An operator's decision on held appeals: approved ones are paid now (the attestor co-signs, the
    contract checks the runner-up rule as ever); refused ones end `rejected` (`refused_on_review`). An id that
    is not a held appeal changes nothing, for any id."""
    submission_ids = list(dict.fromkeys(submission_ids))  # each once: an id named twice is decided once
    waiting = {view.id for view in appeals_awaiting_review(rt)}
    unknown = sorted(set(submission_ids) - waiting)
    if unknown:
        raise NotFound(f"no appeal awaits review as submission {', '.join(map(str, unknown))}")
    decided = []
    for submission_id in submission_ids:
        with rt.session() as session:
            row = session.get(Submission, submission_id)
            assert row is not None and row.deployment is not None
            if row.status != SubmissionStatus.VETTING:  # decided meanwhile (another operator, another process)
                raise InvalidRequest(f"submission {submission_id} was decided meanwhile")
            row.vetting = {**(row.vetting or {}), "review": "approved" if approve else "refused"}
            if not approve:
                row.status, row.reason = SubmissionStatus.REJECTED, RejectReason.REFUSED_ON_REVIEW
                decided.append(submission_view(row))
                log_decision(row.bounty_id, row.id, "refused", str(row.reason), 0)
                continue
            offer = _Offer(np.frombuffer(row.pixels, dtype=np.uint8).copy(), row.recipient_address,
                           bytes.fromhex(row.recipient_pkh), True, row.predicted_label, row.margin,
                           row.claimed_digit, row.deployment.model_id, row.id,
                           pool=row.bounty.shape == BountyShape.POOL)
            bounty_id = row.bounty_id
        paid = _pay_vetted(rt, bounty_id, offer)
        log_decision(bounty_id, paid.id, _outcome(paid), paid.reason, paid.payout_sats or 0)
        decided.append(paid)
    return [linked(view, rt.settings) for view in decided]


def _pay(rt: Runtime, bounty_id: int, offer: _Offer) -> SubmissionPublic:
    """Build, validate and broadcast the spend on the bounty's live output (the attestor co-signs a vetted one),
    and book it. Spends of one bounty take turns; one that loses a race is rebuilt on the new tip."""
    if offer.pool:
        return _pay_prize(rt, bounty_id, offer)
    vetted = offer.row_id is not None
    with _bounty_locks[bounty_id]:
        for _attempt in range(RACE_RETRIES):
            with rt.session() as session:
                bounty, deployment = live(session, bounty_id)
                contract = rt.contract(deployment)
                if deployment.model_id != offer.judged_by:  # redeployed meanwhile: the new model decides
                    offer.label, offer.margin, offer.claimed = _gate(contract.model, offer.image, bounty,
                                                                     offer.appeal, offer.claimed)
                    offer.judged_by = deployment.model_id
                utxo = current_utxo(rt, deployment)
                check_balance(bounty, utxo.satoshis)  # the chain's balance, which may be newer than the books'
                try:
                    tx = submission(contract, utxo, offer.image, offer.address, rt.settings.fee_rate,
                                    attestor=rt.attestor.sign if vetted else None,
                                    appeal=offer.claimed if offer.appeal else None)
                except ContractError as exc:
                    raise BountyClosed(f"bounty {bounty_id} cannot pay: {exc}") from None
                validate_once(tx, 0)  # never broadcast what the interpreter refuses
                spend = session.get(Submission, offer.row_id) if vetted else Submission(
                    bounty_id=bounty.id, pixels=offer.image.tobytes(), recipient_address=offer.address,
                    recipient_pkh=offer.pkh.hex(), source=SubmissionSource.API)
                assert spend is not None
                spend.deployment_id, spend.predicted_label, spend.margin = deployment.id, offer.label, offer.margin
                spend.model_sha256 = deployment.model.weights_sha256
                try:
                    rt.chain.broadcast(tx)
                except MempoolChainTooLong:  # queued: sent after the next block
                    spend.status, spend.reason = SubmissionStatus.PENDING, RejectReason.CHAIN_TOO_LONG
                    session.add(spend)
                    session.flush()
                    return submission_view(spend)
                except TransactionRejected as exc:
                    if _lost_race(exc):
                        log.info("bounty %d: lost a race for %s:%d, rebuilding", bounty_id, utxo.txid, utxo.vout)
                        continue
                    raise
                if vetted:  # the vetted row becomes the spend's (the watcher may have booked it already)
                    _attach(session, spend, tx.txid())
                booked = record_spend(session, rt, deployment, tx, 0, SubmissionSource.API,
                                      SubmissionStatus.BROADCAST)
                assert booked is not None  # a submission spend always reads back
                booked.source = SubmissionSource.API  # even if the watcher booked it first
                return submission_view(booked)
    raise BountyClosed(f"bounty {bounty_id} is too busy: {RACE_RETRIES} attempts lost the race; try again")


@dataclass
class _Taken:
    """A prize handed to one claim (pools.take_prize), and what its claim is built with."""

    prize_id: int
    utxo: Utxo
    pool: PoolContract
    vetted: bool


def _take(rt: Runtime, session: Session, bounty_id: int, offer: _Offer) -> _Taken | None:
    """Take a free prize for `offer` in `session` (committed with it); None when every prize is being claimed.
    A closed or exhausted bounty is refused; a model redeployed since the offer was judged judges it again (a
    refusal raised here rolls the take back)."""
    prize = take_prize(session, bounty_id)
    if prize is None:
        bounty, deployment = live(session, bounty_id)
        check_can_pay(rt, session, bounty, deployment)
        return None
    deployment = prize.deployment
    pool = rt.pool(deployment)
    if deployment.model_id != offer.judged_by:
        offer.label, offer.margin, offer.claimed = _gate(pool.model, offer.image, deployment.bounty, offer.appeal,
                                                         offer.claimed)
        offer.judged_by = deployment.model_id
    return _Taken(prize.id, booked_prize(pool, prize), pool, deployment.bounty.mode == BountyMode.VETTED)


def _pay_prize(rt: Runtime, bounty_id: int, offer: _Offer, taken: _Taken | None = None) -> SubmissionPublic:
    """Claim a free prize of a pool bounty with the offer's image (`taken` already, or taken here) and book it.
    No lock: each claim has a prize of its own. A prize someone spent meanwhile (a claim made directly on chain,
    the owner's reclaim) is left for the watcher to book, and another is taken; with none free, the claim waits
    for the keeper's next batch up to `pool_wait_seconds`. The offer's row (a vetted receipt, a queued claim), if
    any, becomes the claim's. The take and the booking are short transactions with the chain in between, holding
    no connection: a claim holding its connection throughout ran the connection pool out."""
    deadline, lost = time.monotonic() + rt.settings.pool_wait_seconds, 0
    while True:
        if taken is None:
            with rt.session() as session:
                taken = _take(rt, session, bounty_id, offer)
        if taken is None:
            if time.monotonic() > deadline:
                raise BountyClosed(f"bounty {bounty_id} is busy: every live prize is being claimed; try again in a "
                                   "few seconds")
            time.sleep(0.05)
            continue
        prize_id, utxo, pool, vetted = taken.prize_id, taken.utxo, taken.pool, taken.vetted
        taken = None  # a lost race takes another
        try:
            tx = claim(pool, utxo, offer.image, offer.address, rt.settings.fee_rate,
                       attestor=rt.attestor.sign if vetted else None, appeal=offer.claimed if offer.appeal else None)
            validate_once(tx, 0)  # never broadcast what the interpreter refuses
            offer.tried_txid = tx.txid()
            rt.chain.broadcast(tx)
        except MempoolChainTooLong:  # queued: sent after the next block, on whichever prize is free then
            # (caught before TransactionRejected, its base class, which would refuse the claim instead)
            release_prize(rt, prize_id)
            return _queue(rt, bounty_id, offer)
        except TransactionRejected as exc:
            if _lost_race(exc) and lost < RACE_RETRIES:
                lost += 1
                log.info("bounty %d: prize %s:%d was spent meanwhile; taking another", bounty_id, utxo.txid, utxo.vout)
                continue
            release_prize(rt, prize_id)
            raise
        except ContractError as exc:
            release_prize(rt, prize_id)
            raise BountyClosed(f"bounty {bounty_id} cannot pay: {exc}") from None
        except BaseException:
            release_prize(rt, prize_id)
            raise
        with rt.session() as session:
            prize = session.get(Prize, prize_id, options=[joinedload(Prize.deployment).joinedload(Deployment.bounty),
                                                          joinedload(Prize.deployment).joinedload(Deployment.model)])
            assert prize is not None
            if offer.row_id is not None:
                spend = session.get(Submission, offer.row_id)
                assert spend is not None
                spend.deployment_id = prize.deployment_id
                _attach(session, spend, tx.txid())
            booked = book_claim(session, rt, prize, tx, 0, SubmissionSource.API, SubmissionStatus.BROADCAST)
            assert booked is not None  # a claim always reads back
            booked.source = SubmissionSource.API  # even if the watcher booked it first
            return submission_view(booked)


def _queue(rt: Runtime, bounty_id: int, offer: _Offer) -> SubmissionPublic:
    """A pool claim the chain will take only after the next block: kept as pending, sent by `send_queued`."""
    with rt.session() as session:
        spend = session.get(Submission, offer.row_id) if offer.row_id is not None else Submission(
            bounty_id=bounty_id, pixels=offer.image.tobytes(), recipient_address=offer.address,
            recipient_pkh=offer.pkh.hex(), source=SubmissionSource.API, predicted_label=offer.label,
            margin=offer.margin, model_sha256="", claimed_digit=offer.claimed, appeal=offer.appeal)
        assert spend is not None
        _, deployment = live(session, bounty_id)
        spend.deployment_id, spend.model_sha256 = deployment.id, deployment.model.weights_sha256
        spend.status, spend.reason = SubmissionStatus.PENDING, RejectReason.CHAIN_TOO_LONG
        session.add(spend)
        session.flush()
        return submission_view(spend)


def _gate(model: IntegerModel, image: np.ndarray, bounty: Bounty, appeal: bool, digit: int | None
          ) -> tuple[int, int, int | None]:
    """What the contract's classifier checks, in advance: (label, margin, claimed digit), or ImageRefused.

    A submission needs the label to be one of the bounty's digits with the minimum margin (a vetted one may
    name that digit; it must be the label). An appeal (vetted only) claims a digit of the bounty that the
    classifier ranks second, within the bounty's appeal gap."""
    z = logits(model, image)[0]
    order = sorted(range(10), key=lambda c: (-int(z[c]), c))  # ties to the lowest digit, as the script
    label, second = order[0], order[1]
    margin = int(z[label] - z[second])
    targets = " or ".join(map(str, bounty.digits))
    if not appeal:
        if label not in bounty.digits or margin < bounty.min_margin or digit not in (None, label):
            why = "is not" if label not in bounty.digits or digit not in (None, label) else "is too close to call for"
            appealable = bounty.mode == BountyMode.VETTED and second in bounty.digits and margin <= bounty.appeal_gap
            raise ImageRefused(f"the classifier reads a {label} (margin {margin}), which {why} this bounty's "
                               f"{targets}" + (f"; you may appeal, claiming a {second}" if appealable else ""),
                               label, margin, appealable=appealable, digits=tuple(bounty.digits))
        return label, margin, label if bounty.mode == BountyMode.VETTED else None
    claimed = digit if digit is not None else bounty.digits[0] if len(bounty.digits) == 1 else None
    if claimed is None:
        raise InvalidRequest(f"bounty {bounty.id} pays for {targets}: an appeal must say which digit it claims")
    if claimed not in bounty.digits:
        raise InvalidRequest(f"bounty {bounty.id} pays for {targets}, not for {claimed}")
    if claimed != second or margin > bounty.appeal_gap:
        raise ImageRefused(f"an appeal needs the classifier to rank the {claimed} second, within {bounty.appeal_gap} "
                           f"of its first choice; it reads a {label} first and a {second} second, {margin} apart",
                           label, margin, digits=tuple(bounty.digits))
    return label, margin, claimed


def _vet(rt: Runtime, row: Submission, image: np.ndarray, client: str | None) -> int:
    """Vet a vetted bounty's submission (`row`, not yet stored): the row, its receipt, is written either way;
    a refusal is raised as SubmissionRefused once the row is committed as rejected. Returns the row's id."""
    assert row.claimed_digit is not None  # a vetted gate always names the digit
    with rt.session() as session:
        outcome = rt.vetting.vet(session, row, image, client)
        if outcome.reason is not None:
            row.status, row.reason = SubmissionStatus.REJECTED, outcome.reason
        session.flush()
        receipt = submission_view(row)
    if outcome.reason is not None:  # logged as a decision by `submit`
        raise SubmissionRefused(receipt, str(outcome.reason))
    return receipt.id


def _attach(session: Session, row: Submission, txid: str) -> None:
    """Give the vetted row its spend. If the watcher booked the spend meanwhile (it sees the broadcast at once),
    its row takes the vetting's fields and ours goes (it has no payout): one row per spend either way."""
    for _attempt in range(2):
        other = session.scalar(select(Submission).where(Submission.txid == txid, Submission.input_index == 0))
        if other is not None and other.id != row.id:
            other.claimed_digit, other.appeal, other.vetting = row.claimed_digit, row.appeal, row.vetting
            session.delete(row)
            session.flush()
            return
        try:
            with session.begin_nested():
                row.txid, row.input_index, row.status, row.reason = txid, 0, SubmissionStatus.BROADCAST, None
        except IntegrityError:  # the watcher's row was committed between the look and the write
            continue
        return


def _lost_race(exc: TransactionRejected) -> bool:
    reason = exc.reason.lower()
    return "double spend" in reason or "double_spend" in reason or "missing" in reason


def send_queued(rt: Runtime) -> int:
    """Send the submissions that waited for a block (the chain refused a longer unconfirmed chain)."""
    sent = 0
    with rt.session() as session:
        queued = list(session.scalars(select(Submission).where(Submission.status == SubmissionStatus.PENDING,
                                                               Submission.txid.is_(None)).order_by(Submission.id)
                                      .options(selectinload(Submission.bounty))))
    for waiting in queued:
        if waiting.bounty.shape == BountyShape.POOL:
            sent += _send_queued_claim(rt, waiting.id)
            continue
        went = _send_queued_submission(rt, waiting.id)
        if went is None:
            return sent  # still too long: wait for the next block
        sent += went
    return sent


def _take_queued(session: Session, row_id: int) -> Submission | None:
    """A queued row, now `paying`: one conditional update, so of two senders only one sends it, and whatever
    breaks after its broadcast (the database, the process) it is never sent again. None if it was not queued."""
    taken = session.execute(update(Submission).where(
        Submission.id == row_id, Submission.txid.is_(None), Submission.status == SubmissionStatus.PENDING)
        .values(status=SubmissionStatus.PAYING))
    row = session.get(Submission, row_id)
    return row if getattr(taken, "rowcount", 0) == 1 else None


def _send_queued_submission(rt: Runtime, row_id: int) -> int | None:
    """Send one queued submission of a chain bounty; 1 if it went out, None if the chain still wants a block."""
    with rt.session() as session:
        row = _take_queued(session, row_id)
        if row is None:
            return 0
        bounty_id = row.bounty_id
    tried = None
    try:
        with _bounty_locks[bounty_id], rt.session() as session:
            row = session.get(Submission, row_id)
            assert row is not None
            bounty, deployment = live(session, bounty_id)
            contract = rt.contract(deployment)
            vetted = bounty.mode == BountyMode.VETTED
            tx = submission(contract, current_utxo(rt, deployment), np.frombuffer(row.pixels, np.uint8),
                            row.recipient_address, rt.settings.fee_rate, attestor=rt.attestor.sign if vetted else None,
                            appeal=row.claimed_digit if row.appeal else None)
            validate_once(tx, 0)
            tried = tx.txid()
            rt.chain.broadcast(tx)
            row.txid, row.deployment_id, row.reason = tx.txid(), deployment.id, None
            row.status = SubmissionStatus.BROADCAST
            session.flush()
            record_spend(session, rt, deployment, tx, 0, SubmissionSource.API, SubmissionStatus.BROADCAST)
            log_decision(row.bounty_id, row.id, "paid", None, bounty.payout_sats)
            return 1
    except MempoolChainTooLong:
        _requeue(rt, row_id)
        return None
    except Exception as exc:
        if _settle_failed_send(rt, row_id, bounty_id, tried, exc):
            return 0
        raise


def _send_queued_claim(rt: Runtime, row_id: int) -> int:
    """Send one queued claim of a pool bounty on a free prize; 1 if it went out."""
    with rt.session() as session:
        row = _take_queued(session, row_id)
        if row is None:
            return 0
        offer = _Offer(np.frombuffer(row.pixels, dtype=np.uint8).copy(), row.recipient_address,
                       bytes.fromhex(row.recipient_pkh), row.appeal, row.predicted_label, row.margin,
                       row.claimed_digit, row.deployment.model_id if row.deployment else -1, row.id)
        bounty_id = row.bounty_id
    try:
        paid = _pay_prize(rt, bounty_id, offer)
    except Exception as exc:
        if _settle_failed_send(rt, row_id, bounty_id, offer.tried_txid, exc):
            return 0
        raise
    log_decision(bounty_id, paid.id, _outcome(paid), paid.reason, paid.payout_sats or 0)
    return int(paid.status != SubmissionStatus.PENDING)


def _settle_failed_send(rt: Runtime, row_id: int, bounty_id: int, tried: str | None, exc: Exception) -> bool:
    """Settle a queued submission (now `paying`) whose send failed with `exc`; True when it was refused (closed with
    its reason), False when `exc` is to be raised. If its transaction (`tried`) may have gone out, it must never go
    out again: the row takes the txid when the chain has it, and stays `paying` when the chain cannot say.
    Otherwise an outage or a bug (not the submission's fault) queues it again for the next block."""
    went_out = _went_out(rt, tried)
    if went_out is None:
        log.error("queued submission %d stays paying: the chain cannot say whether %s went out", row_id, tried)
    elif went_out and tried is not None:
        _mark_sent(rt, row_id, tried)
    elif isinstance(exc, BountyError) and not isinstance(exc, (DatabaseError, ChainUnavailable)):
        _close(rt, row_id, _reason_of(exc))
        log_decision(bounty_id, row_id, "refused", str(_reason_of(exc)), 0)
        return True
    else:
        _requeue(rt, row_id)
    return False


def _went_out(rt: Runtime, txid: str | None) -> bool | None:
    """Whether the chain has transaction `txid` (False for none); None when it cannot say."""
    if txid is None:
        return False
    try:
        return rt.chain.status(txid).state != TxState.UNKNOWN
    except Exception:  # an outage: unknown
        return None


def _requeue(rt: Runtime, row_id: int) -> None:
    """A queued submission that broke for no fault of its own (a database or chain outage, a bug) waits for the
    next block again instead of staying `paying`; if the database is still down it stays so, and is logged."""
    try:
        with rt.session() as session:
            session.execute(update(Submission).where(Submission.id == row_id, Submission.txid.is_(None),
                                                     Submission.status == SubmissionStatus.PAYING)
                            .values(status=SubmissionStatus.PENDING))
    except SQLAlchemyError:
        log.warning("queued submission %d stays paying: the database did not answer to queue it again", row_id)


def _mark_sent(rt: Runtime, row_id: int, txid: str) -> None:
    """A queued submission the chain took but the database did not book: its row takes the spend's txid (or hands
    its fields to the row the watcher booked for it), and the watcher books its payout onto it. If the database
    fails again here, the row stays `paying` (never sent again) and the watcher books the spend as its own row."""
    try:
        with rt.session() as session:
            row = session.get(Submission, row_id)
            if row is not None and row.txid is None:
                _attach(session, row, txid)
    except SQLAlchemyError:
        log.error("queued submission %d went out as %s and stays paying: the watcher books the spend", row_id, txid)


def _reason_of(exc: Exception) -> RejectReason:
    if isinstance(exc, ImageRefused):  # a redeployed model decided otherwise
        return RejectReason.LOW_MARGIN if exc.label in exc.digits else RejectReason.WRONG_DIGIT
    if isinstance(exc, ScriptError):
        return RejectReason.INVALID_SCRIPT
    if isinstance(exc, TransactionRejected):
        return RejectReason.DOUBLE_SPEND if _lost_race(exc) else RejectReason.BROADCAST_FAILED
    return RejectReason.BOUNTY_EXHAUSTED


def _close(rt: Runtime, row_id: int, reason: RejectReason) -> None:
    with rt.session() as session:
        row = session.get(Submission, row_id)
        if row is not None and row.txid is None and row.status in (SubmissionStatus.VETTING, SubmissionStatus.PAYING):
            row.status, row.reason = SubmissionStatus.REJECTED, reason


def get_submission(rt: Runtime, submission_id: int) -> SubmissionPublic:
    with rt.session() as session:
        row = session.get(Submission, submission_id)
        if row is None:
            raise NotFound(f"there is no submission {submission_id}")
        return linked(submission_view(row), rt.settings)


def submissions_of_address(rt: Runtime, address: str, offset: int = 0, limit: int = 20) -> SubmissionHistory:
    """The submissions that name `address` as their payee, newest first, `limit` of them from `offset`."""
    check_address(rt, address)  # a mistyped address is a sentence, not an empty history
    mine = Submission.recipient_address == address
    with rt.session() as session:
        total = session.scalar(select(func.count(Submission.id)).where(mine)) or 0
        rows = session.scalars(select(Submission).where(mine).order_by(Submission.id.desc())
                               .offset(offset).limit(limit).options(selectinload(Submission.payout)))
        views = [linked(submission_view(row), rt.settings) for row in rows]
    return SubmissionHistory(address=address, total=total, offset=offset, limit=limit, submissions=views)
