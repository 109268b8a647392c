"""The watcher: follows the chain's events and keeps the books true to it.

For every transaction the chain accepts, each input that spends a bounty contract is booked
(`ledger.record_spend`): the image and recipient are read from the unlocking script, so spends
made directly on-chain by anyone count like ours. Blocks confirm submissions (and hand them to
the workers once `min_confirmations` deep); removed blocks unconfirm them; transactions a reorg
drops are marked orphaned, lose their payout row and give the contract back its previous output;
a dropped migration is undone (the deployment it retired is live again).

Pool bounties (marketplace.pools) are booked the same way: a spend of a prize is a claim
(`pool_ledger.book_claim`) or, by the owner path, part of an owner transaction (`pool_ledger.adopt_move`), as
is a spend of a pool's reserve; a dropped one is undone (`pool_ledger.undo_drop`). A claim the service booked
as it sent it is only marked seen. With `keep`, the keeper (`pools.keep_pools`) creates prizes where a pool runs
low after each step (the tests' and the demo's way; the services run it in a loop of its own, `keep_forever`).

The cursor is stored in the same database transaction as the effects of the events it covers,
so a restart resumes exactly where the books stop: nothing missed, nothing counted twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from bsv import Transaction
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from marketplace.bounties import current_utxo
from marketplace.chain import (
    NULL_TXID,
    START,
    BlockMined,
    BlockRemoved,
    ChainEvent,
    Cursor,
    TransactionAccepted,
    TransactionDropped,
)
from marketplace.errors import BountyClosed
from marketplace.ledger import record_migration, record_spend
from marketplace.pool_ledger import LIVE_SUBMISSION, UNSPENT, adopt_move, book_claim, undo_drop
from marketplace.pools import keep_pools
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyShape,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Payout,
    Prize,
    PrizeStatus,
    RejectReason,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    WatcherState,
)

log = logging.getLogger(__name__)
CURSOR_KEY = "chain_cursor"
UNSETTLED = (SubmissionStatus.BROADCAST, SubmissionStatus.SEEN)


class Watcher:
    def __init__(self, rt: Runtime, on_confirmed: Callable[[int], None] | None = None,
                 on_block: Callable[[], object] | None = None, keep: bool = True) -> None:
        """`on_confirmed(submission_id)` runs after the commit that confirmed it (the workers' hand-off);
        `on_block()` after each block (the API's queued submissions go out then); `keep`: stock the pools after
        each step (it signs with the operator key, which the watcher's process holds)."""
        self.rt = rt
        self.keep = keep
        self.on_confirmed = on_confirmed
        self.on_block = on_block
        self._watched: set[tuple[str, int]] = set()  # live contract outputs the chain was asked to watch
        self._classifiers: dict[int, bytes] = {}  # model id -> its compiled classifier, as contracts embed it
        self._seen_txids: list[str] = []  # this step's claims the service had booked already (`_mark_seen`)

    def _watch_live_contracts(self, session: Session) -> None:
        """Ask the chain to report the spender of every live contract output, whoever makes it: a backend
        that cannot see everything (NetworkChain) only learns of spends of outputs it watches. Each spend
        the watcher books moves a contract to a new output, watched from the next step on."""
        # a chain-shape contract's output has its deployment's script; a pool's (the reserve) is the owner's
        script = case((Bounty.shape == BountyShape.CHAIN, Deployment.locking_script_sha256), else_=None)
        outputs = select(Deployment.current_txid, Deployment.current_vout, script).join(Bounty).where(
            Deployment.status == DeploymentStatus.ACTIVE)
        prizes = select(Prize.txid, Prize.vout, Deployment.locking_script_sha256).join(Deployment).where(
            Prize.status.in_(UNSPENT))
        live = {(txid, vout): script for txid, vout, script in [*session.execute(outputs), *session.execute(prizes)]}
        for txid, vout in live.keys() - self._watched:
            self.rt.chain.watch(txid, vout, live[txid, vout])  # a pool's prizes share one script
        self._watched = set(live)

    def run_once(self, limit: int = 200) -> int:
        """Apply the next events; returns how many there were."""
        with self.rt.session() as session:
            self._watch_live_contracts(session)
            state = session.get(WatcherState, CURSOR_KEY)
            cursor = Cursor(state.value) if state else START
            events, cursor = self.rt.chain.events_since(cursor, limit)
            confirmed: list[int] = []
            blocks = 0
            self._seen_txids = []
            for event in events:
                confirmed += self._apply(session, event)
                blocks += isinstance(event, BlockMined)
            self._mark_seen(session)
            if state is None:
                session.add(WatcherState(key=CURSOR_KEY, value=cursor))
            else:
                state.value = cursor
        for submission_id in confirmed:  # only after the commit: a worker must find the row
            if self.on_confirmed is not None:
                self.on_confirmed(submission_id)
        if blocks and self.on_block is not None:
            self.on_block()
        if self.keep:
            keep_pools(self.rt)
        return len(events)

    def run_forever(self, stop: threading.Event, interval: float = 1.0, limit: int = 200) -> None:
        """Steps `interval` apart, back to back only while a backlog lasts (a step that took `limit` events): under
        load a step then takes many events in one transaction, and the service has booked its own claims, which
        the watcher then only marks seen, instead of racing the service to book them."""
        while not stop.is_set():
            try:
                taken = self.run_once(limit)
            except Exception:  # keep watching: a transient database or chain error must not end the daemon
                log.exception("watcher step failed; retrying in %.1f s", interval)
                taken = 0
            if taken < limit:
                stop.wait(interval)

    # -- events ---------------------------------------------------------------------------------------

    def _apply(self, session: Session, event: ChainEvent) -> list[int]:
        if isinstance(event, TransactionAccepted):
            tx = self.rt.chain.get_transaction(event.txid)
            if tx is not None:
                self._book(session, tx)
            return []
        if isinstance(event, BlockMined):
            session.execute(update(Submission).where(Submission.txid.in_(event.txids))
                            .values(block_height=event.height))
            confirmed = self._confirm(session)
            log.info("chain event: block height=%d transactions=%d confirmed_submissions=%d", event.height,
                     len(event.txids), len(confirmed))
            return confirmed
        if isinstance(event, BlockRemoved):
            unconfirmed = session.execute(update(Submission).where(Submission.txid.in_(event.txids))
                                          .values(block_height=None, confirmations=0, status=SubmissionStatus.SEEN))
            log.warning("chain event: block removed height=%d transactions=%d unconfirmed_submissions=%d",
                        event.height, len(event.txids), getattr(unconfirmed, "rowcount", 0))
            return []
        if isinstance(event, TransactionDropped):
            self._orphan(session, event.txid)
            self._unmigrate(session, event.txid)
        return []

    def _book(self, session: Session, tx: Transaction) -> None:
        owner_moves: set[int] = set()  # pool bounties whose prizes or reserve the owner spent here
        for index, tx_input in enumerate(tx.inputs):
            outpoint = (tx_input.source_txid, tx_input.source_output_index)
            if outpoint[0] == NULL_TXID:  # a faucet or coinbase input spends nothing
                continue
            prize = session.scalar(select(Prize).where(Prize.txid == outpoint[0], Prize.vout == outpoint[1]))
            if prize is not None and prize.status == PrizeStatus.CLAIMED and prize.spent_txid == tx.txid():
                self._seen_txids.append(tx.txid())  # booked whole already (the service's own claim)
                continue
            if prize is not None:
                claim = book_claim(session, self.rt, prize, tx, index, SubmissionSource.CHAIN, SubmissionStatus.SEEN)
                if claim is None:
                    owner_moves.add(prize.bounty_id)
                else:
                    log.info("chain event: claim txid=%s bounty=%d submission=%d digit=%d margin=%d", tx.txid(),
                             prize.bounty_id, claim.id, claim.predicted_label, claim.margin)
                continue
            reserve_of = session.scalar(select(Deployment.bounty_id).join(Bounty).where(
                Bounty.shape == BountyShape.POOL, Deployment.status == DeploymentStatus.ACTIVE,
                Deployment.current_satoshis > 0, Deployment.current_txid == outpoint[0],
                Deployment.current_vout == outpoint[1]))
            if reserve_of is not None:
                owner_moves.add(reserve_of)
                continue
            deployment = self._deployment_spent_by(session, tx_input.source_txid, tx_input.source_output_index)
            if deployment is None:
                continue
            row = record_spend(session, self.rt, deployment, tx, index, SubmissionSource.CHAIN, SubmissionStatus.SEEN)
            if row is None:  # the owner's spend: a withdrawal, or a migration the service already recorded
                self._owner_spend(session, deployment, tx)
            else:
                log.info("chain event: spend txid=%s bounty=%d submission=%d digit=%d margin=%d", tx.txid(),
                         deployment.bounty_id, row.id, row.predicted_label, row.margin)
        for bounty_id in sorted(owner_moves):
            bounty = session.get(Bounty, bounty_id)
            assert bounty is not None
            adopt_move(session, self.rt, bounty, tx)

    def _mark_seen(self, session: Session) -> None:
        """The claims the service booked as it sent them, now seen on chain, marked so as `book_claim` would (one
        statement per step; a claim confirmed in this very step is past `seen` and stays confirmed)."""
        if self._seen_txids:
            session.execute(update(Submission).where(Submission.txid.in_(self._seen_txids),
                                                     Submission.status.in_(LIVE_SUBMISSION))
                            .values(status=SubmissionStatus.SEEN))

    def _deployment_spent_by(self, session: Session, txid: str, vout: int) -> Deployment | None:
        """The deployment whose contract script locks output txid:vout, if any."""
        if txid == NULL_TXID:  # a faucet or coinbase input spends nothing
            return None
        chain_shape = select(Deployment).join(Bounty).where(Bounty.shape == BountyShape.CHAIN)  # pools: `_book`
        at = session.scalar(chain_shape.where(Deployment.current_txid == txid, Deployment.current_vout == vout)
                            .order_by(Deployment.version.desc()))
        if at is not None:
            return at
        source = self.rt.chain.get_transaction(txid)
        if source is None or vout >= len(source.outputs):
            return None
        script_hash = hashlib.sha256(source.outputs[vout].locking_script.serialize()).hexdigest()
        return session.scalar(chain_shape.where(Deployment.locking_script_sha256 == script_hash)
                              .order_by(Deployment.version.desc()))

    def _owner_spend(self, session: Session, deployment: Deployment, tx: Transaction) -> None:
        if session.scalar(select(Deployment.id).where(Deployment.deploy_txid == tx.txid())) is not None:
            return  # a migration already booked
        if self._adopt_migration(session, deployment, tx):
            return
        if deployment.status == DeploymentStatus.ACTIVE:
            deployment.status, deployment.current_satoshis = DeploymentStatus.WITHDRAWN, 0
            deployment.bounty.status = BountyStatus.WITHDRAWN
            log.info("chain event: withdrawal txid=%s bounty=%d", tx.txid(), deployment.bounty_id)

    def _adopt_migration(self, session: Session, deployment: Deployment, tx: Transaction) -> bool:
        """An owner spend whose output 0 is this bounty's contract under a registered model is a migration
        the service broadcast and has not recorded (yet, or ever if its process died in between): book it."""
        if not tx.outputs:
            return False
        model = self._model_judging(session, deployment, tx.outputs[0].locking_script.serialize())
        if model is None:
            return False
        spent = tx.inputs[0]
        source = self.rt.chain.get_transaction(spent.source_txid)
        before = int(source.outputs[spent.source_output_index].satoshis) if source else 0
        record_migration(session, deployment, model, tx, before)
        log.warning("bounty %d: booked migration %s from the chain (its sender had not recorded it)",
                    deployment.bounty_id, tx.txid())
        return True

    def _model_judging(self, session: Session, deployment: Deployment, script: bytes) -> ModelVersion | None:
        """The registered model whose contract for this bounty `script` is, if any. A contract is the parts
        the bounty's terms make around a model's classifier: the script must have this bounty's parts (those
        of its live contract; a withdrawal's output fails here, nothing compiled), and what they enclose must
        be a registered model's classifier, tried the live contract's model first (a top-up), then newest
        first (a redeploy), each compiled at most once per process (`_classifier`) and only until one matches."""
        live = self.rt.contract(deployment)
        whole, inner = bytes(live.script), bytes(live.classifier.code)
        at = whole.find(inner)
        head, tail = whole[:at], whole[at + len(inner):]
        if at < 0 or len(script) <= len(head) + len(tail) or not (script.startswith(head) and script.endswith(tail)):
            return None
        enclosed = script[len(head):len(script) - len(tail)]
        self._classifiers.setdefault(deployment.model_id, inner)  # the live model's: compiled already
        others = session.scalars(select(ModelVersion).where(ModelVersion.id != deployment.model_id)
                                 .order_by(ModelVersion.version.desc()))
        for model in (deployment.model, *others):
            if self._classifier(model, deployment) == enclosed:
                return model
        return None

    def _classifier(self, model: ModelVersion, deployment: Deployment) -> bytes:
        """A model's classifier as it sits inside every bounty contract (the terms only surround it)."""
        if model.id not in self._classifiers:
            self._classifiers[model.id] = bytes(self.rt.new_contract(model, deployment.bounty).classifier.code)
        return self._classifiers[model.id]

    def _confirm(self, session: Session) -> list[int]:
        tip = self.rt.chain.tip_height()
        needed = max(self.rt.settings.min_confirmations, 1)
        confirmed = []
        for row in session.scalars(select(Submission).where(Submission.block_height.is_not(None),
                                                            Submission.status.in_(UNSETTLED))):
            assert row.block_height is not None
            row.confirmations = tip - row.block_height + 1
            if row.confirmations >= needed:
                row.status = SubmissionStatus.CONFIRMED
                confirmed.append(row.id)
        session.flush()
        return confirmed

    def _orphan(self, session: Session, txid: str) -> None:
        for row in session.scalars(select(Submission).where(Submission.txid == txid)):
            row.status, row.reason = SubmissionStatus.ORPHANED, RejectReason.REORGED_OUT
            payout = session.scalar(select(Payout).where(Payout.submission_id == row.id))
            if payout is not None:
                session.delete(payout)
            deployment = session.get(Deployment, row.deployment_id) if row.deployment_id else None
            if deployment is not None and deployment.current_txid == txid:
                self._rewind(deployment)
            log.warning("chain event: dropped txid=%s bounty=%d submission=%d (orphaned, never paid)", txid,
                        row.bounty_id, row.id)
        session.flush()
        undo_drop(session, self.rt, txid)

    def _unmigrate(self, session: Session, txid: str) -> None:
        """A dropped migration: the deployment it started goes (its spends, children of the migration, were
        dropped and orphaned first) and the one it retired is live again at the outpoint the migration spent;
        the budget returns to what that contract held plus what was paid out of it."""
        new = session.scalar(select(Deployment).where(Deployment.deploy_txid == txid))
        if new is None or new.bounty.shape == BountyShape.POOL:  # a pool's moves: `pool_ledger.undo_drop`
            return
        old = session.scalar(select(Deployment).where(Deployment.bounty_id == new.bounty_id,
                                                      Deployment.version == new.version - 1))
        source = self.rt.chain.get_transaction(old.current_txid) if old is not None else None
        if old is None or source is None:
            log.error("bounty %d: dropped migration %s has no predecessor on chain to return to", new.bounty_id, txid)
            return
        session.execute(update(Submission).where(Submission.deployment_id == new.id).values(deployment_id=None))
        session.delete(new)
        session.flush()  # the one-active-deployment index: the dropped one goes first
        old.status, old.current_satoshis = DeploymentStatus.ACTIVE, int(source.outputs[old.current_vout].satoshis)
        paid = session.scalar(select(func.coalesce(func.sum(Payout.satoshis + Payout.fee_sats), 0))
                              .where(Payout.bounty_id == old.bounty_id))
        old.bounty.budget_sats = old.current_satoshis + int(paid or 0)
        old.bounty.status = BountyStatus.ACTIVE
        session.flush()
        log.warning("chain event: dropped migration txid=%s bounty=%d (back on deployment %d)", txid,
                    old.bounty_id, old.version)

    def _rewind(self, deployment: Deployment) -> None:
        """The contract's live output after a drop: whatever unspent output its script still has."""
        try:
            current_utxo(self.rt, deployment)
        except BountyClosed:  # nothing unspent: it stays as it was
            return
        deployment.status = DeploymentStatus.ACTIVE
        deployment.bounty.status = BountyStatus.ACTIVE
