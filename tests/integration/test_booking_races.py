"""Two writers booking the same thing at the same instant: the API and the watcher one spend of a chain-shape
bounty (marketplace.ledger), two workers one accepted image (workers.persistence). Each test steps the rival
writer at the exact moment between the first writer's look-up and its insert, so the insert meets the rival's
row, and checks that the result is one row, one payout, and an answer that says so. And the other side of that
tolerance: a booking refused for any other reason is not taken for the rival's."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from marketplace.bounties import create_bounty
from marketplace.ledger import record_migration
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import (
    Deployment,
    DeploymentStatus,
    Payout,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    TrainingImage,
)
from marketplace.submissions import send_queued
from marketplace.watcher import Watcher
from tests.integration.test_service import PAYOUT, USER, books_balance, client, post, settle
from tests.support.holding import queue_until_a_block
from tests.support.settings import settings_for
from tests.support.statement_faults import database_fails
from workers.persistence import persist_accepted


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(settings_for(tmp_path / "home", novelty_index_mnist_test=False))
    yield runtime
    runtime.close()


def step_rival_before(rt: Runtime, statement_start: str, rival: Callable[[], object]) -> list[bool]:
    """Run `rival` (in a thread of its own, waited for) right before the next statement starting with
    `statement_start` that another thread runs (the app runs in threads of the test client's); returns a list
    that holds True once it ran."""
    stepped: list[bool] = []

    @event.listens_for(rt.engine, "before_cursor_execute")
    def rival_first(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.startswith(statement_start) and threading.current_thread().name != "rival" and not stepped:
            stepped.append(True)
            step = threading.Thread(target=rival, name="rival")
            step.start()
            step.join(timeout=60)
            assert not step.is_alive(), "the rival writer did not finish"

    return stepped


def test_a_spend_the_watcher_books_between_the_apis_look_up_and_its_insert_is_answered_and_paid_once(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api, watcher = client(rt), Watcher(rt, keep=False)
    earlier = post(api, bounty.id, sevens[1])  # booked before: the race's look-up must not take it for its own
    # the API's booking looks its spend up, then inserts it in a savepoint: the watcher books it in between
    stepped = step_rival_before(rt, "SAVEPOINT", watcher.run_once)
    paid = post(api, bounty.id, sevens[0])
    assert stepped and paid["code"] == 202 and paid["payout_sats"] == PAYOUT, paid
    assert paid["id"] != earlier["id"] and paid["txid"] != earlier["txid"]
    with rt.session() as session:
        rows = session.scalars(select(Submission).where(Submission.txid == paid["txid"])).all()
        assert len(rows) == 1 and rows[0].source == SubmissionSource.API  # the API's, though the watcher wrote it
        assert session.scalar(select(func.count(Payout.id)).where(Payout.submission_id == rows[0].id)) == 1
    settle(rt)
    books_balance(rt, bounty.id)


def test_an_image_another_worker_stores_between_this_ones_look_up_and_its_insert_is_stored_once(
        rt: Runtime, sevens: np.ndarray) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    paid = post(client(rt), bounty.id, sevens[0])
    settle(rt)
    with rt.session() as session:
        row = session.scalar(select(Submission).where(Submission.txid == paid["txid"]))
        assert row is not None and row.status == SubmissionStatus.CONFIRMED
        submission_id = row.id
    # the same task delivered twice: the second delivery stores the image right before the first one's insert
    rival: list[int | None] = []
    stepped = step_rival_before(rt, "INSERT INTO training_images",
                                lambda: rival.append(persist_accepted(rt, submission_id)))
    first = persist_accepted(rt, submission_id)
    assert stepped and rival[0] is not None and first == rival[0]  # both deliveries name the one stored image
    with rt.session() as session:
        assert session.scalars(select(TrainingImage.submission_id)).all() == [submission_id]


def test_a_migration_booking_refused_for_another_reason_than_the_other_writers_row_is_raised(rt: Runtime) -> None:
    """record_migration swallows only the unique deploy txid the other writer inserted first: any other refusal
    (here a second active contract for the bounty, from a stale `old`) reaches the caller, nothing booked."""
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)

    def moved(seed: str) -> Transaction:  # an owner transaction's shape as far as the booking reads it
        return Transaction([TransactionInput(source_txid=seed * 32, unlocking_script=Script(b""))],
                           [TransactionOutput(P2PKH().lock(USER.address()), 90_000)])

    with rt.session() as session:
        old = session.scalars(select(Deployment).where(Deployment.bounty_id == bounty.id)).one()
        record_migration(session, old, old.model, moved("61"), old.current_satoshis)
    with rt.session() as session:
        stale = session.scalars(select(Deployment).where(Deployment.bounty_id == bounty.id)
                                .order_by(Deployment.version)).first()
        assert stale is not None and stale.status == DeploymentStatus.MIGRATED
        budget = stale.bounty.budget_sats
        with pytest.raises(IntegrityError):
            record_migration(session, stale, stale.model, moved("62"), 90_000)
        assert stale.bounty.budget_sats == budget  # the savepoint took its changes back


def sets_the_txid(statement: str) -> bool:
    """The booking's first write of a sent submission: its row takes the spend's txid."""
    return statement.startswith("UPDATE submissions SET") and "txid=" in statement.split("WHERE")[0]


def test_a_queued_submission_whose_booking_fails_after_its_broadcast_is_never_sent_again(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database fails ("database is locked", a fault at its boundary) right after a queued submission of a
    chain-shape bounty went out, before it is booked. Sent again after the next block, it would pay the image
    twice: its row takes the spend's txid instead, and the watcher books its payout from the chain, once."""
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    queued = queue_until_a_block(rt, client(rt), bounty.id, sevens[0])
    with database_fails(rt.engine, at=sets_the_txid) as failed, pytest.raises(OperationalError):
        send_queued(rt)
    assert failed
    for _ in range(2):  # blocks come, the queue is sent again: nothing goes out twice
        assert rt.local_chain is not None
        rt.local_chain.mine(1)
        assert send_queued(rt) == 0
    settle(rt)
    with rt.session() as session:
        rows = session.scalars(select(Submission).where(Submission.bounty_id == bounty.id)).all()
        assert [(r.id, str(r.status), r.payout.satoshis if r.payout else None) for r in rows] == [
            (queued["id"], "confirmed", PAYOUT)]
    books_balance(rt, bounty.id)


def test_a_queued_submission_sent_while_the_database_goes_down_is_not_sent_again_when_it_is_back(
        rt: Runtime, sevens: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database goes down right after a queued submission of a chain-shape bounty went out and stays down a
    moment longer than one statement (a server restart, a lock held past the busy timeout): its booking fails, and
    so does marking its row sent. The row was taken (`paying`) before the broadcast, so when the database is back
    no block sends the image again: one payout, booked by the watcher from the chain."""
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    queued = queue_until_a_block(rt, client(rt), bounty.id, sevens[0])
    # the database goes away once the spend is out (its booking's first write), and stays away until the block ends
    with (database_fails(rt.engine, at=sets_the_txid, lasting=True,
                         error="server closed the connection unexpectedly") as down,
          pytest.raises(OperationalError)):
        send_queued(rt)
    assert len(down) >= 2  # the booking and the marking both met the outage
    for _ in range(2):  # the watcher books what the chain holds, blocks come, the queue is sent after each
        settle(rt)
        send_queued(rt)
    settle(rt)
    with rt.session() as session:
        paid = session.scalars(select(Payout).where(Payout.bounty_id == bounty.id)).all()
        assert [p.satoshis for p in paid] == [PAYOUT], "the queued image was paid more than once"
        left = session.get(Submission, queued["id"])
        assert left is not None and left.status == SubmissionStatus.PAYING and left.txid is None  # for an operator
    books_balance(rt, bounty.id)
