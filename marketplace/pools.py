"""Operating pool bounties (contracts.pool): create, top up, withdraw, redeploy, keep prizes live, hand them out.

A pool bounty is K prize outputs that share one locking script, plus the owner's reserve: a P2PKH output of a
key derived for the bounty (`Wallet.reserve_address`), so no other wallet spend touches it. Every owner
transaction is one `pool_move` paid from the pool's own funds, booked by `pool_ledger.book_move`.

Prizes are handed out one per submission (`take_prize`): on PostgreSQL a row lock that skips locked rows,
on SQLite a conditional update (SQLite runs one writer at a time); claims to different prizes run at the same
time. The keeper (`keep_pools`, run by the watcher's process, which holds the operator key) creates prizes in
batches as they are claimed, as many as the last minute's claims (bounded by the settings and the bounty's K),
and frees prizes handed out to a submission that never spent them.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from bsv import Script, Transaction
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, contains_eager

from contracts.errors import ContractError
from contracts.fees import fee_for
from contracts.pool import PoolContract
from contracts.transactions import Utxo
from marketplace.chain.errors import TransactionRejected
from marketplace.errors import BountyClosed, InvalidRequest, NotFound
from marketplace.pool_ledger import (
    UNSPENT,
    book_move,
    next_deployment,
    pool_totals,
    prize_utxo,
    reserve_utxo,
)
from marketplace.runtime import Runtime, script_sha256
from marketplace.schema import (
    Bounty,
    BountyShape,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    PoolMove,
    PoolMoveKind,
    Prize,
    PrizeStatus,
    Submission,
)

log = logging.getLogger(__name__)
MOVE_RETRIES = 5  # an owner transaction rebuilt after a claim took one of its prizes first
RATE_WINDOW = timedelta(minutes=1)  # the claims that size the pool: the last minute's
KEEP_INTERVAL = 0.2  # seconds between the keeper's looks (a look is a few indexed queries)
# a pool transaction beyond its prizes: version, counts, locktime; the reserve's input; the reserve's output
MOVE_OVERHEAD_BYTES = 10 + 148 + 34


def prize_creation_fee(pool: PoolContract, fee_rate: int) -> int:
    """The fee one more prize output adds to the transaction that creates it: its value, the script's length
    (3 bytes up to 64 KB) and the script, at `fee_rate` (rounded up, so never less than bsv-sdk charges)."""
    script = len(pool.lock().serialize())
    return fee_for(8 + (1 if script < 253 else 3 if script < 65_536 else 5) + script, fee_rate) + 1


def prizes_affordable(pool: PoolContract, satoshis: int, fee_rate: int) -> int:
    """How many prizes `satoshis` of pool money create in one transaction, its fee included."""
    left = satoshis - fee_for(MOVE_OVERHEAD_BYTES, fee_rate)
    return max(left // (pool.prize_satoshis + prize_creation_fee(pool, fee_rate)), 0)


def images_left(totals_live: int, reserve: int, pool: PoolContract, fee_rate: int) -> int:
    """Images the pool pays for whatever they are: one per live prize, and the prizes its reserve creates."""
    return totals_live + prizes_affordable(pool, reserve, fee_rate)


# -- operator actions ----------------------------------------------------------------------------------------


def create_pool(rt: Runtime, session: Session, bounty: Bounty, model: ModelVersion, budget: int) -> Deployment:
    """Fund a new pool bounty with `budget` sats from the wallet: up to `bounty.prizes` prizes and the reserve,
    the transaction's fee paid from the budget (every fee of a pool is the bounty's)."""
    pool = rt.new_pool(model, bounty)
    count = min(bounty.prizes or 0, prizes_affordable(pool, budget, rt.settings.fee_rate))
    if count < 1:
        need = pool.prize_satoshis + prize_creation_fee(pool, rt.settings.fee_rate) + \
            fee_for(MOVE_OVERHEAD_BYTES, rt.settings.fee_rate)
        raise InvalidRequest(f"a budget of {budget:,} sats cannot create one prize: a prize holds the "
                             f"{bounty.payout_sats:,}-sat payout plus up to {bounty.max_fee_sats:,} sats for its "
                             f"claim's fee, and creating it costs about {need - pool.prize_satoshis:,} sats of fee "
                             f"at {rt.settings.fee_rate} sat/kB, so the budget must be at least {need:,} sats")
    tx = rt.wallet.build_pool_move(rt.chain, bounty.id, pool=pool, count=count, add=budget,
                                   fee_rate=rt.settings.fee_rate)
    rt.chain.broadcast(tx)
    deployment = Deployment(bounty=bounty, version=1, model_id=model.id, locking_script_sha256=script_sha256(pool),
                            deploy_txid=tx.txid(), current_txid=tx.txid(), current_vout=0, current_satoshis=0)
    session.add(deployment)
    session.flush()
    book_move(session, rt, bounty, tx, PoolMoveKind.DEPLOY, deployment)
    return deployment


def fund_pool(rt: Runtime, session: Session, bounty: Bounty, deployment: Deployment, amount: int) -> Transaction:
    """Top up: `amount` sats from the wallet join the reserve (its fee from the pool's funds). The keeper may
    spend the reserve into a refill meanwhile: the top-up is then rebuilt on the refill's reserve."""
    for _attempt in range(MOVE_RETRIES):
        tx = rt.wallet.build_pool_move(rt.chain, bounty.id, reserve=reserve_utxo(rt, deployment), add=amount,
                                       fee_rate=rt.settings.fee_rate)
        try:
            rt.chain.broadcast(tx)
        except TransactionRejected as exc:
            if "double spend" not in exc.reason.lower():
                raise
            session.refresh(deployment)  # the keeper's refill moved the reserve
            continue
        book_move(session, rt, bounty, tx, PoolMoveKind.TOP_UP)
        return tx
    raise BountyClosed(f"bounty {bounty.id} is too busy: {MOVE_RETRIES} top-ups lost races with the keeper")


def withdraw_pool(rt: Runtime, bounty_id: int) -> tuple[Transaction, int]:
    """Reclaim every live prize and the reserve to the wallet in one transaction; the bounty closes. A claim
    that takes a prize meanwhile wins it (its spend reached the chain first); the withdrawal is then rebuilt
    without it. Returns the transaction and the sats withdrawn."""
    return _owner_move(rt, bounty_id, PoolMoveKind.WITHDRAW)


def redeploy_pool(rt: Runtime, bounty_id: int, model: ModelVersion) -> Transaction:
    """Reclaim the live prizes and create as many under `model`, with the reserve, in one transaction."""
    tx, _ = _owner_move(rt, bounty_id, PoolMoveKind.REDEPLOY, model)
    return tx


def _owner_move(rt: Runtime, bounty_id: int, kind: PoolMoveKind, model: ModelVersion | None = None
                ) -> tuple[Transaction, int]:
    won: set[int] = set()  # prizes a claim spent meanwhile (still unbooked, so still UNSPENT): left out
    for _attempt in range(MOVE_RETRIES):
        with rt.session() as session:
            bounty, deployment = live_pool(session, bounty_id)
            # a retired deployment's prizes too: a reorg that drops a claim after a redeploy gives its prize back
            # there, where nothing hands it out, so the owner's next move takes it (by its own contract's path)
            prizes = list(session.scalars(select(Prize).where(Prize.bounty_id == bounty_id, Prize.status.in_(UNSPENT),
                                                              Prize.id.not_in(won)).order_by(Prize.id)))
            spent = [(rt.pool(prize.deployment), prize_utxo(rt, prize)) for prize in prizes]
            reserve = reserve_utxo(rt, deployment)
            if not spent and reserve is None:
                raise BountyClosed(f"bounty {bounty_id} holds nothing to move: no live prize and no reserve")
            target, new_pool, count = None, None, 0
            if model is not None:
                new_pool = rt.new_pool(model, bounty)
                funds = sum(u.satoshis for _, u in spent) + (reserve.satoshis if reserve else 0)
                # as many as the claims of late need: the old prizes' creation fees are spent either way
                count = min(pool_target(session, bounty, rt.settings.pool_min_prizes),
                            prizes_affordable(new_pool, funds, rt.settings.fee_rate))
            try:
                tx = rt.wallet.build_pool_move(rt.chain, bounty_id, pool=new_pool, count=count, prizes=spent,
                                               reserve=reserve, withdraw=kind == PoolMoveKind.WITHDRAW,
                                               fee_rate=rt.settings.fee_rate)
            except ContractError as exc:
                raise BountyClosed(f"bounty {bounty_id} cannot {kind}: {exc}") from None
            try:
                rt.chain.broadcast(tx)
            except TransactionRejected as exc:
                if "double spend" not in exc.reason.lower():
                    raise
                won |= _forget_spent(rt, session, prizes)  # a claim won a prize: the next attempt leaves it out
                continue
            if model is not None and new_pool is not None:
                target = next_deployment(session, bounty, deployment, model, new_pool, tx.txid())
            move = book_move(session, rt, bounty, tx, kind, target)
            return tx, -move.added_sats
    raise BountyClosed(f"bounty {bounty_id} is too busy: {MOVE_RETRIES} attempts lost races with claims")


def _forget_spent(rt: Runtime, session: Session, prizes: list[Prize]) -> set[int]:
    """Prizes the chain says are spent are no longer handed out; the watcher books who spent them. Returns their
    ids: a TAKEN prize is still UNSPENT to the books, so the caller must leave these out itself."""
    won = set()
    for prize in prizes:
        if rt.chain.spender_of(prize.txid, prize.vout) is not None:
            won.add(prize.id)
            if prize.status == PrizeStatus.LIVE:
                prize.status, prize.taken_at = PrizeStatus.TAKEN, datetime.now(UTC)
    return won


def live_pool(session: Session, bounty_id: int) -> tuple[Bounty, Deployment]:
    bounty = session.get(Bounty, bounty_id)
    if bounty is None:
        raise NotFound(f"there is no bounty {bounty_id}")
    deployment = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty_id,
                                                         Deployment.status == DeploymentStatus.ACTIVE))
    if bounty.status != BountyStatus.ACTIVE or deployment is None:
        raise BountyClosed(f"bounty {bounty_id} is {bounty.status} and takes no submissions")
    return bounty, deployment


# -- handing out prizes --------------------------------------------------------------------------------------


def take_prize(session: Session, bounty_id: int) -> Prize | None:
    """A free prize of the bounty's active deployment, now taken by the caller's submission (committed with the
    session), or None when every prize is taken or the bounty is closed. Two submissions never get the same
    prize. One query: the prize comes with its deployment, the bounty and the model loaded (the claim needs them)."""
    free = (select(Prize).join(Prize.deployment).join(Deployment.bounty).join(Deployment.model)
            .where(Prize.bounty_id == bounty_id, Prize.status == PrizeStatus.LIVE,
                   Deployment.status == DeploymentStatus.ACTIVE, Bounty.status == BountyStatus.ACTIVE)
            .options(contains_eager(Prize.deployment).contains_eager(Deployment.bounty),
                     contains_eager(Prize.deployment).contains_eager(Deployment.model))
            .order_by(Prize.id))
    if session.get_bind().dialect.name == "postgresql":
        prize = session.scalar(free.limit(1).with_for_update(skip_locked=True, of=Prize))
        if prize is not None:
            prize.status, prize.taken_at = PrizeStatus.TAKEN, datetime.now(UTC)
        return prize
    for candidate in session.scalars(free.limit(8)):
        taken = session.execute(update(Prize).where(Prize.id == candidate.id, Prize.status == PrizeStatus.LIVE)
                                .values(status=PrizeStatus.TAKEN, taken_at=datetime.now(UTC))
                                .execution_options(synchronize_session="fetch"))
        if getattr(taken, "rowcount", 0) == 1:
            return candidate
    return None


def release_prize(rt: Runtime, prize_id: int) -> None:
    """Give back a prize whose claim was not sent (refused before the broadcast, or queued)."""
    with rt.session() as session:
        session.execute(update(Prize).where(Prize.id == prize_id, Prize.status == PrizeStatus.TAKEN)
                        .values(status=PrizeStatus.LIVE, taken_at=None))


# -- the keeper ----------------------------------------------------------------------------------------------


def keep_pools(rt: Runtime) -> int:
    """Keep every active pool stocked: free stale prizes, then create a batch when the live prizes fall to half
    of the target. Returns how many prizes were created."""
    with rt.session() as session:
        ids = list(session.scalars(select(Bounty.id).where(Bounty.shape == BountyShape.POOL,
                                                           Bounty.status == BountyStatus.ACTIVE)))
    created = 0
    for bounty_id in ids:
        try:
            created += _keep(rt, bounty_id)
        except (BountyClosed, TransactionRejected, ContractError) as exc:  # a race with a withdrawal, or broke
            log.warning("pool keeper: bounty %d not stocked: %s", bounty_id, exc)
    return created


def keep_forever(rt: Runtime, stop: threading.Event, interval: float = KEEP_INTERVAL) -> None:
    """The keeper as a loop of its own (`bounty daemon`'s and the embedded service's thread): a refill must not
    wait behind a watcher step of up to 200 chain events while claims wait for prizes."""
    while not stop.is_set():
        try:
            keep_pools(rt)
        except Exception:  # keep keeping: a transient database or chain error must not end the thread
            log.exception("pool keeper step failed; retrying in %.1f s", interval)
        stop.wait(interval)


def _keep(rt: Runtime, bounty_id: int) -> int:
    with rt.session() as session:
        bounty, deployment = live_pool(session, bounty_id)
        _free_stale(rt, session, deployment)
        # free prizes, not unspent ones: those handed out are paid already, whatever their claims' speed
        free = session.scalar(select(func.count(Prize.id)).where(Prize.deployment_id == deployment.id,
                                                                 Prize.status == PrizeStatus.LIVE)) or 0
        if free * 2 > (bounty.prizes or 1) or deployment.current_satoshis <= 0:
            return 0  # stocked whatever the target (it is at most K): the usual case, one count
        target = pool_target(session, bounty, rt.settings.pool_min_prizes)
        if free * 2 > target:
            return 0
        reserve = reserve_utxo(rt, deployment)  # a chain lookup: only when a refill is due
        if reserve is None:
            return 0
        pool = rt.pool(deployment)
        count = min(target - free, prizes_affordable(pool, reserve.satoshis, rt.settings.fee_rate))
        if count < 1:
            return 0
        tx = rt.wallet.build_pool_move(rt.chain, bounty_id, pool=pool, count=count, reserve=reserve,
                                       fee_rate=rt.settings.fee_rate)
        rt.chain.broadcast(tx)
        book_move(session, rt, bounty, tx, PoolMoveKind.REFILL)
        return count


def pool_target(session: Session, bounty: Bounty, minimum: int) -> int:
    """How many prizes to keep live: the last minute's claims, at least `minimum`, at most the bounty's K."""
    since = datetime.now(UTC) - RATE_WINDOW
    recent = session.scalar(select(func.count(Submission.id)).where(
        Submission.bounty_id == bounty.id, Submission.txid.is_not(None), Submission.created_at >= since)) or 0
    return max(min(recent, bounty.prizes or 1), min(minimum, bounty.prizes or 1))


def _free_stale(rt: Runtime, session: Session, deployment: Deployment) -> None:
    """Prizes handed out long ago whose outputs are still unspent (the claimant's process died) are free again."""
    cutoff = datetime.now(UTC) - timedelta(seconds=rt.settings.pool_take_timeout)
    for prize in session.scalars(select(Prize).where(Prize.deployment_id == deployment.id,
                                                     Prize.status == PrizeStatus.TAKEN, Prize.taken_at < cutoff)):
        if rt.chain.spender_of(prize.txid, prize.vout) is None:
            prize.status, prize.taken_at = PrizeStatus.LIVE, None


def pool_view_figures(rt: Runtime, session: Session, bounty: Bounty, deployment: Deployment | None) -> dict[str, int]:
    """The numbers a pool bounty's view shows (see BountyPublic)."""
    totals = pool_totals(session, bounty)
    per_prize = prize_creation_fee(rt.pool(deployment), rt.settings.fee_rate) if deployment else 0
    active = bounty.status == BountyStatus.ACTIVE and deployment is not None
    moves = session.scalar(select(func.count(PoolMove.id)).where(PoolMove.bounty_id == bounty.id)) or 0
    return {
        "remaining_sats": totals.balance,
        "fee_sats_per_image": bounty.max_fee_sats + per_prize,
        "images_left": images_left(totals.live_prizes, totals.reserve, rt.pool(deployment), rt.settings.fee_rate)
        if active and deployment is not None else 0,
        "fees_spent_sats": totals.claim_fees + totals.owner_fees,
        "live_prizes": totals.live_prizes,
        "reserve_sats": totals.reserve,
        "owner_transactions": moves,
    }


# -- the claim path's cheap reads (bench/service.py: per claim, not per pool) ---------------------------------


def can_pay_more(rt: Runtime, session: Session, bounty: Bounty, deployment: Deployment) -> bool:
    """`pool_view_figures(...)["images_left"] >= 1` for the active `deployment`, without summing the books: a
    prize still on chain, or a reserve that creates one."""
    unspent = select(Prize.id).where(Prize.bounty_id == bounty.id, Prize.status.in_(UNSPENT)).limit(1)
    return session.scalar(unspent) is not None or \
        prizes_affordable(rt.pool(deployment), deployment.current_satoshis, rt.settings.fee_rate) >= 1


def booked_prize(pool: PoolContract, prize: Prize) -> Utxo:
    """A prize as the books hold it (`book_move` books only outputs locked by the prize script, with their
    value), so a claim need not fetch and parse the transaction that created it: a refill's holds up to K
    prize scripts of ~42 KB each. A fresh Script: bsv-sdk parses a script's chunks lazily, unsafely to share."""
    return Utxo(prize.txid, prize.vout, prize.satoshis, Script(pool.lock().serialize()))
