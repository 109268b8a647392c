"""Vetting: what a vetted bounty checks before its attestor co-signs a payment.

In order, each refusal ending the submission `rejected` with its reason:

1. **quotas**: the payee address and the client each have an hourly quota (`quota`);
2. **novelty**: the image must not be a copy or near copy of MNIST (`known_image`: the model was trained on
   it) nor of any image submitted before to any of this operator's bounties: the first submission of an image
   owns it, so a later one is refused whatever its payee (`duplicate` for the same payee, `claimed_by_another`
   for another). The check and the claim (inserting the submission's row) happen under one database lock, so
   two API processes cannot both claim the same image;
3. **the judge**: an independent model must read the claimed digit, and its out-of-distribution score must
   pass (`judge_disagrees`, `out_of_distribution`).

The novelty index lives in each process (MNIST's 70,000 images, then every stored submission, caught up from
the database under the lock before each check); the judge runs in numpy, so the API never loads TensorFlow.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from marketplace.novelty import THRESHOLD, Match, NoveltyIndex
from marketplace.novelty.mnist import load_or_build
from marketplace.quota import ClientAddress, Quota, counters_for
from marketplace.schema import RejectReason, Submission, SubmissionStatus, WatcherState
from marketplace.settings import Settings
from model.judge import Judge, load_judge

log = logging.getLogger(__name__)

LOCK_KEY = "novelty_lock"  # a watcher_state row whose update serialises claims across processes
CATCH_UP_SLACK = 1_000  # re-read this many ids below the newest indexed one (ids may commit out of order)
SUBMISSION_KEY = "submission:"
# refusals that leave an image unclaimed: a quota, or a payment that failed after vetting (retry it)
NOT_CLAIMING = (RejectReason.QUOTA, RejectReason.BOUNTY_EXHAUSTED, RejectReason.DOUBLE_SPEND,
                RejectReason.BROADCAST_FAILED, RejectReason.INVALID_SCRIPT, RejectReason.WRONG_DIGIT,
                RejectReason.LOW_MARGIN)


@dataclass
class Outcome:
    """What vetting found: `reason` is None when the attestor may sign; `figures` go on the receipt."""

    reason: RejectReason | None = None
    figures: dict[str, Any] = field(default_factory=dict)


class Vetting:
    """The checks of one service process (their state is built on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        counters = counters_for(settings.redis_url)
        self.payee_quota = Quota("payee", settings.quota_per_payee_per_hour, counters)
        self.client_quota = Quota("client", settings.quota_per_client_per_hour, counters)
        self.clients = ClientAddress(settings.trusted_proxy_networks)
        self._lock = threading.Lock()
        self._index: NoveltyIndex | None = None
        self._judge: Judge | None = None
        self._newest_indexed = 0

    # -- the parts -------------------------------------------------------------------------------------

    @property
    def judge(self) -> Judge:
        with self._lock:
            if self._judge is None:
                self._judge = load_judge(self.settings.judge_path)
            return self._judge

    def index(self) -> NoveltyIndex:
        """MNIST's images (from a file built once, in a child process), then submissions as they come."""
        with self._lock:
            if self._index is None:
                s = self.settings
                faiss.omp_set_num_threads(1)  # one lookup per request thread; faiss's own threads only contend
                self._index = load_or_build(s.novelty_cache_dir or s.home, s.novelty_index_mnist_test)
            return self._index

    def policy(self) -> dict[str, Any]:
        """The published vetting policy of this service's vetted bounties."""
        s = self.settings
        return {**self.judge.policy(), "novelty_threshold": THRESHOLD,
                "quota_per_payee_per_hour": s.quota_per_payee_per_hour,
                "quota_per_client_per_hour": s.quota_per_client_per_hour}

    def vet(self, session: Session, row: Submission, image: np.ndarray, client: str | None) -> Outcome:
        """Quotas, then the claim and the novelty check, then the judge; `row` is stored either way, its
        `vetting` figures set (the caller marks it rejected when a reason is returned)."""
        assert row.claimed_digit is not None
        if client is not None and not self.client_quota.take(client):  # every attempt counts against a client
            session.add(row)
            row.vetting = {"quota": "this client used its hourly quota"}
            return Outcome(RejectReason.QUOTA, row.vetting)
        outcome = self.claim(session, row)
        if outcome.reason is None:
            judged = self.judged(image, row.claimed_digit)
            outcome = Outcome(judged.reason, {**outcome.figures, **judged.figures})
        # a payee's quota counts payments only: nobody can use up someone else's with images that fail
        if outcome.reason is None and not self.payee_quota.take(row.recipient_address):
            outcome = Outcome(RejectReason.QUOTA, {**outcome.figures, "quota": "the payee used its hourly quota"})
        row.vetting = outcome.figures
        return outcome

    # -- the checks ------------------------------------------------------------------------------------

    def claim(self, session: Session, row: Submission) -> Outcome:
        """Check `row`'s image for copies and claim it (insert the row), atomically across processes."""
        _take_lock(session)
        index = self.index()
        self._catch_up(session, index)
        image = np.frombuffer(row.pixels, dtype=np.uint8)
        match = index.is_copy(image)
        reason = None if match is None else _copy_reason(session, match, row.recipient_pkh)
        session.add(row)
        session.flush()  # the image is claimed once this transaction commits (the index learns it then, from
        # the database, in the next claim's catch-up: a transaction that fails leaves no trace in the index)
        if match is None or reason is None:
            return Outcome(figures={"novelty": {"passed": True}})
        return Outcome(reason, {"novelty": {"passed": False, "copy_of": match.key,
                                            "distance": round(match.distance, 4)}})

    def judged(self, image: np.ndarray, claimed: int) -> Outcome:
        verdict = self.judge.verdict(image, claimed)
        figures = {"judge": verdict.to_json()}
        return Outcome(None if verdict.reason is None else RejectReason(verdict.reason), figures)

    def _catch_up(self, session: Session, index: NoveltyIndex) -> None:
        """Index the submissions stored since this process last looked (by any process, any bounty)."""
        rows = session.execute(select(Submission.id, Submission.pixels)
                               .where(Submission.id > self._newest_indexed - CATCH_UP_SLACK,
                                      or_(Submission.reason.is_(None), Submission.reason.not_in(NOT_CLAIMING)))
                               .order_by(Submission.id)).all()
        fresh = [(f"{SUBMISSION_KEY}{i}", pixels) for i, pixels in rows if f"{SUBMISSION_KEY}{i}" not in index]
        if fresh:
            index.add_many([key for key, _ in fresh],
                           np.stack([np.frombuffer(pixels, dtype=np.uint8) for _, pixels in fresh]))
        if rows:
            self._newest_indexed = max(self._newest_indexed, rows[-1][0])


def _take_lock(session: Session) -> None:
    """Hold the claims lock until this transaction ends: an UPDATE of one row takes SQLite's write lock and
    PostgreSQL's row lock alike, so a second claimant waits for the first to commit."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(WatcherState).values(key=LOCK_KEY, value="").on_conflict_do_nothing())
    session.execute(update(WatcherState).where(WatcherState.key == LOCK_KEY).values(value=WatcherState.value))


def _copy_reason(session: Session, match: Match, payee_pkh: str) -> RejectReason | None:
    """Why a copy is refused; None when what it copies holds no claim (refused for a quota, or for a payment
    that failed: its sender may try again)."""
    if not match.key.startswith(SUBMISSION_KEY):
        return RejectReason.KNOWN_IMAGE
    first = session.get(Submission, int(match.key.removeprefix(SUBMISSION_KEY)))
    if first is None or (first.status == SubmissionStatus.REJECTED and first.reason in NOT_CLAIMING):
        return None
    return RejectReason.DUPLICATE if first.recipient_pkh == payee_pkh else RejectReason.CLAIMED_BY_ANOTHER
