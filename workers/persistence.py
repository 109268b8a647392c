"""Keep accepted images for retraining: once per spend, duplicates marked, a held-out slice set aside.

Only confirmed submissions are kept (the watcher hands them over once `min_confirmations` deep),
so a spend a reorg drops is never stored as accepted. An exact copy of an image already kept, or a
near copy of one with the same label, is stored but excluded: the first submission wins.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.runtime import Runtime
from marketplace.schema import ReviewStatus, Submission, SubmissionStatus, TrainingImage
from workers.kept_images import kept_images

log = logging.getLogger(__name__)
NEAR_PIXEL_DELTA = 48  # a pixel "differs" when it moved by more than this (of 255)
NEAR_MAX_DIFFERING = 12  # at most this many differing pixels makes a near copy
HOLDOUT_EVERY = 5  # of each digit's kept images, every fifth (set once, never changed) only judges models


def persist_accepted(rt: Runtime, submission_id: int) -> int | None:
    """Store the image of a confirmed submission; returns the training image id (the same id on every
    repeat), or None when the submission is not (or no longer) confirmed."""
    with rt.session() as session:
        row = session.get(Submission, submission_id)
        if row is None or row.status != SubmissionStatus.CONFIRMED or row.txid is None:
            return None
        key = f"{row.txid}:{row.input_index}"
        existing = session.scalar(select(TrainingImage.id).where(TrainingImage.spend_key == key))
        if existing is not None:
            return existing
        digest = hashlib.sha256(row.pixels).hexdigest()
        # the vetted label (the claim the judge confirmed, an appeal's included), never the model's own reading
        label = row.claimed_digit if row.claimed_digit is not None else row.predicted_label
        image = TrainingImage(spend_key=key, submission_id=row.id, bounty_id=row.bounty_id,
                              label=label, pixels=row.pixels, pixels_sha256=digest, review=ReviewStatus.PENDING)
        kept_ids, kept_pixels = kept_images(rt, session, label)
        original = _copy_of(session, row.pixels, digest, kept_ids, kept_pixels)
        if original is not None:
            image.duplicate_of, image.review = original, ReviewStatus.EXCLUDED
        else:
            # the per-digit position that makes the held-out share exact for every digit (two images of one
            # digit kept at the same instant may share a position; the share stays within one image of exact)
            image.holdout = len(kept_ids) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
        session.add(image)
        try:
            session.flush()
        except IntegrityError:  # a concurrent delivery of the same task stored it first
            session.rollback()
            return session.scalar(select(TrainingImage.id).where(TrainingImage.spend_key == key))
        log.info("kept submission %d as training image %d%s", row.id, image.id,
                 f" (copy of {original})" if original else "")
        return image.id


def _copy_of(session: Session, pixels: bytes, digest: str, kept_ids: list[int], kept: np.ndarray) -> int | None:
    """The first kept image this one copies exactly, or nearly with the same label (`kept`: that label's)."""
    exact = session.scalar(select(TrainingImage.id).where(TrainingImage.pixels_sha256 == digest)
                           .order_by(TrainingImage.id))
    if exact is not None:
        return exact
    if not kept_ids:
        return None
    mine = np.frombuffer(pixels, np.uint8).astype(np.int16)
    differing = (np.abs(kept.astype(np.int16) - mine) > NEAR_PIXEL_DELTA).sum(axis=1)
    near = np.flatnonzero(differing <= NEAR_MAX_DIFFERING)
    return kept_ids[int(near[0])] if len(near) else None


def persist_confirmed(rt: Runtime) -> int:
    """Store every confirmed submission not stored yet; returns how many were new."""
    with rt.session() as session:
        waiting = session.scalars(
            select(Submission.id).where(Submission.status == SubmissionStatus.CONFIRMED,
                                        ~Submission.id.in_(select(TrainingImage.submission_id)))
            .order_by(Submission.id)).all()
    return sum(persist_accepted(rt, submission_id) is not None for submission_id in waiting)
