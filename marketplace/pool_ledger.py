"""The books of a pool bounty (contracts.pool): its prizes, its reserve and its owner transactions.

Two kinds of transaction touch a pool. A claim spends one prize (or, made by anyone directly on chain, several)
with an image: `book_claim` records the submission and its payout. An owner transaction (deploy, refill,
top-up, redeploy, withdraw: contracts.transactions.pool_move) spends prizes by the owner path and the reserve,
and creates prizes and a new reserve: `book_move` records it once, whether the service that sent it or the
watcher that saw it comes first. A reorg that drops either is undone by `undo_drop`.

The books stay exact to the satoshi: what the wallet put in (`budget_sats`) less what withdrawals took back
equals the reserve, plus the live prizes, plus the payouts and the claims' fees, plus the owner transactions'
fees (`pool_totals`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from bsv import P2PKH, Transaction
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from contracts.pool import PoolContract
from contracts.transactions import Utxo
from marketplace.chain.base import TxState
from marketplace.ledger import pkh_address
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Payout,
    PoolMove,
    PoolMoveKind,
    Prize,
    PrizeStatus,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from model.reference import classify

log = logging.getLogger(__name__)
UNSPENT = (PrizeStatus.LIVE, PrizeStatus.TAKEN)  # prizes still on chain, the pool's money
LIVE_SUBMISSION = (SubmissionStatus.PENDING, SubmissionStatus.BROADCAST)


def input_values(rt: Runtime, tx: Transaction) -> list[int]:
    """What each input of `tx` spends, from the transaction itself (a builder's) or from the chain."""
    values = []
    for spent in tx.inputs:
        if spent.satoshis is None:
            source = rt.chain.get_transaction(spent.source_txid)
            if source is None:
                raise LookupError(f"the chain does not know {spent.source_txid}, spent by {tx.txid()}")
            spent.satoshis = int(source.outputs[spent.source_output_index].satoshis)
        values.append(int(spent.satoshis))
    return values


def reserve_utxo(rt: Runtime, deployment: Deployment) -> Utxo | None:
    """The pool's reserve output as the books hold it; None when there is none."""
    if deployment.current_satoshis <= 0:
        return None
    source = rt.chain.get_transaction(deployment.current_txid)
    if source is None:
        return None
    return Utxo.of(source, deployment.current_vout)


def prize_utxo(rt: Runtime, prize: Prize) -> Utxo:
    source = rt.chain.get_transaction(prize.txid)
    if source is None:
        raise LookupError(f"the chain does not know {prize.txid}, which created prize {prize.id}")
    return Utxo.of(source, prize.vout)


# -- claims --------------------------------------------------------------------------------------------------


def book_claim(session: Session, rt: Runtime, prize: Prize, tx: Transaction, index: int, source: SubmissionSource,
               status: SubmissionStatus) -> Submission | None:
    """Book input `index` of `tx`, which spends `prize`; None when it is the owner's (a move, see `book_move`).

    Idempotent like `ledger.record_spend`: the submission is keyed by (txid, input), its payout by the
    submission. The payee is the claim's first P2PKH output (an open claim binds no outputs); the payout is the
    input's share of what the outputs pay, and the fee the rest of the prize."""
    deployment = prize.deployment
    pool = rt.pool(deployment)
    claim = pool.read_claim(tx.inputs[index].unlocking_script)
    if claim is None:
        return None
    txid = tx.txid()
    payee_vout, payee_pkh = _payee(tx)
    row = session.scalar(select(Submission).where(Submission.txid == txid, Submission.input_index == index))
    fresh = row is None
    if row is None:
        label, margin = (int(v[0]) for v in classify(pool.model, claim.image))  # the receipt, recomputed
        new = Submission(bounty_id=prize.bounty_id, deployment=deployment, txid=txid, input_index=index,
                         pixels=claim.image.tobytes(),
                         recipient_address=pkh_address(payee_pkh, deployment.bounty.network) if payee_pkh else "",
                         recipient_pkh=payee_pkh.hex(), predicted_label=label, margin=margin,
                         model_sha256=deployment.model.weights_sha256, status=status, source=source,
                         appeal=claim.appeal is not None,
                         claimed_digit=claim.appeal if claim.appeal is not None else
                         label if pool.terms.vetted else None)
        try:
            with session.begin_nested():  # the API and the watcher may book the same claim at once
                session.add(new)
            row = new
        except IntegrityError:
            fresh, row = False, session.scalar(select(Submission).where(Submission.txid == txid,
                                                                        Submission.input_index == index))
            if row is None:
                raise
    if row.status in LIVE_SUBMISSION and status not in LIVE_SUBMISSION:
        row.status = status
    # a row just written here has no payout yet (not worth a look), but another writer may give it one now: on
    # SQLite the savepoint's release commits the row at once, and the watcher may book its payout first
    if fresh or session.scalar(select(Payout.id).where(Payout.submission_id == row.id)) is None:
        values = input_values(rt, tx)
        paid = sum(o.satoshis for o in tx.outputs) * values[index] // sum(values)  # this input's share
        payout = Payout(submission_id=row.id, bounty_id=row.bounty_id, txid=txid, vout=payee_vout, satoshis=paid,
                        fee_sats=values[index] - paid, recipient_address=row.recipient_address)
        try:
            with session.begin_nested():
                session.add(payout)
            set_committed_value(row, "payout", payout)  # the row's view reads it without a query
        except IntegrityError:  # booked by the other writer in the meantime
            pass
    prize.status, prize.spent_txid, prize.taken_at = PrizeStatus.CLAIMED, txid, None
    session.flush()
    return row


def _payee(tx: Transaction) -> tuple[int, bytes]:
    """The first P2PKH output of a claim and its key hash; (0, b"") when it pays none."""
    for vout, output in enumerate(tx.outputs):
        raw = output.locking_script.serialize()
        if len(raw) == 25 and raw[:3] == b"\x76\xa9\x14" and raw[23:] == b"\x88\xac":
            return vout, raw[3:23]
    return 0, b""


# -- owner transactions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    """What an owner transaction does to a pool, read from the transaction and the books."""

    reclaimed: list[Prize]
    spends_reserve: bool
    pool_in: int
    fee: int


def book_move(session: Session, rt: Runtime, bounty: Bounty, tx: Transaction, kind: PoolMoveKind | None = None,
              target: Deployment | None = None) -> PoolMove:
    """Book an owner transaction of pool `bounty` once (keyed by its txid), by the service or the watcher.

    Prizes it spends become reclaimed; outputs locked by the prize script of `target` (the active deployment
    unless given: a redeploy's new one) become its prizes, each with its share of the fee; the output that pays
    the reserve address (if any) becomes the reserve. `kind` is inferred when the watcher books what it found.
    """
    txid = tx.txid()
    booked = session.scalar(select(PoolMove).where(PoolMove.txid == txid))
    if booked is not None:
        return _booked_by_the_other_writer(session, booked)
    active = _active(session, bounty)
    seen = _read(session, rt, bounty, active, tx)
    target = target or (active if active is not None else None)
    prize_script = rt.pool(target).lock().serialize() if target is not None else None
    created = [vout for vout, out in enumerate(tx.outputs)
               if prize_script is not None and out.locking_script.serialize() == prize_script]
    reserve_script = P2PKH().lock(rt.wallet.reserve_address(bounty.id)).serialize()
    reserve_at = next((vout for vout, out in enumerate(tx.outputs)
                       if out.locking_script.serialize() == reserve_script), None)
    pool_out = sum(tx.outputs[v].satoshis for v in created) + (tx.outputs[reserve_at].satoshis
                                                               if reserve_at is not None else 0)
    added = pool_out + seen.fee - seen.pool_in
    kind = kind or _infer(seen, created, reserve_at, added, target is not active)
    reserve_before = (f"{active.current_txid}:{active.current_vout}:{active.current_satoshis}"
                      if active is not None and seen.spends_reserve else None)
    move = PoolMove(bounty_id=bounty.id, txid=txid, kind=kind, added_sats=added, fee_sats=seen.fee,
                    reserve_before=reserve_before)
    try:
        with session.begin_nested():
            session.add(move)
            for prize in seen.reclaimed:
                prize.status, prize.spent_txid, prize.taken_at = PrizeStatus.RECLAIMED, txid, None
            shares = _split(seen.fee, len(created))
            if target is not None:
                for vout, share in zip(created, shares, strict=True):
                    session.add(Prize(bounty_id=bounty.id, deployment_id=target.id, txid=txid, vout=vout,
                                      satoshis=tx.outputs[vout].satoshis, creation_fee_sats=share))
                _move_reserve(target, txid, reserve_at, tx)
                if active is not None and target is not active:  # a redeploy: the old deployment retires first
                    active.status, active.current_satoshis = DeploymentStatus.MIGRATED, 0
                    session.flush()
                    target.status = DeploymentStatus.ACTIVE
            if kind == PoolMoveKind.TOP_UP:
                bounty.budget_sats += added
            if kind == PoolMoveKind.WITHDRAW:
                if active is not None:
                    active.status, active.current_satoshis = DeploymentStatus.WITHDRAWN, 0
                bounty.status = BountyStatus.WITHDRAWN
            session.flush()
    except IntegrityError:  # the other writer booked it first (txid is unique)
        booked = session.scalar(select(PoolMove).where(PoolMove.txid == txid))
        if booked is None:
            raise
        return _booked_by_the_other_writer(session, booked)
    log.info("pool move: bounty=%d kind=%s txid=%s prizes=%d fee=%d", bounty.id, kind, txid, len(created), seen.fee)
    return move


def _booked_by_the_other_writer(session: Session, booked: PoolMove) -> PoolMove:
    """The move the other writer (the watcher, or the service) booked: what this session holds of the bounty, its
    deployments and prizes predates that booking (a top-up's budget, the reserve), so it is read again."""
    session.flush()
    session.expire_all()
    return booked


def _active(session: Session, bounty: Bounty) -> Deployment | None:
    return session.scalar(select(Deployment).where(Deployment.bounty_id == bounty.id,
                                                   Deployment.status == DeploymentStatus.ACTIVE))


def _read(session: Session, rt: Runtime, bounty: Bounty, active: Deployment | None, tx: Transaction) -> _Seen:
    values = input_values(rt, tx)
    reclaimed, spends_reserve, pool_in = [], False, 0
    for tx_input, value in zip(tx.inputs, values, strict=True):
        prize = session.scalar(select(Prize).where(Prize.txid == tx_input.source_txid,
                                                   Prize.vout == tx_input.source_output_index))
        if prize is not None and prize.bounty_id == bounty.id:
            reclaimed.append(prize)
            pool_in += value
        elif active is not None and active.current_satoshis > 0 and \
                (tx_input.source_txid, tx_input.source_output_index) == (active.current_txid, active.current_vout):
            spends_reserve, pool_in = True, pool_in + value
    return _Seen(reclaimed, spends_reserve, pool_in, sum(values) - sum(o.satoshis for o in tx.outputs))


def _infer(seen: _Seen, created: list[int], reserve_at: int | None, added: int, new_deployment: bool
           ) -> PoolMoveKind:
    if not created and reserve_at is None:
        return PoolMoveKind.WITHDRAW
    if new_deployment and seen.pool_in:
        return PoolMoveKind.REDEPLOY
    if not seen.pool_in:
        return PoolMoveKind.DEPLOY
    return PoolMoveKind.TOP_UP if added > 0 else PoolMoveKind.REFILL


def _split(fee: int, parts: int) -> list[int]:
    """A fee in `parts` shares that add up to it exactly (the first ones a satoshi larger)."""
    if parts == 0:
        return []
    share, extra = divmod(fee, parts)
    return [share + (i < extra) for i in range(parts)]


def _move_reserve(deployment: Deployment, txid: str, reserve_at: int | None, tx: Transaction) -> None:
    if reserve_at is None:
        deployment.current_txid, deployment.current_vout, deployment.current_satoshis = txid, 0, 0
    else:
        deployment.current_txid, deployment.current_vout = txid, reserve_at
        deployment.current_satoshis = tx.outputs[reserve_at].satoshis


def adopt_move(session: Session, rt: Runtime, bounty: Bounty, tx: Transaction) -> PoolMove:
    """The watcher's booking of an owner transaction the service did not record (its process stopped between
    the broadcast and the commit): a redeploy is recognised by outputs locked by another registered model's
    prize script for this bounty, which then becomes the bounty's next deployment."""
    booked = session.scalar(select(PoolMove).where(PoolMove.txid == tx.txid()))
    if booked is not None:  # the usual case: the service booked it as it sent it
        return booked
    active = _active(session, bounty)
    if active is not None:
        known = rt.pool(active).lock().serialize()
        foreign = {out.locking_script.serialize() for out in tx.outputs} - {known}
        for model in session.scalars(select(ModelVersion).where(ModelVersion.id != active.model_id)
                                     .order_by(ModelVersion.version.desc())):
            pool = rt.new_pool(model, bounty)
            script = pool.lock().serialize()
            if script in foreign:
                target = next_deployment(session, bounty, active, model, pool, tx.txid())
                return book_move(session, rt, bounty, tx, PoolMoveKind.REDEPLOY, target)
    return book_move(session, rt, bounty, tx)


def next_deployment(session: Session, bounty: Bounty, active: Deployment, model: ModelVersion, pool: PoolContract,
                    txid: str) -> Deployment:
    """The deployment a redeploy in `txid` starts (not active until the move retires the old one). The service
    that sent it and the watcher that saw it may both get here: the second finds the first's."""
    started = select(Deployment).where(Deployment.deploy_txid == txid)
    if (found := session.scalar(started)) is not None:
        return found
    deployment = Deployment(bounty_id=bounty.id, version=active.version + 1, model_id=model.id,
                            locking_script_sha256=hashlib.sha256(pool.lock().serialize()).hexdigest(),
                            deploy_txid=txid, current_txid=txid, current_vout=0, current_satoshis=0,
                            status=DeploymentStatus.MIGRATED)
    try:
        with session.begin_nested():
            session.add(deployment)
    except IntegrityError:  # the other writer's was committed between the look and the write
        if (found := session.scalar(started)) is None:
            raise
        return found
    return deployment


# -- reorgs --------------------------------------------------------------------------------------------------


def undo_drop(session: Session, rt: Runtime, txid: str) -> bool:
    """Undo what a dropped transaction did to any pool: a claim gives its prize back (when the prize itself
    still exists), an owner move gives back the prizes and the reserve it spent and takes away what it created.
    Returns whether `txid` touched a pool. (The claim's submission and payout are the watcher's `_orphan`.)"""
    touched = False
    for prize in session.scalars(select(Prize).where(Prize.spent_txid == txid)):
        if rt.chain.status(prize.txid).state != TxState.UNKNOWN:
            prize.status, prize.spent_txid = PrizeStatus.LIVE, None
        else:
            prize.status = PrizeStatus.DROPPED
        touched = True
    move = session.scalar(select(PoolMove).where(PoolMove.txid == txid, PoolMove.dropped.is_(False)))
    if move is not None:
        _undo_move(session, move)
        touched = True
    session.flush()
    return touched


def _undo_move(session: Session, move: PoolMove) -> None:
    bounty = session.get(Bounty, move.bounty_id)
    assert bounty is not None
    move.dropped = True
    for prize in session.scalars(select(Prize).where(Prize.txid == move.txid)):
        prize.status = PrizeStatus.DROPPED
    created_by = session.scalar(select(Deployment).where(Deployment.deploy_txid == move.txid))
    if move.kind == PoolMoveKind.REDEPLOY and created_by is not None:
        created_by.status, created_by.current_satoshis = DeploymentStatus.DROPPED, 0
        session.flush()  # one active deployment per bounty: retire the dropped one first
    previous = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty.id,
                                                       Deployment.status != DeploymentStatus.DROPPED)
                              .order_by(Deployment.version.desc()))
    if previous is not None and move.kind != PoolMoveKind.DEPLOY:
        previous.status = DeploymentStatus.ACTIVE
        if move.reserve_before is not None:
            txid, vout, satoshis = move.reserve_before.split(":")
            previous.current_txid, previous.current_vout, previous.current_satoshis = txid, int(vout), int(satoshis)
        elif previous.current_txid == move.txid:
            previous.current_satoshis = 0
        bounty.status = BountyStatus.ACTIVE
    if move.kind == PoolMoveKind.TOP_UP:
        bounty.budget_sats -= move.added_sats
    if move.kind == PoolMoveKind.DEPLOY:  # the pool never existed on chain
        bounty.status = BountyStatus.WITHDRAWN
        if previous is not None:
            previous.status, previous.current_satoshis = DeploymentStatus.WITHDRAWN, 0
    log.warning("pool move dropped by a reorg: bounty=%d kind=%s txid=%s", bounty.id, move.kind, move.txid)


# -- the books -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolTotals:
    reserve: int  # the reserve output of the active deployment
    live_prizes: int  # prizes on chain (free or being claimed)
    live_value: int
    payouts: int
    claim_fees: int
    owner_fees: int  # the fees of the pool's owner transactions (creating prizes, mostly)
    withdrawn: int  # what withdrawals took back to the wallet (and what a dropped deploy never took)

    @property
    def balance(self) -> int:
        return self.reserve + self.live_value


def pool_totals(session: Session, bounty: Bounty) -> PoolTotals:
    active = _active(session, bounty)
    live_prizes, live_value = session.execute(
        select(func.count(Prize.id), func.coalesce(func.sum(Prize.satoshis), 0))
        .where(Prize.bounty_id == bounty.id, Prize.status.in_(UNSPENT))).one()
    payouts, claim_fees = session.execute(
        select(func.coalesce(func.sum(Payout.satoshis), 0), func.coalesce(func.sum(Payout.fee_sats), 0))
        .where(Payout.bounty_id == bounty.id)).one()
    owner_fees, withdrawn = session.execute(
        select(func.coalesce(func.sum(PoolMove.fee_sats), 0),
               func.coalesce(func.sum(PoolMove.added_sats).filter(PoolMove.kind == PoolMoveKind.WITHDRAW), 0))
        .where(PoolMove.bounty_id == bounty.id, PoolMove.dropped.is_(False))).one()
    # a deploy a reorg dropped never took the budget from the wallet: it counts as withdrawn (the budget itself
    # stays, as the terms were made, and cannot go below the payout)
    never_left = session.scalar(select(func.coalesce(func.sum(PoolMove.added_sats), 0)).where(
        PoolMove.bounty_id == bounty.id, PoolMove.kind == PoolMoveKind.DEPLOY, PoolMove.dropped.is_(True))) or 0
    return PoolTotals(reserve=active.current_satoshis if active is not None else 0, live_prizes=int(live_prizes),
                      live_value=int(live_value), payouts=int(payouts),
                      claim_fees=int(claim_fees), owner_fees=int(owner_fees),
                      withdrawn=-int(withdrawn) + int(never_left))
