"""The books of a pool bounty, checked against the chain: the load driver, the fault tests and
tests/integration/test_pools.py all use this one check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from contracts.fees import fee_for
from marketplace.pool_ledger import UNSPENT, PoolTotals, input_values, pool_totals
from marketplace.schema import Bounty, Deployment, DeploymentStatus, PoolMove, Prize


def pool_books_failures(rt: Any, bounty_id: int) -> list[str]:
    """What is wrong with a pool's books, in sentences (none when they are exact):
    budget - withdrawn == reserve + live prizes + payouts + claim fees + owner-transaction fees; every live
    prize and the reserve unspent on chain with the value booked; every owner transaction's fee exactly what
    its size costs at the rate (up to the dust of an output not worth making); the API's remaining_sats."""
    failures = []
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        t = pool_totals(session, bounty)
        if bounty.budget_sats - t.withdrawn != t.reserve + t.live_value + t.payouts + t.claim_fees + t.owner_fees:
            failures.append(f"budget {bounty.budget_sats} - withdrawn {t.withdrawn} != reserve {t.reserve} + live "
                            f"prizes {t.live_value} + payouts {t.payouts} + claim fees {t.claim_fees} + owner fees "
                            f"{t.owner_fees}")
        live = list(session.scalars(select(Prize).where(Prize.bounty_id == bounty_id, Prize.status.in_(UNSPENT))))
        outpoints = [(p.id, p.txid, p.vout, p.satoshis) for p in live]
        moves = [(m.txid, m.fee_sats) for m in session.scalars(
            select(PoolMove).where(PoolMove.bounty_id == bounty_id, PoolMove.dropped.is_(False)))]
        active = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty_id,
                                                         Deployment.status == DeploymentStatus.ACTIVE))
        reserve = (active.current_txid, active.current_vout, active.current_satoshis) if active else None
    for prize_id, txid, vout, satoshis in outpoints:
        source = rt.chain.get_transaction(txid)
        if source is None or rt.chain.spender_of(txid, vout) is not None or source.outputs[vout].satoshis != satoshis:
            failures.append(f"live prize {prize_id} ({txid}:{vout}, {satoshis} sats) is not unspent on chain")
    if reserve is not None and reserve[2]:
        source = rt.chain.get_transaction(reserve[0])
        if source is None or rt.chain.spender_of(reserve[0], reserve[1]) is not None or \
                source.outputs[reserve[1]].satoshis != reserve[2]:
            failures.append(f"the reserve {reserve[0]}:{reserve[1]} ({reserve[2]} sats) is not unspent on chain")
    for txid, fee in moves:
        tx = rt.chain.get_transaction(txid)
        if tx is None:
            failures.append(f"owner transaction {txid} is not on chain")
            continue
        paid = sum(input_values(rt, tx)) - sum(o.satoshis for o in tx.outputs)
        least = fee_for(tx.byte_length(), rt.settings.fee_rate)
        if fee != paid or not least <= paid <= least + fee_for(34, rt.settings.fee_rate):
            failures.append(f"owner transaction {txid} paid {paid} sats of fee (booked {fee}); its size costs {least}")
    return failures


def pool_on_chain(rt: Any, bounty_id: int) -> tuple[PoolTotals, int]:
    """The pool's totals as booked, and what its live prizes and reserve hold on chain (unspent outputs only)."""
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        totals = pool_totals(session, bounty)
        outpoints = [(p.txid, p.vout) for p in session.scalars(
            select(Prize).where(Prize.bounty_id == bounty_id, Prize.status.in_(UNSPENT)))]
        active = session.scalar(select(Deployment).where(Deployment.bounty_id == bounty_id,
                                                         Deployment.status == DeploymentStatus.ACTIVE))
        if active is not None and active.current_satoshis:
            outpoints.append((active.current_txid, active.current_vout))
    held = 0
    for txid, vout in outpoints:
        source = rt.chain.get_transaction(txid)
        if source is not None and rt.chain.spender_of(txid, vout) is None:
            held += int(source.outputs[vout].satoshis)
    return totals, held
