"""Prize pools: a bounty's shape and its most live prizes; the prizes and the pool's owner transactions; a
payout no longer owns its output (one transaction may claim several prizes into one output).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Written by hand. Existing bounties keep the chain shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHAPES = ("chain", "pool")
PRIZE_STATUSES = ("live", "taken", "claimed", "reclaimed", "dropped")
MOVE_KINDS = ("deploy", "refill", "top_up", "redeploy", "withdraw")
OLD_DEPLOYMENT_STATUSES = ("active", "migrated", "withdrawn", "exhausted")
DEPLOYMENT_STATUSES = (*OLD_DEPLOYMENT_STATUSES, "dropped")


def one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("bounties") as batch:
        batch.add_column(sa.Column("shape", sa.String(32), server_default="chain", nullable=False))
        batch.add_column(sa.Column("prizes", sa.Integer(), nullable=True))
        batch.create_check_constraint("shape", one_of("shape", SHAPES))
        batch.create_check_constraint("pool_has_prizes", "shape = 'chain' OR prizes >= 1")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_constraint(op.f("ck_deployments_status"), type_="check")
        batch.create_check_constraint("status", one_of("status", DEPLOYMENT_STATUSES))
    with op.batch_alter_table("payouts") as batch:
        batch.drop_constraint(op.f("uq_payouts_txid_vout"), type_="unique")
        batch.drop_constraint(op.f("ck_payouts_satoshis_positive"), type_="check")
        batch.create_check_constraint("satoshis_not_negative", "satoshis >= 0")
    op.create_index(op.f("ix_payouts_txid_vout"), "payouts", ["txid", "vout"])
    op.create_table(
        "prizes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bounty_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("txid", sa.String(64), nullable=False),
        sa.Column("vout", sa.Integer(), nullable=False),
        sa.Column("satoshis", sa.BigInteger(), nullable=False),
        sa.Column("creation_fee_sats", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        timestamp("taken_at", nullable=True),
        sa.Column("spent_txid", sa.String(64), nullable=True),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prizes")),
        sa.ForeignKeyConstraint(["bounty_id"], ["bounties.id"], name=op.f("fk_prizes_bounty_id_bounties")),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"],
                                name=op.f("fk_prizes_deployment_id_deployments")),
        sa.UniqueConstraint("txid", "vout", name=op.f("uq_prizes_txid_vout")),
        sa.CheckConstraint("satoshis > 0", name=op.f("ck_prizes_satoshis_positive")),
        sa.CheckConstraint("creation_fee_sats >= 0", name=op.f("ck_prizes_creation_fee_not_negative")),
        sa.CheckConstraint(one_of("status", PRIZE_STATUSES), name=op.f("ck_prizes_status")),
    )
    op.create_index(op.f("ix_prizes_bounty_id_status"), "prizes", ["bounty_id", "status"])
    op.create_index(op.f("ix_prizes_spent_txid"), "prizes", ["spent_txid"])
    op.create_table(
        "pool_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bounty_id", sa.Integer(), nullable=False),
        sa.Column("txid", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("added_sats", sa.BigInteger(), nullable=False),
        sa.Column("fee_sats", sa.BigInteger(), nullable=False),
        sa.Column("reserve_before", sa.String(80), nullable=True),
        sa.Column("dropped", sa.Boolean(), nullable=False),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_moves")),
        sa.ForeignKeyConstraint(["bounty_id"], ["bounties.id"], name=op.f("fk_pool_moves_bounty_id_bounties")),
        sa.UniqueConstraint("txid", name=op.f("uq_pool_moves_txid")),
        sa.CheckConstraint("fee_sats >= 0", name=op.f("ck_pool_moves_fee_not_negative")),
        sa.CheckConstraint(one_of("kind", MOVE_KINDS), name=op.f("ck_pool_moves_kind")),
    )
    op.create_index(op.f("ix_pool_moves_bounty_id"), "pool_moves", ["bounty_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pool_moves_bounty_id"), table_name="pool_moves")
    op.drop_table("pool_moves")
    op.drop_index(op.f("ix_prizes_spent_txid"), table_name="prizes")
    op.drop_index(op.f("ix_prizes_bounty_id_status"), table_name="prizes")
    op.drop_table("prizes")
    op.drop_index(op.f("ix_payouts_txid_vout"), table_name="payouts")
    with op.batch_alter_table("payouts") as batch:
        batch.drop_constraint(op.f("ck_payouts_satoshis_not_negative"), type_="check")
        batch.create_check_constraint("satoshis_positive", "satoshis > 0")
        batch.create_unique_constraint("uq_payouts_txid_vout", ["txid", "vout"])
    with op.batch_alter_table("deployments") as batch:
        batch.drop_constraint(op.f("ck_deployments_status"), type_="check")
        batch.create_check_constraint("status", one_of("status", OLD_DEPLOYMENT_STATUSES))
    with op.batch_alter_table("bounties") as batch:
        batch.drop_constraint(op.f("ck_bounties_pool_has_prizes"), type_="check")
        batch.drop_constraint(op.f("ck_bounties_shape"), type_="check")
        batch.drop_column("prizes")
        batch.drop_column("shape")
