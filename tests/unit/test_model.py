"""The integer model, artifacts and training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.artifact import METADATA_FILE, WEIGHTS_FILE, ModelArtifact, load_artifact
from model.config import TINY
from model.data import Mnist
from model.errors import ArtifactError
from model.reference import classify, hidden, logits


def test_shipped_artifact_is_small_and_reaches_98_percent(shipped: ModelArtifact, mnist: Mnist) -> None:
    from model.artifact import DEFAULT_ARTIFACT
    from model.evaluate import evaluate

    assert sum(p.stat().st_size for p in DEFAULT_ARTIFACT.iterdir()) < 1_000_000
    report = evaluate(shipped, mnist)
    assert report["test_images"] == 10000
    assert report["int_accuracy"] >= 0.980
    assert report["agreement"] >= 0.995


def test_integer_model_matches_keras_float_predictions(shipped: ModelArtifact, mnist: Mnist) -> None:
    import keras

    f = shipped.float_weights
    net = keras.Sequential([keras.Input((784,)), keras.layers.Dense(f.w1.shape[1], activation="relu"),
                            keras.layers.Dense(10)])
    net.set_weights([f.w1, f.b1, f.w2, f.b2])
    sample = mnist.x_test.reshape(-1, 784)  # all 10,000 test images
    keras_labels = np.argmax(net.predict(sample / 255.0, verbose=0), axis=1)
    int_labels, _ = classify(shipped.integer, sample)
    assert np.mean(keras_labels == int_labels) >= 0.995


def test_reference_semantics(shipped: ModelArtifact, mnist: Mnist) -> None:
    m = shipped.integer
    x = mnist.x_test[:500]
    h = hidden(m, x)
    assert h.min() >= 0 and h.max() <= 255
    z = logits(m, x)
    labels, margins = classify(m, x)
    top2 = np.sort(z, axis=1)[:, -2:]
    assert np.array_equal(margins, top2[:, 1] - top2[:, 0])
    assert np.array_equal(z[np.arange(len(z)), labels], top2[:, 1])


def test_ties_go_to_the_lowest_index(shipped: ModelArtifact) -> None:
    m = shipped.integer
    # zero every layer-2 weight and give digits 3 and 8 the same, highest bias: a forced tie
    b2 = np.full(10, -5, dtype=np.int64)
    b2[[3, 8]] = 7
    tied = type(m)(w1=m.w1, b1=m.b1, shift=m.shift, w2=np.zeros_like(m.w2), b2=b2)
    labels, margins = classify(tied, np.zeros((2, 784), dtype=np.uint8))
    assert labels.tolist() == [3, 3] and margins.tolist() == [0, 0]


@pytest.mark.parametrize("bad", [np.full(784, 256), np.full(784, -1), np.zeros(783)])
def test_reference_refuses_out_of_range_images(shipped: ModelArtifact, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        classify(shipped.integer, bad)


def test_artifact_round_trip(shipped: ModelArtifact, tmp_path: Path) -> None:
    shipped.save(tmp_path / "copy")
    again = load_artifact(tmp_path / "copy")
    assert again.weights_sha256 == shipped.weights_sha256
    for name, array in shipped.integer.arrays().items():
        assert np.array_equal(array, again.integer.arrays()[name])
    assert np.array_equal(again.float_weights.w1, shipped.float_weights.w1)
    assert again.config == shipped.config and again.metrics == shipped.metrics


def test_tampered_artifact_is_refused(shipped: ModelArtifact, tmp_path: Path) -> None:
    shipped.save(tmp_path)
    with np.load(tmp_path / WEIGHTS_FILE) as npz:
        arrays = dict(npz)
    arrays["int_w2"] = arrays["int_w2"].copy()
    arrays["int_w2"][0, 0] += 1
    np.savez_compressed(tmp_path / WEIGHTS_FILE, **arrays)
    with pytest.raises(ArtifactError, match="altered"):
        load_artifact(tmp_path)


@pytest.mark.parametrize("broken", ["missing", "garbage"])
def test_broken_artifact_is_a_clear_error(shipped: ModelArtifact, tmp_path: Path, broken: str) -> None:
    shipped.save(tmp_path)
    if broken == "missing":
        (tmp_path / WEIGHTS_FILE).unlink()
    else:
        (tmp_path / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match=str(tmp_path)):
        load_artifact(tmp_path)


def test_tiny_training_produces_a_working_artifact(mnist: Mnist, tmp_path: Path) -> None:
    from model.train import train, write_report

    result = train(mnist, TINY)
    result.artifact.save(tmp_path)
    plots = write_report(result, tmp_path / "report")
    loaded = load_artifact(tmp_path)
    assert all(p.stat().st_size > 1000 for p in plots)
    assert loaded.integer.w1.shape == (784, 64)
    density = np.count_nonzero(loaded.integer.w1) / loaded.integer.w1.size
    assert density == pytest.approx(TINY.densities[-1], abs=0.01)
    assert np.abs(loaded.integer.w1).max() <= 8 and np.abs(loaded.integer.w2).max() <= 127
    labels, _ = classify(loaded.integer, mnist.x_test[:1000])
    assert np.mean(labels == mnist.y_test[:1000]) > 0.7  # a few seconds of training on 3,000 images
    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    assert meta["dataset_digest"] == mnist.digest and meta["config"]["seed"] == TINY.seed


@pytest.mark.subprocess  # a fresh interpreter
def test_the_service_side_never_imports_tensorflow() -> None:
    code = ("import sys, marketplace.cli, marketplace.api, marketplace.watcher, workers.tasks, workers.retraining,"
            " model.judge, model.judge_eval, model.adversary, marketplace.cli.judge, marketplace.cli.retrain,"
            " marketplace.cli._retrain_workers, marketplace.retrain_report;"
            "from model.judge import load_judge; load_judge().verdict([0] * 784, 5);"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
