"""The initial schema: models, bounties, deployments, submissions, payouts, retrain runs, watcher state.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written by hand. Statuses are VARCHAR(32) with a CHECK listing their values (no native enum types), so
SQLite and PostgreSQL hold the same schema. The value lists are copied here on purpose, not imported
from marketplace.schema: a revision describes the schema as it was, whatever the code says later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NETWORKS = ("mainnet", "testnet")
BOUNTY_STATUSES = ("active", "exhausted", "withdrawn")
DEPLOYMENT_STATUSES = ("active", "migrated", "withdrawn", "exhausted")
SUBMISSION_STATUSES = ("pending", "broadcast", "seen", "confirmed", "rejected", "orphaned")
REJECT_REASONS = ("wrong_digit", "low_margin", "bounty_exhausted", "bounty_inactive", "double_spend",
                  "fee_too_low", "invalid_script", "chain_too_long", "reorged_out", "contract_migrated",
                  "broadcast_failed", "duplicate")
SUBMISSION_SOURCES = ("api", "chain")
RETRAIN_STATUSES = ("queued", "running", "succeeded", "failed", "rejected")
RETRAIN_TRIGGERS = ("schedule", "count", "manual")


def one_of(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    """CHECK (column IN (...)), named ck_<table>_<column> as marketplace.schema names it."""
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def status(nullable: bool = False) -> sa.Column:
    return sa.Column("status", sa.String(32), nullable=nullable)


def timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def hex_hash(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(64), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        hex_hash("weights_sha256"),
        sa.Column("version", sa.Integer(), nullable=False),
        hex_hash("parent_sha256", nullable=True),
        sa.Column("artifact_path", sa.String(1024), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("data_snapshot", sa.JSON(), nullable=True),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("weights_sha256", name=op.f("uq_models_weights_sha256")),
        sa.UniqueConstraint("version", name=op.f("uq_models_version")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_models_version_positive")),
    )

    # A bounty's terms are compiled into its contract: fixed at creation, never updated.
    op.create_table(
        "bounties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digits", sa.JSON(), nullable=False),
        sa.Column("payout_sats", sa.BigInteger(), nullable=False),
        sa.Column("min_margin", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_sats", sa.BigInteger(), nullable=False),
        sa.Column("budget_sats", sa.BigInteger(), nullable=False),
        sa.Column("owner_pubkey", sa.String(66), nullable=False),
        sa.Column("network", sa.String(32), nullable=False),
        status(),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounties")),
        one_of("bounties", "network", NETWORKS),
        one_of("bounties", "status", BOUNTY_STATUSES),
        sa.CheckConstraint("payout_sats > 0", name=op.f("ck_bounties_payout_positive")),
        sa.CheckConstraint("min_margin >= 0", name=op.f("ck_bounties_margin_not_negative")),
        sa.CheckConstraint("max_fee_sats >= 0", name=op.f("ck_bounties_max_fee_not_negative")),
        sa.CheckConstraint("budget_sats >= payout_sats", name=op.f("ck_bounties_budget_covers_payout")),
    )

    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bounty_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        hex_hash("locking_script_sha256"),
        hex_hash("deploy_txid"),
        hex_hash("current_txid"),
        sa.Column("current_vout", sa.Integer(), nullable=False),
        sa.Column("current_satoshis", sa.BigInteger(), nullable=False),
        status(),
        timestamp("created_at"),
        timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.ForeignKeyConstraint(["bounty_id"], ["bounties.id"], name=op.f("fk_deployments_bounty_id_bounties")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_deployments_model_id_models")),
        sa.UniqueConstraint("bounty_id", "version", name=op.f("uq_deployments_bounty_id_version")),
        sa.UniqueConstraint("deploy_txid", name=op.f("uq_deployments_deploy_txid")),
        one_of("deployments", "status", DEPLOYMENT_STATUSES),
        sa.CheckConstraint("version >= 1", name=op.f("ck_deployments_version_positive")),
        sa.CheckConstraint("current_vout >= 0", name=op.f("ck_deployments_vout_not_negative")),
        sa.CheckConstraint("current_satoshis >= 0", name=op.f("ck_deployments_satoshis_not_negative")),
    )
    # At most one live contract per bounty (both backends support partial indexes).
    op.create_index(op.f("uq_deployments_one_active"), "deployments", ["bounty_id"], unique=True,
                    sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
    op.create_index(op.f("ix_deployments_current_txid_current_vout"), "deployments",
                    ["current_txid", "current_vout"])

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bounty_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        hex_hash("txid", nullable=True),
        sa.Column("input_index", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("pixels", sa.LargeBinary(), nullable=False),
        sa.Column("recipient_address", sa.String(64), nullable=False),
        sa.Column("recipient_pkh", sa.String(40), nullable=False),
        sa.Column("predicted_label", sa.Integer(), nullable=False),
        sa.Column("margin", sa.BigInteger(), nullable=False),
        hex_hash("model_sha256"),
        status(),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("block_height", sa.Integer(), nullable=True),
        sa.Column("confirmations", sa.Integer(), server_default=sa.text("0"), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.ForeignKeyConstraint(["bounty_id"], ["bounties.id"], name=op.f("fk_submissions_bounty_id_bounties")),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"],
                                name=op.f("fk_submissions_deployment_id_deployments")),
        # One row per spend, so retried tasks and re-read chain events cannot record it twice.
        sa.UniqueConstraint("txid", "input_index", name=op.f("uq_submissions_txid_input_index")),
        one_of("submissions", "status", SUBMISSION_STATUSES),
        one_of("submissions", "reason", REJECT_REASONS),
        one_of("submissions", "source", SUBMISSION_SOURCES),
        sa.CheckConstraint("length(pixels) = 784", name=op.f("ck_submissions_pixels_784")),
        sa.CheckConstraint("predicted_label BETWEEN 0 AND 9", name=op.f("ck_submissions_label_digit")),
        sa.CheckConstraint("input_index >= 0", name=op.f("ck_submissions_input_index_not_negative")),
        sa.CheckConstraint("confirmations >= 0", name=op.f("ck_submissions_confirmations_not_negative")),
    )
    op.create_index(op.f("ix_submissions_bounty_id"), "submissions", ["bounty_id"])
    op.create_index(op.f("ix_submissions_status"), "submissions", ["status"])

    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("bounty_id", sa.Integer(), nullable=False),
        hex_hash("txid"),
        sa.Column("vout", sa.Integer(), nullable=False),
        sa.Column("satoshis", sa.BigInteger(), nullable=False),
        sa.Column("fee_sats", sa.BigInteger(), nullable=False),
        sa.Column("recipient_address", sa.String(64), nullable=False),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_payouts_submission_id_submissions")),
        sa.ForeignKeyConstraint(["bounty_id"], ["bounties.id"], name=op.f("fk_payouts_bounty_id_bounties")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_payouts_submission_id")),
        sa.UniqueConstraint("txid", "vout", name=op.f("uq_payouts_txid_vout")),
        sa.CheckConstraint("satoshis > 0", name=op.f("ck_payouts_satoshis_positive")),
        sa.CheckConstraint("fee_sats >= 0", name=op.f("ck_payouts_fee_not_negative")),
    )
    op.create_index(op.f("ix_payouts_bounty_id"), "payouts", ["bounty_id"])

    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        status(),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("base_model_id", sa.Integer(), nullable=False),
        sa.Column("new_model_id", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        timestamp("created_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retrain_runs")),
        sa.ForeignKeyConstraint(["base_model_id"], ["models.id"], name=op.f("fk_retrain_runs_base_model_id_models")),
        sa.ForeignKeyConstraint(["new_model_id"], ["models.id"], name=op.f("fk_retrain_runs_new_model_id_models")),
        one_of("retrain_runs", "status", RETRAIN_STATUSES),
        one_of("retrain_runs", "trigger", RETRAIN_TRIGGERS),
    )

    op.create_table(
        "watcher_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        timestamp("updated_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_watcher_state")),
    )


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes and constraints.
    for table in ("watcher_state", "retrain_runs", "payouts", "submissions", "deployments", "bounties", "models"):
        op.drop_table(table)
