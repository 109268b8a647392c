"""The service database: SQLAlchemy 2.0 models and the status enums the service uses.

The same schema runs on SQLite (embedded default) and PostgreSQL (production), so it sticks to
what both do alike: integers (BigInteger for satoshis and margins), text, bytes, JSON, and statuses
stored as plain strings guarded by CHECK constraints rather than native enum types. Timestamps are
timezone-aware UTC on both (SQLite keeps naive UTC text; `UtcDateTime` restores the zone on read).

The schema changes only through hand-written Alembic revisions in ``migrations/versions``;
``tests/integration/test_db.py`` checks that these models and the migrations agree on both backends.

    bounties ──< deployments >── models      a bounty's contracts, each compiled from one model
    bounties ──< submissions >── deployments  images offered (the deployment is known once built)
    deployments ──< prizes                    a pool bounty's prize outputs, each created once
    bounties ──< pool_moves                   a pool's owner transactions (deploy, refill, redeploy, top-up, ...)
    submissions ──── payouts                  at most one payout per submission
    retrain_runs >── models (base, new)       watcher_state: the daemon's durable cursors
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from model.reference import PIXELS

HEX_HASH = 64  # sha256 / txid as hex
ENUM_LENGTH = 32

# Deterministic constraint names, so migrations can name what they create and later drop it.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# -- statuses ------------------------------------------------------------------------------------------

class Network(StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"


class BountyStatus(StrEnum):
    ACTIVE = "active"
    EXHAUSTED = "exhausted"  # what remains cannot pay another submission
    WITHDRAWN = "withdrawn"  # the owner took the balance back


class BountyShape(StrEnum):
    CHAIN = "chain"  # one contract output that every paid image spends and re-creates (a covenant)
    POOL = "pool"  # K independent prize outputs and an owner's reserve (contracts.pool)


class PrizeStatus(StrEnum):
    LIVE = "live"  # unspent, free to hand out
    TAKEN = "taken"  # handed to one submission whose claim is being built and broadcast
    CLAIMED = "claimed"  # spent by a claim (ours or anyone's); the claim's submission row says who was paid
    RECLAIMED = "reclaimed"  # spent by the owner (a refill's redeploy, a withdrawal)
    DROPPED = "dropped"  # the transaction that created it was dropped by a reorg: it never existed


class PoolMoveKind(StrEnum):
    DEPLOY = "deploy"  # the wallet funds the pool: the first prizes and the reserve
    REFILL = "refill"  # the reserve pays for new prizes
    TOP_UP = "top_up"  # the wallet adds to the reserve
    REDEPLOY = "redeploy"  # live prizes reclaimed and created again under another model
    WITHDRAW = "withdraw"  # live prizes and the reserve back to the wallet


class DeploymentStatus(StrEnum):
    ACTIVE = "active"
    MIGRATED = "migrated"  # the owner moved the balance into a newer deployment (a retrained model)
    WITHDRAWN = "withdrawn"
    EXHAUSTED = "exhausted"
    DROPPED = "dropped"  # a pool's redeploy that a reorg dropped: its prizes never existed


class BountyMode(StrEnum):
    OPEN = "open"  # the contract pays any image its classifier accepts, with nobody's consent
    VETTED = "vetted"  # each payment also needs the attestor's signature, given after vetting


class SubmissionStatus(StrEnum):
    VETTING = "vetting"  # a vetted bounty's checks are running (novelty, judge, quotas), or an appeal awaits review
    PAYING = "paying"  # vetted: its spend is being built, co-signed and broadcast (taken by one process only)
    PENDING = "pending"  # accepted by the API, transaction not yet broadcast
    BROADCAST = "broadcast"  # handed to the chain, not yet seen in its mempool
    SEEN = "seen"  # in the mempool
    CONFIRMED = "confirmed"  # mined with at least `min_confirmations`
    REJECTED = "rejected"  # refused for good; `reason` says why
    ORPHANED = "orphaned"  # was seen or mined, then dropped by a reorg or a competing spend


class RejectReason(StrEnum):
    WRONG_DIGIT = "wrong_digit"
    LOW_MARGIN = "low_margin"
    BOUNTY_EXHAUSTED = "bounty_exhausted"
    DOUBLE_SPEND = "double_spend"
    INVALID_SCRIPT = "invalid_script"
    CHAIN_TOO_LONG = "chain_too_long"
    REORGED_OUT = "reorged_out"
    BROADCAST_FAILED = "broadcast_failed"
    DUPLICATE = "duplicate"  # a copy or near copy of an image this payee already submitted
    KNOWN_IMAGE = "known_image"  # a copy or near copy of an image the model was trained on (MNIST)
    CLAIMED_BY_ANOTHER = "claimed_by_another"  # a copy or near copy of an image another payee submitted first
    JUDGE_DISAGREES = "judge_disagrees"  # the independent judge does not read the claimed digit
    OUT_OF_DISTRIBUTION = "out_of_distribution"  # not handwriting: blank, noise, strokes, adversarial
    QUOTA = "quota"  # the payee or the client used up its hourly quota
    REFUSED_ON_REVIEW = "refused_on_review"  # an operator refused an appeal held for review


class SubmissionSource(StrEnum):
    API = "api"  # sent through our API
    CHAIN = "chain"  # found on chain by the watcher (someone spent the contract directly)


class RetrainStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the run broke; `error` says how
    REJECTED = "rejected"  # the run finished but the new model did not beat the old one


class ReviewStatus(StrEnum):
    PENDING = "pending"  # not looked at yet: used for training unless the settings require approval
    APPROVED = "approved"
    EXCLUDED = "excluded"  # never used for training (an operator's call, or a duplicate)


class RetrainTrigger(StrEnum):
    SCHEDULE = "schedule"
    COUNT = "count"  # enough new confirmed submissions
    MANUAL = "manual"


# -- column types --------------------------------------------------------------------------------------

def _choice(enum: type[StrEnum], name: str) -> Enum:
    """A status column: VARCHAR plus a CHECK listing the enum's values, identical on SQLite and PostgreSQL.
    `name` becomes the CHECK constraint's name (``ck_<table>_<name>``)."""
    return Enum(enum, name=name, native_enum=False, create_constraint=True, length=ENUM_LENGTH,
                values_callable=lambda members: [member.value for member in members], validate_strings=True)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend. Naive datetimes are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give the database timezone-aware UTC times")
        return value.astimezone(UTC)  # SQLite drops the zone, so store UTC

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created() -> Any:
    return mapped_column(UtcDateTime(), server_default=func.now(), nullable=False)


def _updated() -> Any:
    return mapped_column(UtcDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# -- tables --------------------------------------------------------------------------------------------

class ModelVersion(Base):
    """A classifier artifact the service knows: the shipped one and every retrained successor."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    weights_sha256: Mapped[str] = mapped_column(String(HEX_HASH), unique=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    parent_sha256: Mapped[str | None] = mapped_column(String(HEX_HASH))  # not a key: the parent may predate the db
    artifact_path: Mapped[str] = mapped_column(String(1024))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # which training data went in
    created_at: Mapped[datetime] = _created()

    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)


class Bounty(Base):
    """An offer: `payout_sats` for each image of one of `digits` judged with at least `min_margin`.

    The terms (digits, payout, margin, fees, budget, owner, network) are fixed when the bounty is created
    and the service never updates them: they are compiled into the contract. New terms mean a new bounty.
    Only `status` changes.
    """

    __tablename__ = "bounties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digits: Mapped[list[int]] = mapped_column(JSON)
    payout_sats: Mapped[int] = mapped_column(BigInteger)
    min_margin: Mapped[int] = mapped_column(BigInteger)
    max_fee_sats: Mapped[int] = mapped_column(BigInteger)
    budget_sats: Mapped[int] = mapped_column(BigInteger)
    owner_pubkey: Mapped[str] = mapped_column(String(66))  # compressed public key, hex
    network: Mapped[Network] = mapped_column(_choice(Network, "network"))
    mode: Mapped[BountyMode] = mapped_column(_choice(BountyMode, "mode"), default=BountyMode.OPEN,
                                             server_default=BountyMode.OPEN.value)
    attestor_pubkey: Mapped[str | None] = mapped_column(String(66))  # vetted: the co-signer's key, hex
    appeal_gap: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    judge_sha256: Mapped[str | None] = mapped_column(String(HEX_HASH))  # vetted: the published judge's weights
    shape: Mapped[BountyShape] = mapped_column(_choice(BountyShape, "shape"), default=BountyShape.CHAIN,
                                               server_default=BountyShape.CHAIN.value)
    prizes: Mapped[int | None] = mapped_column(Integer)  # pool: the most prizes kept live at once
    status: Mapped[BountyStatus] = mapped_column(_choice(BountyStatus, "status"), default=BountyStatus.ACTIVE)
    created_at: Mapped[datetime] = _created()

    deployments: Mapped[list[Deployment]] = relationship(back_populates="bounty", order_by="Deployment.version")

    __table_args__ = (
        CheckConstraint("payout_sats > 0", name="payout_positive"),
        CheckConstraint("min_margin >= 0", name="margin_not_negative"),
        CheckConstraint("max_fee_sats >= 0", name="max_fee_not_negative"),
        CheckConstraint("budget_sats >= payout_sats", name="budget_covers_payout"),
        CheckConstraint("appeal_gap >= 0", name="appeal_gap_not_negative"),
        CheckConstraint("mode = 'open' OR attestor_pubkey IS NOT NULL", name="vetted_has_attestor"),
        CheckConstraint("shape = 'chain' OR prizes >= 1", name="pool_has_prizes"),
    )


class Deployment(Base):
    """One contract output chain carrying a bounty. `current_*` is the live contract output, moved along by
    each accepted submission; a migration to a new model starts the bounty's next deployment.

    A pool bounty's deployment is its prizes under one model (`prizes`); `current_*` is then the owner's
    reserve output (`current_satoshis` 0 when there is none) and `locking_script_sha256` the prizes' script."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bounty_id: Mapped[int] = mapped_column(ForeignKey("bounties.id"))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per bounty
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    locking_script_sha256: Mapped[str] = mapped_column(String(HEX_HASH))
    deploy_txid: Mapped[str] = mapped_column(String(HEX_HASH), unique=True)
    current_txid: Mapped[str] = mapped_column(String(HEX_HASH))
    current_vout: Mapped[int] = mapped_column(Integer)
    current_satoshis: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[DeploymentStatus] = mapped_column(_choice(DeploymentStatus, "status"),
                                                     default=DeploymentStatus.ACTIVE)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    bounty: Mapped[Bounty] = relationship(back_populates="deployments")
    model: Mapped[ModelVersion] = relationship()

    __table_args__ = (
        UniqueConstraint("bounty_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("current_vout >= 0", name="vout_not_negative"),
        CheckConstraint("current_satoshis >= 0", name="satoshis_not_negative"),
        # At most one live contract per bounty. The service checks too; this catches races.
        Index("uq_deployments_one_active", "bounty_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        Index(None, "current_txid", "current_vout"),  # the watcher looks spends up by outpoint
    )


class Submission(Base):
    """An image offered to a bounty, through our API or found on chain, and what became of it.

    (`txid`, `input_index`) identifies the spend once it is built; it is unique so that a retried task
    or a watcher re-reading events cannot record one spend twice.
    """

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bounty_id: Mapped[int] = mapped_column(ForeignKey("bounties.id"), index=True)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    txid: Mapped[str | None] = mapped_column(String(HEX_HASH))
    input_index: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pixels: Mapped[bytes] = mapped_column(LargeBinary)
    recipient_address: Mapped[str] = mapped_column(String(64))
    recipient_pkh: Mapped[str] = mapped_column(String(40))  # hash160, hex
    predicted_label: Mapped[int] = mapped_column(Integer)
    margin: Mapped[int] = mapped_column(BigInteger)
    model_sha256: Mapped[str] = mapped_column(String(HEX_HASH))
    claimed_digit: Mapped[int | None] = mapped_column(Integer)  # vetted: the digit the payment is for
    appeal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    vetting: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the checks' figures, for the receipt
    status: Mapped[SubmissionStatus] = mapped_column(_choice(SubmissionStatus, "status"),
                                                     default=SubmissionStatus.PENDING, index=True)
    reason: Mapped[RejectReason | None] = mapped_column(_choice(RejectReason, "reason"))
    source: Mapped[SubmissionSource] = mapped_column(_choice(SubmissionSource, "source"))
    block_height: Mapped[int | None] = mapped_column(Integer)
    confirmations: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    bounty: Mapped[Bounty] = relationship()
    deployment: Mapped[Deployment | None] = relationship()
    payout: Mapped[Payout | None] = relationship(back_populates="submission")

    __table_args__ = (
        UniqueConstraint("txid", "input_index"),
        CheckConstraint(f"length(pixels) = {PIXELS}", name="pixels_784"),
        CheckConstraint("predicted_label BETWEEN 0 AND 9", name="label_digit"),
        CheckConstraint("claimed_digit IS NULL OR claimed_digit BETWEEN 0 AND 9", name="claimed_digit"),
        CheckConstraint("input_index >= 0", name="input_index_not_negative"),
        CheckConstraint("confirmations >= 0", name="confirmations_not_negative"),
    )


class Payout(Base):
    """The output that paid an accepted submission."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    bounty_id: Mapped[int] = mapped_column(ForeignKey("bounties.id"), index=True)
    txid: Mapped[str] = mapped_column(String(HEX_HASH))
    vout: Mapped[int] = mapped_column(Integer)
    satoshis: Mapped[int] = mapped_column(BigInteger)
    fee_sats: Mapped[int] = mapped_column(BigInteger)
    recipient_address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()

    submission: Mapped[Submission] = relationship(back_populates="payout")

    __table_args__ = (
        Index(None, "txid", "vout"),  # not unique: one transaction may claim several prizes into one output
        CheckConstraint("satoshis >= 0", name="satoshis_not_negative"),  # an outsider's claim may pay all as fee
        CheckConstraint("fee_sats >= 0", name="fee_not_negative"),
    )


class Prize(Base):
    """One prize output of a pool bounty: `satoshis` (the payout and the claim's fee allowance) locked by the
    deployment's prize script at txid:vout. `creation_fee_sats` is its share of the fee of the owner
    transaction that created it, paid from the bounty's funds."""

    __tablename__ = "prizes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bounty_id: Mapped[int] = mapped_column(ForeignKey("bounties.id"))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    txid: Mapped[str] = mapped_column(String(HEX_HASH))
    vout: Mapped[int] = mapped_column(Integer)
    satoshis: Mapped[int] = mapped_column(BigInteger)
    creation_fee_sats: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[PrizeStatus] = mapped_column(_choice(PrizeStatus, "status"), default=PrizeStatus.LIVE)
    taken_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # when it was handed out (TAKEN)
    spent_txid: Mapped[str | None] = mapped_column(String(HEX_HASH))  # the claim or owner transaction
    created_at: Mapped[datetime] = _created()

    deployment: Mapped[Deployment] = relationship()

    __table_args__ = (
        UniqueConstraint("txid", "vout"),
        CheckConstraint("satoshis > 0", name="satoshis_positive"),
        CheckConstraint("creation_fee_sats >= 0", name="creation_fee_not_negative"),
        Index(None, "bounty_id", "status"),  # the handout looks for a live prize of one bounty
        Index(None, "spent_txid"),  # a reorg looks up what a dropped transaction spent
    )


class PoolMove(Base):
    """One owner transaction of a pool bounty, booked once by whoever sees it first (the service that sent it,
    or the watcher). `added_sats` is what it brought into the bounty from the wallet (deploy, top-up) or,
    negative, took back (withdraw); `fee_sats` the fee the bounty's funds paid. The reserve it spent is kept
    (`reserve_before`) so that a reorg can give it back."""

    __tablename__ = "pool_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bounty_id: Mapped[int] = mapped_column(ForeignKey("bounties.id"), index=True)
    txid: Mapped[str] = mapped_column(String(HEX_HASH), unique=True)
    kind: Mapped[PoolMoveKind] = mapped_column(_choice(PoolMoveKind, "kind"))
    added_sats: Mapped[int] = mapped_column(BigInteger)
    fee_sats: Mapped[int] = mapped_column(BigInteger)
    reserve_before: Mapped[str | None] = mapped_column(String(80))  # "txid:vout:satoshis" of the reserve it spent
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)  # a reorg dropped it: it counts for nothing
    created_at: Mapped[datetime] = _created()

    __table_args__ = (CheckConstraint("fee_sats >= 0", name="fee_not_negative"),)


class RetrainRun(Base):
    """One retraining of the classifier on confirmed submissions, from `base_model_id` to `new_model_id`."""

    __tablename__ = "retrain_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[RetrainStatus] = mapped_column(_choice(RetrainStatus, "status"), default=RetrainStatus.QUEUED)
    trigger: Mapped[RetrainTrigger] = mapped_column(_choice(RetrainTrigger, "trigger"))
    base_model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    new_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()  # when it was queued
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    base_model: Mapped[ModelVersion] = relationship(foreign_keys=[base_model_id])
    new_model: Mapped[ModelVersion | None] = relationship(foreign_keys=[new_model_id])


class TrainingImage(Base):
    """An accepted image kept for retraining, stored once per spend (`spend_key` = "txid:input") however
    often the workers are told about it. Labelled with the digit its bounty paid for."""

    __tablename__ = "training_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spend_key: Mapped[str] = mapped_column(String(80), unique=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    bounty_id: Mapped[int] = mapped_column(ForeignKey("bounties.id"), index=True)
    label: Mapped[int] = mapped_column(Integer)
    pixels: Mapped[bytes] = mapped_column(LargeBinary)
    pixels_sha256: Mapped[str] = mapped_column(String(HEX_HASH), index=True)
    review: Mapped[ReviewStatus] = mapped_column(_choice(ReviewStatus, "review"), default=ReviewStatus.PENDING)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("training_images.id"))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)  # kept out of training, used to evaluate
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("label BETWEEN 0 AND 9", name="label_is_digit"),
        CheckConstraint(f"length(pixels) = {PIXELS}", name="pixels_length"),
    )


class WatcherState(Base):
    """The service's small key-value state, one row per key: the watcher's durable cursors (the chain event
    cursor) and the retraining lease (`workers.retraining.lease`)."""

    __tablename__ = "watcher_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = _updated()


__all__ = [
    "Base", "Bounty", "BountyMode", "BountyShape", "BountyStatus", "Deployment", "DeploymentStatus", "ModelVersion",
    "NAMING_CONVENTION", "Network", "PIXELS", "Payout", "PoolMove", "PoolMoveKind", "Prize", "PrizeStatus",
    "RejectReason", "RetrainRun", "RetrainStatus", "RetrainTrigger", "ReviewStatus", "Submission",
    "SubmissionSource", "SubmissionStatus", "TrainingImage", "UtcDateTime", "WatcherState",
]
