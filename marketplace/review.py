"""The review queue: accepted images an operator may approve or exclude before they train the next model."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from marketplace.errors import NotFound
from marketplace.runtime import Runtime
from marketplace.schema import ReviewStatus, TrainingImage


def list_images(rt: Runtime, status: ReviewStatus | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(TrainingImage).order_by(TrainingImage.id).limit(limit)
    if status is not None:
        query = query.where(TrainingImage.review == status)
    with rt.session() as session:
        return [{"id": image.id, "bounty_id": image.bounty_id, "label": image.label, "review": str(image.review),
                 "duplicate_of": image.duplicate_of, "holdout": image.holdout, "spend": image.spend_key,
                 "created_at": image.created_at.isoformat()} for image in session.scalars(query)]


def set_review(rt: Runtime, image_ids: list[int], status: ReviewStatus) -> list[dict[str, Any]]:
    """Approve or exclude images (all or none: an unknown id changes nothing)."""
    with rt.session() as session:
        images = session.scalars(select(TrainingImage).where(TrainingImage.id.in_(image_ids))).all()
        missing = sorted(set(image_ids) - {image.id for image in images})
        if missing:
            raise NotFound(f"there is no training image {', '.join(map(str, missing))}")
        for image in images:
            if status == ReviewStatus.APPROVED and image.duplicate_of is not None:
                continue  # a copy stays excluded: the first submission of an image is the one that counts
            image.review = status
        return [{"id": image.id, "review": str(image.review)} for image in images]


def image_pixels(rt: Runtime, image_id: int) -> np.ndarray:
    """A training image's 28x28 pixels (0..255), for the review queue's thumbnails."""
    with rt.session() as session:
        pixels = session.scalar(select(TrainingImage.pixels).where(TrainingImage.id == image_id))
    if pixels is None:
        raise NotFound(f"there is no training image {image_id}")
    return np.frombuffer(pixels, dtype=np.uint8).reshape(28, 28)
