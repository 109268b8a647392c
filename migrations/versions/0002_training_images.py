"""Accepted images kept for retraining, with their review status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Written by hand. One row per contract spend ("txid:input"), so duplicate deliveries of the
workers' persist task store nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVIEW_STATUSES = ("pending", "approved", "excluded")


def upgrade() -> None:
    listed = ", ".join(f"'{value}'" for value in REVIEW_STATUSES)
    op.create_table(
        "training_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spend_key", sa.String(80), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("bounty_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("pixels", sa.LargeBinary(), nullable=False),
        sa.Column("pixels_sha256", sa.String(64), nullable=False),
        sa.Column("review", sa.String(32), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_images")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_training_images_submission_id_submissions")),
        sa.ForeignKeyConstraint(["bounty_id"], ["bounties.id"], name=op.f("fk_training_images_bounty_id_bounties")),
        sa.ForeignKeyConstraint(["duplicate_of"], ["training_images.id"],
                                name=op.f("fk_training_images_duplicate_of_training_images")),
        sa.UniqueConstraint("spend_key", name=op.f("uq_training_images_spend_key")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_training_images_submission_id")),
        sa.CheckConstraint(f"review IN ({listed})", name=op.f("ck_training_images_review")),
        sa.CheckConstraint("label BETWEEN 0 AND 9", name=op.f("ck_training_images_label_is_digit")),
        sa.CheckConstraint("length(pixels) = 784", name=op.f("ck_training_images_pixels_length")),
    )
    op.create_index(op.f("ix_training_images_bounty_id"), "training_images", ["bounty_id"])
    op.create_index(op.f("ix_training_images_pixels_sha256"), "training_images", ["pixels_sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_training_images_pixels_sha256"), table_name="training_images")
    op.drop_index(op.f("ix_training_images_bounty_id"), table_name="training_images")
    op.drop_table("training_images")
