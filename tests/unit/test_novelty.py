"""The novelty index (marketplace.novelty): exact and near copies found, honest handwriting not, persistence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from marketplace.errors import NoveltyError
from marketplace.novelty import NoveltyIndex, mnist_keys
from marketplace.novelty import edits as edit
from model.artifact import ModelArtifact
from model.data import Mnist

INDEXED = 3000  # the first training images are indexed
SAMPLE = 100  # edited copies of the first indexed images per edit
HONEST = 1000  # test images looked up
Edit = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@pytest.fixture(scope="module")
def index(mnist: Mnist) -> NoveltyIndex:
    built = NoveltyIndex.trained_on(mnist.x_train[:INDEXED])
    built.add_many(mnist_keys("train", INDEXED), mnist.x_train[:INDEXED])
    return built


def found_share(index: NoveltyIndex, edited: np.ndarray) -> float:
    """The share of edited copies of the first images that the index calls copies of their own source."""
    matches = [index.is_copy(image) for image in edited]
    return sum(m is not None and m.key == f"mnist:train:{i}" for i, m in enumerate(matches)) / len(edited)


def test_an_exact_copy_is_found_at_distance_zero(index: NoveltyIndex, mnist: Mnist) -> None:
    match = index.is_copy(mnist.x_train[123].reshape(-1).tolist())
    assert match is not None and match.key == "mnist:train:123" and match.distance < 1e-3


@pytest.mark.parametrize(
    ("name", "make", "floor"),
    [
        ("shifted a pixel right and down", lambda x, rng: edit.shift(x, 1, 1), 0.97),
        ("shifted two pixels left", lambda x, rng: edit.shift(x, 0, -2), 0.95),
        ("shifted two pixels up and one right", lambda x, rng: edit.shift(x, -2, 1), 0.95),
        ("dimmed to 80%", lambda x, rng: edit.intensity(x, scale=0.8), 0.95),
        ("brightened by 20 levels", lambda x, rng: edit.intensity(x, offset=20), 0.7),
        ("gamma 0.8", lambda x, rng: edit.intensity(x, gamma=0.8), 0.7),
        ("5 pixels flipped anywhere", lambda x, rng: edit.flip(x, 5, rng), 0.8),
        ("thickened by a pixel (4 neighbours)", lambda x, rng: edit.thicken(x), 0.4),
    ],
)
def test_near_copies_are_found(index: NoveltyIndex, mnist: Mnist, name: str, make: Edit, floor: float) -> None:
    edited = make(mnist.x_train[:SAMPLE], np.random.default_rng(7))
    assert not np.array_equal(edited, mnist.x_train[:SAMPLE].reshape(edited.shape)), name
    assert found_share(index, edited) >= floor, name


def test_13_flips_among_pixels_the_model_does_not_read_are_found(
    index: NoveltyIndex, mnist: Mnist, shipped: ModelArtifact
) -> None:
    """Issue 12: 13 such flips keep the logits identical and passed the 12-pixel dedupe rule."""
    unread = np.flatnonzero(~(shipped.integer.w1 != 0).any(axis=1))
    assert len(unread) > 13
    edited = edit.flip(mnist.x_train[:SAMPLE], 13, np.random.default_rng(13), among=unread)
    assert found_share(index, edited) >= 0.97
    shifted_too = edit.shift(edited, 1, -1)
    assert found_share(index, shifted_too) >= 0.95


def test_honest_handwriting_of_the_same_digits_is_not_flagged(index: NoveltyIndex, mnist: Mnist) -> None:
    flagged = [i for i in range(HONEST) if index.is_copy(mnist.x_test[i]) is not None]
    assert len(flagged) <= HONEST // 200, flagged  # at most 0.5%
    # and the nearest indexed image of a test image is usually the same digit: the fingerprint keeps the shape
    same_digit = sum(
        mnist.y_train[int(m.key.rsplit(":", 1)[1])] == mnist.y_test[i]
        for i in range(200)
        if (m := index.nearest(mnist.x_test[i])) is not None
    )
    assert same_digit >= 180


def test_incremental_adds_are_found_and_a_key_is_taken_once(mnist: Mnist) -> None:
    index = NoveltyIndex.trained_on(mnist.x_train[:1000])
    assert index.nearest(mnist.x_test[0]) is None and len(index) == 0
    index.add_many(mnist_keys("train", 1000), mnist.x_train[:1000])
    assert index.is_copy(mnist.x_test[0]) is None
    index.add("submission:45", mnist.x_test[0])
    match = index.is_copy(edit.shift(mnist.x_test[0], 1, 0))
    assert match is not None and match.key == "submission:45"
    assert len(index) == 1001 and "submission:45" in index
    with pytest.raises(NoveltyError, match="already indexed"):
        index.add("submission:45", mnist.x_test[1])
    assert len(index) == 1001 and index.is_copy(mnist.x_test[1]) is None


def test_save_and_load_keep_everything_and_take_more_adds(index: NoveltyIndex, mnist: Mnist, tmp_path: Path) -> None:
    path = tmp_path / "novelty.npz"
    index.save(path)
    loaded = NoveltyIndex.load(path)
    assert len(loaded) == len(index) and loaded.threshold == index.threshold
    for image in (mnist.x_train[5], edit.shift(mnist.x_train[77], 2, 0), mnist.x_test[3]):
        assert loaded.nearest(image) == index.nearest(image)
    loaded.add("submission:1", mnist.x_test[9])
    assert loaded.is_copy(mnist.x_test[9]) == loaded.nearest(mnist.x_test[9])
    assert "submission:1" not in index


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        ([0] * 783, "784 values"),
        ([0] * 783 + [256], "0..255"),
        ([0] * 783 + [-1], "0..255"),
        ([0.5] * 784, "whole numbers"),
        ([float("nan")] * 784, "whole numbers"),
        (["a"] * 784, "integers"),
        ([], "784 values"),
    ],
)
def test_bad_pixels_are_refused_with_a_sentence(index: NoveltyIndex, pixels: list[object], message: str) -> None:
    with pytest.raises(NoveltyError, match=message):
        index.is_copy(pixels)  # type: ignore[arg-type]


def test_nprobe_is_bounded_by_the_clusters(index: NoveltyIndex) -> None:
    before = index.nprobe
    for bad in (0, 10**6):
        with pytest.raises(NoveltyError, match="nprobe"):
            index.nprobe = bad
    assert index.nprobe == before


def test_a_file_that_is_no_index_is_refused(tmp_path: Path) -> None:
    for content in (b"", b"not a zip", b"PK\x03\x04 truncated", b"\x93NUMPY"):
        path = tmp_path / "bad.npz"
        path.write_bytes(content)
        with pytest.raises(NoveltyError, match="cannot read"):
            NoveltyIndex.load(path)
    with pytest.raises(NoveltyError, match="cannot read"):
        NoveltyIndex.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", format=np.array("something-else"))
    with pytest.raises(NoveltyError, match="format"):
        NoveltyIndex.load(tmp_path / "other.npz")
