"""Any hidden width and pruning schedule: the training options, continuing a trained network, retraining one
that is not 64 wide, the shipped artifacts by name and the search over the front (tiny configurations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from contracts.classifier import compile_classifier
from marketplace.settings import Settings
from model.artifact import DEFAULT_ARTIFACT, SHIPPED, ModelArtifact, artifact_path, load_artifact
from model.config import SEED_NETWORK, TINY, continued, continued_schedule, from_scratch, pruning_schedule
from model.data import Mnist
from model.reference import classify
from workers.retraining.recipe import Recipe
from workers.retraining.snapshot import Snapshot, SnapshotRecord

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 16


@pytest.fixture(scope="module")
def narrow(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 784-16-10 network trained from scratch for seconds, 20% of layer 1 kept."""
    from model.train import train

    path = tmp_path_factory.mktemp("narrow") / "artifact"
    train(mnist, from_scratch(TINY, WIDTH, 0.2, stages=2)).artifact.save(path)
    return path


@pytest.mark.parametrize(("density", "stages", "expected"), [
    (0.15, 5, (0.5, 0.35, 0.25, 0.2, 0.15)),  # the seed's own schedule
    (0.125, 3, (0.5, 0.25, 0.125)),
    (0.3, 1, (0.3,)),
    (0.8, 5, (0.8,)),  # denser than the first stage: one stage
])
def test_pruning_schedules_from_scratch(density: float, stages: int, expected: tuple[float, ...]) -> None:
    assert pruning_schedule(density, stages) == expected


def test_pruning_further_steps_down_from_the_current_density() -> None:
    assert continued_schedule(0.16, 0.04, 2) == (0.08, 0.04)
    assert continued(SEED_NETWORK, 128, 0.115, None).densities == ()  # no density: the sparsity is kept
    tuned = continued(SEED_NETWORK, 128, 0.115, 0.049)
    assert tuned.hidden == 128 and tuned.epochs == 0 and tuned.densities[-1] == 0.049 and len(tuned.densities) == 3


@pytest.mark.parametrize(("call", "message"), [
    (lambda: pruning_schedule(0.0), "in \\(0, 1\\]"),
    (lambda: pruning_schedule(1.5), "in \\(0, 1\\]"),
    (lambda: pruning_schedule(0.1, 0), "at least one stage"),
    (lambda: continued_schedule(0.1, 0.2, 2), "prune to less than that"),
    (lambda: from_scratch(TINY, 0, 0.1), "at least one neuron"),
])
def test_bad_schedules_are_refused_in_words(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_a_narrow_network_trains_prunes_and_agrees_with_its_integer_export(narrow: Path, mnist: Mnist) -> None:
    artifact = load_artifact(narrow)
    assert artifact.integer.w1.shape == (784, WIDTH) and artifact.integer.w2.shape == (WIDTH, 10)
    assert artifact.config["hidden"] == WIDTH and artifact.config["densities"] == [0.5, 0.2]
    assert artifact.float_weights.density == pytest.approx(0.2, abs=0.005)
    labels, _ = classify(artifact.integer, mnist.x_test[:1000])
    assert np.mean(labels == mnist.y_test[:1000]) > 0.6  # seconds of training on 3,000 images, 16 neurons
    assert np.mean(labels == artifact.float_weights.predict(mnist.x_test[:1000])) > 0.95


def test_continuing_keeps_the_width_prunes_within_the_old_mask_and_records_its_origin(
        narrow: Path, mnist: Mnist) -> None:
    from model.train import continue_training

    parent = load_artifact(narrow)
    child = continue_training(mnist, continued(TINY, WIDTH, parent.float_weights.density, 0.1, 1), parent).artifact
    assert child.integer.w1.shape == (784, WIDTH)
    assert child.float_weights.density == pytest.approx(0.1, abs=0.005)
    assert not np.any((child.float_weights.w1 != 0) & (parent.float_weights.w1 == 0))  # pruned zeros stay zero
    assert child.config["continued_from"]["weights_sha256"] == parent.weights_sha256
    assert child.config["epochs"] == 0


def test_continuing_with_another_width_is_refused(narrow: Path, mnist: Mnist) -> None:
    from model.train import train

    with pytest.raises(ValueError, match="keeps the network's shape"):
        train(mnist, TINY, base=load_artifact(narrow).float_weights)  # TINY is 64 wide


@pytest.mark.subprocess  # the training step runs in a child process
def test_retraining_fine_tunes_a_network_that_is_not_64_wide(narrow: Path, mnist: Mnist) -> None:
    from workers.retraining.training import train_challenger

    x, y = mnist.x_train[:60].reshape(-1, 784), mnist.y_train[:60]
    empty = np.zeros((0, 784), dtype=np.uint8)
    snapshot = Snapshot(x, y, empty, np.zeros(0, dtype=np.uint8), empty, np.zeros(0, dtype=np.uint8),
                        cast(SnapshotRecord, None))  # the training step reads the images only
    settings = Settings(_env_file=None, retrain_fast=True)  # type: ignore[call-arg]
    trained = train_challenger(mnist, snapshot, [Recipe(2, 1, fast=True)], narrow, settings)
    champion = load_artifact(narrow)
    assert trained.challenger.integer.w1.shape == (784, WIDTH)
    assert np.array_equal(trained.challenger.float_weights.w1 != 0, champion.float_weights.w1 != 0)  # same mask
    assert trained.challenger.weights_sha256 != champion.weights_sha256


def test_shipped_artifacts_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert artifact_path(None) == DEFAULT_ARTIFACT and artifact_path("default") == DEFAULT_ARTIFACT
    assert artifact_path("accurate") == SHIPPED["accurate"] and artifact_path(tmp_path) == tmp_path
    for name in SHIPPED:
        assert isinstance(load_artifact(name), ModelArtifact)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seed").mkdir()
    assert artifact_path("seed") == Path("seed")  # a directory of that name right here wins


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"BOUNTY_HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "marketplace.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.mark.subprocess
def test_the_train_command_takes_a_width_and_a_density_and_continues_from_an_artifact(
        narrow: Path, tmp_path: Path) -> None:
    done = run_cli("model", "train", "--tiny", "--from", str(narrow), "--density", "0.12", "--stages", "1",
                   "--out", str(tmp_path / "pruned"), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["hidden"] == WIDTH and summary["layer1_density"] == pytest.approx(0.12, abs=0.005)
    assert load_artifact(tmp_path / "pruned").config["continued_from"]["weights_sha256"] == \
        load_artifact(narrow).weights_sha256
    for bad, words in [(["--from", str(narrow), "--hidden", "32"], "continuing keeps its width"),
                       (["--from", str(narrow), "--density", "0.5"], "prune to less than that"),
                       (["--density", "0"], "in (0, 1]")]:
        refused = run_cli("model", "train", "--tiny", *bad, "--out", str(tmp_path / "x"), home=tmp_path)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr[-500:]
        assert "Traceback" not in refused.stderr


@pytest.mark.subprocess
def test_the_front_search_measures_every_candidate_and_chooses_on_validation(tmp_path: Path) -> None:
    out, png = tmp_path / "front.json", tmp_path / "front.png"
    command = [sys.executable, str(ROOT / "bench" / "model_front.py"), "--tiny", "--widths", "8,12", "--densities",
               "0.3,0.1", "--seeds", "1", "--stages", "1", "--more-stages", "1", "--artifacts", str(tmp_path / "a"),
               "--out", str(out), "--plot", str(png)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["candidates"]
    shapes = sorted((r["hidden"], r["layer1_density"]) for r in rows)
    assert [h for h, _ in shapes] == [8, 8, 12, 12]
    assert [d for _, d in shapes] == pytest.approx([0.1, 0.3, 0.1, 0.3], abs=0.002)
    for row in rows:
        artifact = load_artifact(row["artifact"])
        assert row["classifier_bytes"] == compile_classifier(artifact.integer).locking_script_bytes
        assert 0 < row["test_int_accuracy"] < 1 and row["val_int_accuracy"] == artifact.metrics["val_int_accuracy"]
    small = [r for r in rows if r["classifier_bytes"] <= 32_768]
    best = max(small, key=lambda r: (r["val_int_accuracy"], -r["classifier_bytes"]))
    assert result["chosen"]["best within 32,768 bytes"] == best
    assert png.stat().st_size > 10_000
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                           env=os.environ | {"PYTHONPATH": str(ROOT)})  # resumes: nothing left to train
    assert again.returncode == 0 and "training h" not in again.stderr
    assert json.loads(out.read_text())["candidates"] == rows
