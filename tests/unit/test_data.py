"""MNIST loading: the standard split from every source, and clear errors for broken ones."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from model.data import IDX_FILES, TEST_LABEL_COUNTS, TRAIN_LABEL_COUNTS, Mnist, _read_hub_pickle, load_mnist
from model.errors import DatasetError


def write_idx(directory: Path, data: Mnist, gz: bool = False) -> None:
    arrays = {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}
    for key, stem in IDX_FILES.items():
        a = arrays[key]
        raw = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
        (directory / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(raw, 1) if gz else raw)


def test_standard_split_with_known_checksums(mnist: Mnist) -> None:
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8
    assert tuple(np.bincount(mnist.y_train)) == TRAIN_LABEL_COUNTS
    assert tuple(np.bincount(mnist.y_test)) == TEST_LABEL_COUNTS
    assert hashlib.md5(mnist.x_test.tobytes()).hexdigest() == "240610fa99e73bfa49df8e7fc24d3206"
    assert int(mnist.y_test.sum()) == 44434


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_is_preferred_and_gives_the_same_data(tmp_path: Path, mnist: Mnist, gz: bool) -> None:
    write_idx(tmp_path, mnist, gz)
    loaded = load_mnist(tmp_path)
    assert loaded.source.startswith("idx:")
    assert loaded.digest == mnist.digest


def test_missing_idx_file_says_what_to_do(tmp_path: Path, mnist: Mnist) -> None:
    write_idx(tmp_path, mnist)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*BOUNTY_MNIST_DIR"):
        load_mnist(tmp_path)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_truncated_idx_file_is_refused(tmp_path: Path, mnist: Mnist) -> None:
    write_idx(tmp_path, mnist)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        load_mnist(tmp_path)


def test_wrong_labels_are_refused(tmp_path: Path, mnist: Mnist) -> None:
    labels = mnist.y_test.copy()
    labels[:50] = 3
    write_idx(tmp_path, Mnist(mnist.x_train, mnist.y_train, mnist.x_test, labels, "test"))
    with pytest.raises(DatasetError, match="label counts"):
        load_mnist(tmp_path)


def test_the_pickle_reader_runs_no_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(Exploit())))
    with pytest.raises(DatasetError, match="not allowed"):
        _read_hub_pickle(path)


def test_a_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="gzip"):
        _read_hub_pickle(path)
