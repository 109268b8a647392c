"""The data a retraining run uses: the accepted images to train on and to judge with, read once, and its record.

Every image is labelled with the digit that was vetted (the claim the judge or a person confirmed), never
the model's own reading. Left out: duplicates, excluded images and, where review is needed (open
bounties by default, everything with ``retrain_require_review``), images not approved.

- **held out** (`TrainingImage.holdout`, set once when the image was kept: one in five of each digit): the
  gate's crowd images. Only images whose label was vetted count: an open bounty's unreviewed image carries
  the model's own reading, and a held-out set labelled by the champion would score it 100%.
- **validation**: one in ``retrain_validation_every`` of each digit's other images, by arrival: chooses the
  recipe (`workers.retraining.recipe`), then joins the final training.
- **trained**: the rest.

The record names exactly what was read (counts, id range, a sha256 over the spend keys, one over the
pixels and labels, one over the held-out ids, the MNIST digest).
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
from marketplace.schema import Bounty, BountyMode, ReviewStatus, Submission, TrainingImage
from model.data import Mnist

PIXEL_CHUNK = 500  # ids per query when reading pixels (SQLite caps bound parameters)
GROUPS = ("trained", "holdout", "duplicates", "excluded", "unreviewed")


@dataclass(frozen=True)
class SnapshotRecord:
    """What a run read, stored with the run and with the model it made (`to_json`)."""

    taken_at: str
    mnist_digest: str
    mnist_source: str
    accepted_images: int  # trained on in the end: the trained and the validation images
    validation_images: int
    accepted_label_counts: tuple[int, ...]
    accepted_id_range: tuple[int, int] | None
    accepted_spend_keys_sha256: str
    accepted_data_sha256: str
    holdout_images: int
    holdout_label_counts: tuple[int, ...]
    holdout_ids_sha256: str  # champion and challenger are judged on exactly these
    left_out: dict[str, int]  # duplicates, excluded, unreviewed
    require_review: bool
    seen_up_to_id: int  # the highest training-image id read: where the count trigger starts counting again

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["accepted_label_counts"] = list(self.accepted_label_counts)
        record["holdout_label_counts"] = list(self.holdout_label_counts)
        record["accepted_id_range"] = list(self.accepted_id_range) if self.accepted_id_range else None
        return record


@dataclass(frozen=True)
class Snapshot:
    """The accepted images a run uses, each once (the recipe weighs them), and its record."""

    images: np.ndarray  # (n, 784) uint8, trained on
    labels: np.ndarray  # (n,) uint8
    validation_images: np.ndarray  # (v, 784) uint8, choose the recipe, then trained on
    validation_labels: np.ndarray
    holdout_images: np.ndarray  # (m, 784) uint8, only to judge models
    holdout_labels: np.ndarray
    record: SnapshotRecord


def take_snapshot(rt: Runtime, data: Mnist) -> Snapshot:
    """Read the accepted images to train on and to judge with. One metadata query decides which rows count,
    so the counts and the images always agree however many rows arrive meanwhile."""
    settings = rt.settings
    with rt.session() as session:
        rows = session.execute(select(TrainingImage.id, TrainingImage.spend_key, TrainingImage.label,
                                      TrainingImage.review, TrainingImage.duplicate_of, TrainingImage.holdout,
                                      Bounty.mode, Submission.vetting)
                               .join(Bounty, Bounty.id == TrainingImage.bounty_id)
                               .join(Submission, Submission.id == TrainingImage.submission_id)
                               .order_by(TrainingImage.id)).all()
        groups: dict[str, list[Any]] = {name: [] for name in GROUPS}
        for row in rows:
            judged = row.mode == BountyMode.VETTED and _judged(row.vetting)
            # an open bounty pays whatever its classifier accepts, and so does a vetted spend nobody vetted:
            # their labels are the classifier's reading until a person approves them
            review_needed = settings.retrain_require_review or (not judged and (
                row.mode == BountyMode.VETTED or settings.retrain_open_needs_review))
            vetted = row.review == ReviewStatus.APPROVED or (judged and not review_needed)
            groups[_group(row.review, row.duplicate_of, row.holdout, vetted, review_needed)].append(row)
        pixels = _pixels(session, [r.id for r in groups["trained"] + groups["holdout"]])
    trained, validation = _split_validation(groups["trained"], settings.retrain_validation_every)
    images, labels = _arrays(trained, pixels)
    validation_images, validation_labels = _arrays(validation, pixels)
    holdout_images, holdout_labels = _arrays(groups["holdout"], pixels)
    used = sorted(trained + validation, key=lambda r: r.id)
    record = SnapshotRecord(
        taken_at=datetime.now(UTC).isoformat(),
        mnist_digest=data.digest,
        mnist_source=data.source.split(":", 1)[0],
        accepted_images=len(used),
        validation_images=len(validation),
        accepted_label_counts=_counts([r.label for r in used]),
        accepted_id_range=(used[0].id, used[-1].id) if used else None,
        accepted_spend_keys_sha256=hashlib.sha256("\n".join(r.spend_key for r in used).encode()).hexdigest(),
        accepted_data_sha256=_data_sha256(*_arrays(used, pixels)),
        holdout_images=len(groups["holdout"]),
        holdout_label_counts=_counts([r.label for r in groups["holdout"]]),
        holdout_ids_sha256=hashlib.sha256(",".join(str(r.id) for r in groups["holdout"]).encode()).hexdigest(),
        left_out={name: len(groups[name]) for name in ("duplicates", "excluded", "unreviewed")},
        require_review=settings.retrain_require_review,
        seen_up_to_id=rows[-1].id if rows else 0,
    )
    return Snapshot(images, labels, validation_images, validation_labels, holdout_images, holdout_labels, record)


def _group(review: ReviewStatus, duplicate_of: int | None, holdout: bool, vetted: bool, review_needed: bool) -> str:
    """Where one accepted image goes; the first rule that applies wins. A held-out image whose label was not
    vetted is not used at all: trained on now, it could not judge a later model fairly once approved."""
    if duplicate_of is not None:
        return "duplicates"
    if review == ReviewStatus.EXCLUDED:
        return "excluded"
    if (review_needed or holdout) and not vetted:
        return "unreviewed"
    return "holdout" if holdout else "trained"


def _judged(vetting: Any) -> bool:
    """The service vetted exactly these pixels. A vetted bounty's spend the service never vetted (the
    attestor's signature does not cover the image, so a relay or miner can swap in another one the classifier
    accepts) is paid, but its label is only the classifier's reading: it waits for review like an open one."""
    return isinstance(vetting, dict) and "judge" in vetting


def _split_validation(rows: list[Any], every: int) -> tuple[list[Any], list[Any]]:
    """(trained, validation): the last of every `every` images of each digit, in arrival order, validates."""
    seen = [0] * 10
    trained: list[Any] = []
    validation: list[Any] = []
    for row in rows:
        seen[row.label] += 1
        (validation if seen[row.label] % every == 0 else trained).append(row)
    return trained, validation


def _counts(labels: list[int]) -> tuple[int, ...]:
    return tuple(int(n) for n in np.bincount(np.asarray(labels, dtype=np.int64), minlength=10))


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


__all__ = ["Snapshot", "SnapshotRecord", "take_snapshot"]
