"""Vetted bounties: the mode and its terms on bounties; the claim, appeal and vetting figures on submissions;
the new statuses and refusal reasons.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Written by hand. Existing bounties stay open (the mode every bounty had before).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MODES = ("open", "vetted")
OLD_STATUSES = ("pending", "broadcast", "seen", "confirmed", "rejected", "orphaned")
STATUSES = ("vetting", "paying", *OLD_STATUSES)
OLD_REASONS = ("wrong_digit", "low_margin", "bounty_exhausted", "bounty_inactive", "double_spend",
               "fee_too_low", "invalid_script", "chain_too_long", "reorged_out", "contract_migrated",
               "broadcast_failed", "duplicate")
# three reasons nothing ever wrote are dropped (bounty_inactive, fee_too_low, contract_migrated)
REASONS = (*(r for r in OLD_REASONS if r not in ("bounty_inactive", "fee_too_low", "contract_migrated")),
           "known_image", "claimed_by_another", "judge_disagrees", "out_of_distribution", "quota",
           "refused_on_review")


def one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    with op.batch_alter_table("bounties") as batch:
        batch.add_column(sa.Column("mode", sa.String(32), server_default="open", nullable=False))
        batch.add_column(sa.Column("attestor_pubkey", sa.String(66), nullable=True))
        batch.add_column(sa.Column("appeal_gap", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("judge_sha256", sa.String(64), nullable=True))
        batch.create_check_constraint("mode", one_of("mode", MODES))
        batch.create_check_constraint("appeal_gap_not_negative", "appeal_gap >= 0")
        batch.create_check_constraint("vetted_has_attestor", "mode = 'open' OR attestor_pubkey IS NOT NULL")
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("claimed_digit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("appeal", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch.add_column(sa.Column("vetting", sa.JSON(), nullable=True))
        batch.create_check_constraint("claimed_digit", "claimed_digit IS NULL OR claimed_digit BETWEEN 0 AND 9")
        batch.drop_constraint(op.f("ck_submissions_status"), type_="check")
        batch.create_check_constraint("status", one_of("status", STATUSES))
        batch.drop_constraint(op.f("ck_submissions_reason"), type_="check")
        batch.create_check_constraint("reason", one_of("reason", REASONS))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_constraint(op.f("ck_submissions_reason"), type_="check")
        batch.create_check_constraint("reason", one_of("reason", OLD_REASONS))
        batch.drop_constraint(op.f("ck_submissions_status"), type_="check")
        batch.create_check_constraint("status", one_of("status", OLD_STATUSES))
        batch.drop_constraint(op.f("ck_submissions_claimed_digit"), type_="check")
        batch.drop_column("vetting")
        batch.drop_column("appeal")
        batch.drop_column("claimed_digit")
    with op.batch_alter_table("bounties") as batch:
        batch.drop_constraint(op.f("ck_bounties_vetted_has_attestor"), type_="check")
        batch.drop_constraint(op.f("ck_bounties_appeal_gap_not_negative"), type_="check")
        batch.drop_constraint(op.f("ck_bounties_mode"), type_="check")
        batch.drop_column("judge_sha256")
        batch.drop_column("appeal_gap")
        batch.drop_column("attestor_pubkey")
        batch.drop_column("mode")
