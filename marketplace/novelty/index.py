"""The novelty index: every image ever indexed, searchable by fingerprint, for exact and near copies.

Built on faiss (an inverted-file index over the fingerprints: a query scans the `nprobe` nearest of `nlist`
clusters; the clusters are learnt once from a sample, MNIST's training images in practice). Keys are strings
such as ``mnist:train:123`` or ``submission:45``; ids inside faiss are positions in `keys`.

Rebuild it at start from the stored images (`NoveltyIndex.trained_on(...)` then `add_many`), or save and load it
as one ``.npz`` file. Reads and adds may come from several threads: one lock serialises them.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from marketplace.errors import NoveltyError
from marketplace.novelty.fingerprint import DIM, QUERY_VARIANTS, as_images, fingerprints, query_fingerprints

THRESHOLD = 0.041  # fingerprint distance below which an image is a copy: `calibrate` on MNIST train gave 0.0409
FALSE_POSITIVE_RATE = 0.002  # the share of honest held-out training images `calibrate` lets through as copies
POINTS_PER_CLUSTER = 39  # faiss wants at least this many training points per cluster
MAX_CLUSTERS = 1024
NPROBE = 4  # at a million images: p95 1.5 ms (8: 6.1 ms on the shared machine), the same near copies found
FORMAT = "novelty-ivf-fp16-v2"


@dataclass(frozen=True)
class Match:
    """The indexed image nearest a query, and how far apart their fingerprints are (0 = the same fingerprint)."""

    key: str
    distance: float


class NoveltyIndex:
    """Near-copy search over fingerprints (see marketplace.novelty.fingerprint)."""

    def __init__(self, index: faiss.IndexIVF, keys: list[str], threshold: float = THRESHOLD) -> None:
        if index.d != DIM or index.ntotal != len(keys):
            raise NoveltyError("the faiss index does not match its keys or the fingerprint's dimension")
        self._index = index
        self._index.nprobe = min(NPROBE, index.nlist)
        self._keys = keys
        self._positions = {key: i for i, key in enumerate(keys)}
        self.threshold = threshold
        self._lock = threading.Lock()

    @classmethod
    def trained_on(cls, sample: np.ndarray, threshold: float = THRESHOLD, clusters: int | None = None) -> NoveltyIndex:
        """An empty index whose clusters are learnt from `sample` (images as `as_images` takes them; MNIST's
        training images in practice). Nothing of the sample is added."""
        vectors = fingerprints(as_images(sample))
        if clusters is None:
            clusters = max(1, min(MAX_CLUSTERS, len(vectors) // POINTS_PER_CLUSTER))
        if not 1 <= clusters <= len(vectors):
            raise NoveltyError(f"cannot learn {clusters} clusters from {len(vectors)} images")
        quantizer = faiss.IndexFlatL2(DIM)
        # fingerprints stored as 16-bit floats: half the memory of float32, distances within about 1e-3 of exact
        index = faiss.IndexIVFScalarQuantizer(quantizer, DIM, clusters, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_L2)
        index.cp.seed = 1234
        index.train(vectors)
        return cls(index, [], threshold=threshold)

    @property
    def nprobe(self) -> int:
        """Clusters scanned per lookup: more finds more of the far neighbours and costs time."""
        return int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if not 1 <= value <= self._index.nlist:
            raise NoveltyError(f"nprobe must be 1..{self._index.nlist}")
        self._index.nprobe = value

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def add(self, key: str, pixels: np.ndarray | Sequence[int]) -> None:
        """Index one image under `key` (a key may be added once)."""
        self.add_many([key], as_images(pixels))

    def add_many(self, keys: Sequence[str], images: np.ndarray | Iterable[Sequence[int]]) -> None:
        """Index images (n x 784 or n x 28 x 28, integers 0..255) under `keys`, all or none."""
        batch = as_images(images if isinstance(images, np.ndarray) else list(images)) if len(keys) else None
        if batch is None:
            return
        if len(batch) != len(keys):
            raise NoveltyError(f"{len(keys)} keys for {len(batch)} images")
        if len(set(keys)) != len(keys) or any(not isinstance(k, str) or not k for k in keys):
            raise NoveltyError("keys must be distinct non-empty strings")
        vectors = fingerprints(batch)
        with self._lock:
            taken = next((k for k in keys if k in self._positions), None)
            if taken is not None:
                raise NoveltyError(f"the key {taken!r} is already indexed")
            self._index.add(vectors)
            for key in keys:
                self._positions[key] = len(self._keys)
                self._keys.append(key)

    def nearest(self, pixels: np.ndarray | Sequence[int]) -> Match | None:
        """The indexed image nearest to one image (over the query's variants), or None if the index is empty."""
        image = as_images(pixels)
        if len(image) != 1:
            raise NoveltyError("nearest takes one image; nearest_many takes a batch")
        return self.nearest_many(image)[0]

    def nearest_many(self, images: np.ndarray) -> list[Match | None]:
        """`nearest` for each of a batch of images: the nearest indexed fingerprint to any of the query's
        variants (see fingerprint.QUERY_VARIANTS)."""
        batch = as_images(images)
        queries = query_fingerprints(batch)
        with self._lock:
            if not self._keys:
                return [None] * len(batch)
            squared, ids = self._index.search(queries.reshape(-1, DIM), 1)
        # keys are only ever appended, so the ids found stay valid outside the lock
        squared = squared.reshape(len(batch), len(QUERY_VARIANTS))
        ids = ids.reshape(len(batch), len(QUERY_VARIANTS))
        squared[ids < 0] = np.inf
        best = np.argmin(squared, axis=1)
        matches: list[Match | None] = []
        for row, column in enumerate(best.tolist()):
            found = int(ids[row, column])
            distance = float(np.sqrt(max(float(squared[row, column]), 0.0)))
            matches.append(Match(self._keys[found], distance) if found >= 0 else None)
        return matches

    def is_copy(self, pixels: np.ndarray | Sequence[int]) -> Match | None:
        """The indexed image that `pixels` copies (exactly or nearly), or None if it is new."""
        match = self.nearest(pixels)
        return match if match is not None and match.distance < self.threshold else None

    def save(self, path: Path | str) -> None:
        """Write the whole index (clusters, fingerprints, keys, threshold) to one .npz file, atomically."""
        path = Path(path)
        with self._lock:
            blob = faiss.serialize_index(self._index)
            keys = np.array(self._keys, dtype=np.str_)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as f:
            np.savez(f, format=np.array(FORMAT), index=blob, keys=keys, threshold=np.array(self.threshold))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path | str) -> NoveltyIndex:
        """Read an index written by `save`. Raises `NoveltyError` if the file is missing or not such an index."""
        try:
            with Path(path).open("rb") as raw:
                f = np.load(raw, allow_pickle=False)
                if not isinstance(f, np.lib.npyio.NpzFile):
                    raise NoveltyError(f"{path} is not a novelty index (.npz) file")
                with f:
                    if str(f["format"]) != FORMAT:
                        raise NoveltyError(f"{path} is a novelty index of format {str(f['format'])!r}, not {FORMAT!r}")
                    index = faiss.deserialize_index(f["index"])
                    keys = [str(k) for k in f["keys"]]
                    threshold = float(f["threshold"])
        except NoveltyError:
            raise
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
            raise NoveltyError(f"cannot read the novelty index {path}: {type(exc).__name__}") from exc
        if not isinstance(index, faiss.IndexIVFScalarQuantizer):
            raise NoveltyError(f"{path} does not hold an inverted-file index")
        return cls(index, keys, threshold)


def calibrate(images: np.ndarray, held_out: int, rate: float = FALSE_POSITIVE_RATE) -> tuple[float, np.ndarray]:
    """Choose the copy threshold on honest data: index all but the last `held_out` images, look up each held-out
    one, and return the distance below which only `rate` of them fall (with all the held-out distances).
    Run on MNIST's training images only (`bench/novelty.py --calibrate`), so the test set stays a fair measure."""
    if not 0 < held_out < len(images):
        raise NoveltyError("held_out must leave images on both sides")
    index = NoveltyIndex.trained_on(images[:-held_out])
    index.add_many([f"calibrate:{i}" for i in range(len(images) - held_out)], images[:-held_out])
    matches = index.nearest_many(images[-held_out:])
    distances = np.array([m.distance if m is not None else np.inf for m in matches])
    return float(np.quantile(distances, rate)), distances


def mnist_keys(split: str, count: int) -> list[str]:
    """The keys of MNIST's images: ``mnist:train:0`` ... (split is "train" or "test")."""
    return [f"mnist:{split}:{i}" for i in range(count)]
