"""The kept training images of each label, held in memory by the process that stores new ones.

Every image stored is compared with every image already kept under its label (`persistence._copy_of`). Reading
them all from the database for each new image made storing the n-th image cost n rows: quadratic in the data
bought. Rows are never changed or deleted once written, so each process reads only the rows it has not seen:
those above the highest id it holds, plus a short tail below it (an insert of another worker may commit after a
later id is seen). Kept per Runtime, so a test's fresh database never meets another's rows.
"""

from __future__ import annotations

import threading
from weakref import WeakKeyDictionary

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.runtime import Runtime
from marketplace.schema import TrainingImage

REREAD_TAIL = 64  # ids below the highest one held that are read again, for inserts that committed late


class KeptImages:
    """One label's kept images (duplicates excluded): their ids and pixels, in id order."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.pixels = np.zeros((0, 784), np.uint8)
        self._known: set[int] = set()

    def refresh(self, session: Session, label: int) -> None:
        """Add the rows stored since the last refresh (as this session sees the database)."""
        since = (self.ids[-1] - REREAD_TAIL) if self.ids else 0
        rows = [(id_, pixels) for id_, pixels in session.execute(
            select(TrainingImage.id, TrainingImage.pixels).where(
                TrainingImage.label == label, TrainingImage.duplicate_of.is_(None), TrainingImage.id > since)
            .order_by(TrainingImage.id)) if id_ not in self._known]
        if not rows:
            return
        ids = self.ids + [id_ for id_, _ in rows]
        pixels = np.concatenate([self.pixels, np.stack([np.frombuffer(p, np.uint8) for _, p in rows])])
        order = np.argsort(ids, kind="stable")  # a late commit's row goes back to its place
        self.ids, self.pixels = [ids[i] for i in order], pixels[order]
        self._known.update(id_ for id_, _ in rows)


_held: WeakKeyDictionary[Runtime, dict[int, KeptImages]] = WeakKeyDictionary()
_lock = threading.Lock()  # the embedded workers are threads of one process


def kept_images(rt: Runtime, session: Session, label: int) -> tuple[list[int], np.ndarray]:
    """The label's kept images brought up to date: their ids and pixels (n x 784), in id order."""
    with _lock:
        held = _held.setdefault(rt, {}).setdefault(label, KeptImages())
        held.refresh(session, label)
        return held.ids, held.pixels  # replaced, never changed, by later refreshes
