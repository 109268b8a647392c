"""The data a retraining run uses: the accepted images to train on and to judge with, read once, and its record.

MNIST's training split plus the accepted images that are not duplicates, not excluded, not held out and
(with ``retrain_require_review``) approved. The record names exactly what was read (counts, id range, a
sha256 over the spend keys and one over the pixels and labels, the MNIST digest).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.runtime import Runtime
from marketplace.schema import Bounty, BountyMode, ReviewStatus, TrainingImage
from model.config import TrainConfig
from model.data import Mnist

PIXEL_CHUNK = 500  # ids per query when reading pixels (SQLite caps bound parameters)
GROUPS = ("trained", "holdout", "duplicates", "excluded", "unreviewed")


@dataclass(frozen=True)
class SnapshotRecord:
    """What a run read, stored with the run and with the model it made (`to_json`)."""

    taken_at: str
    mnist_digest: str
    mnist_source: str
    mnist_images: int
    accepted_images: int
    accepted_weight: int
    accepted_examples: int
    accepted_label_counts: tuple[int, ...]
    accepted_id_range: tuple[int, int] | None
    accepted_spend_keys_sha256: str
    accepted_data_sha256: str
    holdout_images: int
    left_out: dict[str, int]  # duplicates, excluded, unreviewed
    require_review: bool
    seen_up_to_id: int  # the highest training-image id read: where the count trigger starts counting again

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["accepted_label_counts"] = list(self.accepted_label_counts)
        record["accepted_id_range"] = list(self.accepted_id_range) if self.accepted_id_range else None
        return record


@dataclass(frozen=True)
class Snapshot:
    """The accepted images a run uses, each once (weighting happens in `training_set`), and its record."""

    images: np.ndarray  # (n, 784) uint8, trained on
    labels: np.ndarray  # (n,) uint8
    holdout_images: np.ndarray  # (m, 784) uint8, only to judge models
    holdout_labels: np.ndarray
    record: SnapshotRecord

    def training_set(self, weight: int) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(self.images, weight, axis=0), np.repeat(self.labels, weight)


def take_snapshot(rt: Runtime, data: Mnist, config: TrainConfig) -> Snapshot:
    """Read the accepted images to train on and to judge with. One metadata query decides which rows count,
    so the counts and the images always agree however many rows arrive meanwhile."""
    settings = rt.settings
    with rt.session() as session:
        rows = session.execute(select(TrainingImage.id, TrainingImage.spend_key, TrainingImage.label,
                                      TrainingImage.review, TrainingImage.duplicate_of, TrainingImage.holdout,
                                      Bounty.mode)
                               .join(Bounty, Bounty.id == TrainingImage.bounty_id)
                               .order_by(TrainingImage.id)).all()
        groups: dict[str, list[Any]] = {name: [] for name in GROUPS}
        for row in rows:
            # an open bounty pays whatever its classifier accepts: nothing it bought is trained on unreviewed
            review_needed = settings.retrain_require_review or (
                row.mode == BountyMode.OPEN and settings.retrain_open_needs_review)
            groups[_group(row.review, row.duplicate_of, row.holdout, review_needed)].append(row)
        pixels = _pixels(session, [r.id for r in groups["trained"] + groups["holdout"]])
    images, labels = _arrays(groups["trained"], pixels)
    holdout_images, holdout_labels = _arrays(groups["holdout"], pixels)
    trained = groups["trained"]
    record = SnapshotRecord(
        taken_at=datetime.now(UTC).isoformat(),
        mnist_digest=data.digest,
        mnist_source=data.source.split(":", 1)[0],
        mnist_images=_mnist_images(data, config),
        accepted_images=len(trained),
        accepted_weight=settings.retrain_accepted_weight,
        accepted_examples=len(trained) * settings.retrain_accepted_weight,
        accepted_label_counts=tuple(int(n) for n in np.bincount(labels, minlength=10)),
        accepted_id_range=(trained[0].id, trained[-1].id) if trained else None,
        accepted_spend_keys_sha256=hashlib.sha256("\n".join(r.spend_key for r in trained).encode()).hexdigest(),
        accepted_data_sha256=_data_sha256(images, labels),
        holdout_images=len(groups["holdout"]),
        left_out={name: len(groups[name]) for name in ("duplicates", "excluded", "unreviewed")},
        require_review=settings.retrain_require_review,
        seen_up_to_id=rows[-1].id if rows else 0,
    )
    return Snapshot(images, labels, holdout_images, holdout_labels, record)


def _group(review: ReviewStatus, duplicate_of: int | None, holdout: bool, require_review: bool) -> str:
    """Where one accepted image goes; the first rule that applies wins."""
    if duplicate_of is not None:
        return "duplicates"
    if review == ReviewStatus.EXCLUDED:
        return "excluded"
    if require_review and review != ReviewStatus.APPROVED:
        return "unreviewed"
    return "holdout" if holdout else "trained"


def _pixels(session: Session, ids: list[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for start in range(0, len(ids), PIXEL_CHUNK):
        chunk = ids[start:start + PIXEL_CHUNK]
        found.update((row.id, row.pixels) for row in session.execute(
            select(TrainingImage.id, TrainingImage.pixels).where(TrainingImage.id.in_(chunk))))
    return found


def _arrays(rows: list[Any], pixels: dict[int, bytes]) -> tuple[np.ndarray, np.ndarray]:
    images = np.frombuffer(b"".join(pixels[r.id] for r in rows), np.uint8).reshape(-1, 784)
    return images, np.array([r.label for r in rows], dtype=np.uint8)


def _data_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _mnist_images(data: Mnist, config: TrainConfig) -> int:
    """How many MNIST training images the config trains on (the rest of the 60k less validation)."""
    available = len(data.x_train) - config.validation_images
    return available if config.train_images is None else min(available, config.train_images)


__all__ = ["Snapshot", "SnapshotRecord", "take_snapshot"]
