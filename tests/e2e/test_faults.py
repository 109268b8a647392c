"""Faults on the real stack (PostgreSQL + Redis db 12; `bounty serve`, `bounty daemon`, Celery worker and beat),
each followed by the books: every accepted submission paid exactly once and kept for training exactly once, and
budget - payouts - fees == the live contract's balance, to the satoshi, in the database, the API and on chain
(`tests.support.load.check_books`; a pool's books: tests/support/pool_books.py). The bursts go to pool bounties
(the default shape); each retraining fault redeploys a pool and a chain bounty.

1. the daemon SIGKILLed mid-stream and restarted;
2. the watcher's cursor set back (to START and to an earlier cursor) and the events replayed;
3. Redis shut down during a burst (the lost hand-offs are swept by one `persist_confirmed` call, standing in for
   the beat's 60 s sweep);
4. PostgreSQL stopped during a burst: the API must answer 503, not 500;
5. a retraining run SIGKILLed in its redeploy (after the first migration broadcast; after its commit).

One stack serves the whole module: its tests run in file order (a shuffled run keeps it: `random_order` below),
the retraining ones last, because they change the model.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from bsv import Network, PrivateKey
from sqlalchemy import select, update

from marketplace import migrate
from marketplace.bounties import create_bounty
from marketplace.schema import (
    Bounty,
    BountyShape,
    Deployment,
    DeploymentStatus,
    RetrainRun,
    TrainingImage,
    WatcherState,
)
from marketplace.watcher import CURSOR_KEY, Watcher
from tests.support.databases import fresh_database
from tests.support.faults import REDIS_URL, Stack, pg_up, postgres_down, redis_down
from tests.support.processes import wait_for
from workers.persistence import persist_accepted, persist_confirmed

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.subprocess,
              pytest.mark.random_order(disabled=True)]  # one stack, shared in file order

ADDRESS = PrivateKey(7301, network=Network.TESTNET).address()
PAYOUT = 500
BUDGET = 200_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with fresh_database("bounty_faults", before_drop=lambda: wait_for("PostgreSQL", pg_up, 60)) as url:
        yield from _stack(tmp_path_factory, url)


def _stack(tmp_path_factory: pytest.TempPathFactory, url: str) -> Iterator[Stack]:
    migrate.upgrade(url)
    redis.Redis.from_url(REDIS_URL).flushdb()
    s = Stack(tmp_path_factory.mktemp("faults"), url)
    try:
        s.start_all()
        yield s
    finally:
        s.stop_all()
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(REDIS_URL).flushdb()


def new_bounty(stack: Stack, shape: BountyShape = BountyShape.POOL) -> int:
    """A pool bounty (the default shape) unless told; the retraining faults redeploy one of each shape."""
    assert stack.rt is not None
    prizes = 16 if shape == BountyShape.POOL else None
    return int(create_bounty(stack.rt, [7], PAYOUT, BUDGET, shape=shape, prizes=prizes).id)


def accepted(results: list[tuple[int, dict]]) -> list[int]:
    return [int(body["id"]) for code, body in results if code == 202]


@pytest.fixture
def earlier_cursor(stack: Stack) -> str | None:
    """The watcher's cursor before the test sends anything: a point in the history to replay from."""
    assert stack.rt is not None
    with stack.rt.session() as session:
        state = session.get(WatcherState, CURSOR_KEY)
        return state.value if state is not None else None


def settle_and_check(stack: Stack, bounty_id: int, sent: list[int], timeout: float = 60) -> dict:
    wait_for(f"bounty {bounty_id} confirmed and persisted", lambda: stack.settled(bounty_id), timeout, 0.3)
    ids = stack.submission_ids(bounty_id)
    assert set(sent) <= set(ids), "a submission answered 202 is missing from the books"
    return stack.books(bounty_id)


# -- 1 ------------------------------------------------------------------------------------------------------

def test_daemon_sigkilled_mid_stream(stack: Stack, sevens: np.ndarray) -> None:
    bounty = new_bounty(stack)

    def fault() -> None:
        stack.mine(1)  # some spends confirm while the daemon dies
        stack.kill("daemon", signal.SIGKILL)
        time.sleep(0.5)  # spends keep arriving with nobody watching
        stack.start_daemon()

    results = stack.burst(bounty, sevens[:14], ADDRESS, during=fault)
    sent = accepted(results)
    assert len(sent) == 14, results
    books = settle_and_check(stack, bounty, sent)
    assert books["payouts"] == 14 and books["paid_sats"] == 14 * PAYOUT


# -- 2 ------------------------------------------------------------------------------------------------------

def test_events_delivered_twice_change_nothing(stack: Stack, sevens: np.ndarray, earlier_cursor: str | None) -> None:
    bounty = new_bounty(stack)
    sent = accepted(stack.burst(bounty, sevens[20:30], ADDRESS))
    assert len(sent) == 10
    before_books = settle_and_check(stack, bounty, sent)
    stack.kill("daemon", signal.SIGTERM)  # the in-test watcher replays alone
    assert stack.rt is not None
    rt = stack.rt
    try:
        before = stack.counts()
        for cursor in ([earlier_cursor] if earlier_cursor else []) + [""]:  # an earlier cursor, then START
            with rt.session() as session:
                session.execute(update(WatcherState).where(WatcherState.key == CURSOR_KEY).values(value=cursor))
            handed: list[int] = []

            def hand_over(submission_id: int, handed: list[int] = handed) -> None:
                handed.append(submission_id)
                persist_accepted(rt, submission_id)

            watcher = Watcher(rt, on_confirmed=hand_over)
            for _ in range(1000):  # bounded: the whole history is a few hundred events
                if not watcher.run_once():
                    break
            else:
                raise AssertionError("the watcher never caught up")
            assert stack.counts() == before, f"replaying from {cursor!r} booked something twice"
            after_books = stack.books(bounty)
            assert after_books == before_books
        with rt.session() as session:
            keys = session.scalars(select(TrainingImage.spend_key)).all()
            assert len(keys) == len(set(keys))
    finally:
        stack.start_daemon()


# -- 3 ------------------------------------------------------------------------------------------------------

def test_redis_restarted_during_a_burst(stack: Stack, sevens: np.ndarray) -> None:
    bounty = new_bounty(stack)
    codes_down: list[int] = []

    def fault() -> None:
        with redis_down():
            stack.mine(1)  # confirmations whose hand-off to the workers cannot be enqueued
            time.sleep(1.5)
            codes_down.append(stack.submit(bounty, sevens[60], ADDRESS)[0])
            stack.mine(1)

    results = stack.burst(bounty, sevens[40:56], ADDRESS, during=fault)
    codes = [code for code, _ in results] + codes_down
    assert 500 not in codes, codes
    sent = accepted(results)
    # every submission confirmed; then one sweep (what the beat's `bounty.persist_confirmed` does every 60 s)
    assert stack.rt is not None

    def all_confirmed() -> bool:
        stack.mine(1)
        return all(s == "confirmed" for s in _statuses(stack, bounty))

    wait_for("every submission confirmed", all_confirmed, 40, 0.3)
    time.sleep(1)  # hand-offs made after Redis came back reach the worker
    swept = persist_confirmed(stack.rt)  # how many hand-offs Redis lost (reported with -s)
    print(f"redis fault: codes while down {codes_down}, swept {swept}")
    books = settle_and_check(stack, bounty, sent)
    assert books["payouts"] == len(stack.submission_ids(bounty))


def _statuses(stack: Stack, bounty_id: int) -> list[str]:
    from marketplace.schema import Submission

    assert stack.rt is not None
    with stack.rt.session() as session:
        return [str(s) for s in session.scalars(select(Submission.status).where(Submission.bounty_id == bounty_id))]


# -- 4 ------------------------------------------------------------------------------------------------------

def test_postgres_restarted_during_a_burst(stack: Stack, sevens: np.ndarray) -> None:
    """Stopped for a few seconds while 16 submissions arrive: afterwards every spend that went out is booked
    exactly once (a spend broadcast before its booking failed is booked by the watcher), the books exact."""
    bounty = new_bounty(stack)

    def fault() -> None:
        with postgres_down():
            for image in sevens[80:83]:
                stack.submit(bounty, image, ADDRESS)

    results = stack.burst(bounty, sevens[60:76], ADDRESS, during=fault)
    wait_for("the API healthy again", lambda: stack.submit(bounty, sevens[90], ADDRESS)[0] == 202, 30, 0.5)
    sent = accepted(results)
    assert len(sent) >= 8, results
    books = settle_and_check(stack, bounty, sent, 60)
    assert books["payouts"] == len(stack.submission_ids(bounty))


def test_api_answers_503_while_postgres_is_down(stack: Stack, sevens: np.ndarray) -> None:
    bounty = new_bounty(stack)
    codes: list[int] = []
    with postgres_down():
        codes += [stack.submit(bounty, sevens[100 + i], ADDRESS)[0] for i in range(2)]
        codes.append(httpx.get(f"{stack.api}/healthz", timeout=10).status_code)
        codes.append(httpx.get(f"{stack.api}/bounties/{bounty}", timeout=10).status_code)
    wait_for("the API healthy again", lambda: stack.submit(bounty, sevens[104], ADDRESS)[0] == 202, 30, 0.5)
    settle_and_check(stack, bounty, [])
    assert codes and all(code == 503 for code in codes), codes


# -- 5 ------------------------------------------------------------------------------------------------------

def _retrain_killed(stack: Stack, mode: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tests.support.faults", mode], env=stack.env, cwd=Path.cwd(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def _one_live_contract_each(stack: Stack) -> dict[int, tuple[str, int]]:
    """Each active bounty: exactly one active deployment, holding exactly its contract's one unspent output (a
    pool: its reserve and live prizes are checked by the books)."""
    assert stack.rt is not None
    rt = stack.rt
    out = {}
    with rt.session() as session:
        for bounty in session.scalars(select(Bounty)):
            live = session.scalars(select(Deployment).where(Deployment.bounty_id == bounty.id,
                                                            Deployment.status == DeploymentStatus.ACTIVE)).all()
            assert len(live) == 1, (bounty.id, str(bounty.status), [(d.version, str(d.status)) for d in live])
            deployment = live[0]
            out[bounty.id] = (deployment.current_txid, deployment.version)
            if bounty.shape == BountyShape.POOL:
                continue
            tx = rt.chain.get_transaction(deployment.current_txid)
            assert tx is not None
            script = tx.outputs[deployment.current_vout].locking_script.serialize()
            utxos = rt.chain.utxos_for_script(script)
            assert [(u.txid, u.vout, u.satoshis) for u in utxos] == [
                (deployment.current_txid, deployment.current_vout, deployment.current_satoshis)], bounty.id
    return out


def _watcher_caught_up(stack: Stack) -> bool:
    assert stack.rt is not None and stack.rt.local_chain is not None
    with stack.rt.session() as session:
        cursor = session.get(WatcherState, CURSOR_KEY)
        value = cursor.value if cursor else ""
    events, _ = stack.rt.chain.events_since(value, 10)  # type: ignore[arg-type]
    return not events


def _books_all(stack: Stack) -> None:
    assert stack.rt is not None
    with stack.rt.session() as session:
        ids = session.scalars(select(Bounty.id)).all()
    for bounty_id in ids:
        stack.books(bounty_id)


@pytest.mark.slow
def test_retrain_killed_after_a_migration_committed(stack: Stack, sevens: np.ndarray) -> None:
    new_bounty(stack)
    new_bounty(stack, BountyShape.CHAIN)
    _retrain_killed(stack, "after-commit")
    wait_for("the daemon to read the migration", lambda: _watcher_caught_up(stack), 30)
    _one_live_contract_each(stack)
    _books_all(stack)
    from marketplace.schema import RetrainTrigger
    from workers.retraining import retrain

    assert stack.rt is not None
    result = retrain(stack.rt, RetrainTrigger.MANUAL)  # at once: the killed holder's process is gone
    assert result.status == "succeeded", result
    wait_for("the daemon to read the migrations", lambda: _watcher_caught_up(stack), 30)
    _one_live_contract_each(stack)
    _books_all(stack)
    with stack.rt.session() as session:
        runs = {r.id: str(r.status) for r in session.scalars(select(RetrainRun))}
    assert sorted(runs.values()) == ["failed", "succeeded"], runs  # the killed one marked abandoned


def test_retrain_killed_right_after_the_first_migration_broadcast(stack: Stack, sevens: np.ndarray) -> None:
    new_bounty(stack)
    new_bounty(stack, BountyShape.CHAIN)
    out = _retrain_killed(stack, "after-broadcast")
    assert "broadcast " in out
    wait_for("the daemon to read the migration", lambda: _watcher_caught_up(stack), 30)
    _one_live_contract_each(stack)
    _books_all(stack)
