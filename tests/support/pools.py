"""The pool tests' shared moves (tests/integration/test_pools.py, test_pool_attacks.py): a pool bounty, a claim
through the HTTP API, the watcher settling a block, and the books checked to the satoshi."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from bsv import Network, PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from contracts.fees import fee_for
from marketplace.api import create_app
from marketplace.bounties import create_bounty
from marketplace.chain import START
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyMode,
    BountyShape,
    Prize,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    WatcherState,
)
from marketplace.watcher import CURSOR_KEY, Watcher
from tests.support.pool_books import pool_books_failures

USER = PrivateKey(7101, network=Network.TESTNET)
OUTSIDER = PrivateKey(7102, network=Network.TESTNET)
PAYOUT = 500


def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt, background=False))


def post(api: TestClient, bounty_id: int, pixels: np.ndarray, address: str = USER.address()) -> dict:
    response = api.post(f"/bounties/{bounty_id}/submissions", json={"pixels": pixels.tolist(), "address": address})
    return {**response.json(), "code": response.status_code}


def settle(rt: Runtime, blocks: int = 1) -> None:
    """The watcher reads everything (and stocks the pools), a block is mined, and it reads again."""
    watcher = Watcher(rt)
    while watcher.run_once():
        pass
    assert rt.local_chain is not None
    rt.local_chain.mine(blocks)
    while watcher.run_once():
        pass


def pool(rt: Runtime, prizes: int = 4, budget: int = 200_000, mode: BountyMode = BountyMode.OPEN) -> int:
    return create_bounty(rt, [7], PAYOUT, budget, mode=mode, shape=BountyShape.POOL, prizes=prizes).id


def books(rt: Runtime, bounty_id: int) -> None:
    """The pool's books are exact (tests/support/pool_books.py), and every claim the service sent paid the
    payout and its prize's whole allowance as fee."""
    assert pool_books_failures(rt, bounty_id) == []
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        paid = list(session.scalars(select(Submission).where(Submission.bounty_id == bounty_id,
                                                             Submission.source == SubmissionSource.API,
                                                             Submission.status != SubmissionStatus.ORPHANED,
                                                             Submission.txid.is_not(None))))
        for row in paid:
            assert row.payout is not None and row.payout.satoshis == PAYOUT
            assert row.payout.fee_sats == bounty.max_fee_sats  # the prize's allowance, all of it
            claim = rt.chain.get_transaction(row.txid)
            assert claim is not None and row.payout.fee_sats >= fee_for(claim.byte_length(), rt.settings.fee_rate)


def prizes_of(rt: Runtime, bounty_id: int) -> dict[str, int]:
    with rt.session() as session:
        rows = session.execute(select(Prize.status, func.count(Prize.id)).where(Prize.bounty_id == bounty_id)
                               .group_by(Prize.status))
        return {str(status): int(count) for status, count in rows}


def rescan(rt: Runtime, on_confirmed: Callable[[int], None] | None = None) -> None:
    """A watcher that reads the chain's whole history again (a restarted one whose cursor was lost)."""
    with rt.session() as session:
        session.execute(update(WatcherState).where(WatcherState.key == CURSOR_KEY).values(value=START))
    watcher = Watcher(rt, on_confirmed=on_confirmed, keep=False)
    for _ in range(1000):
        if not watcher.run_once():
            break
