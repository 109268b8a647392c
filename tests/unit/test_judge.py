"""The independent judge: numpy inference equal to Keras, artifacts checked on load, and the shipped judge
refusing attacks on the public classifier while passing honest digits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.adversary import ADVERSARIAL, KINDS, craft
from model.artifact import ModelArtifact
from model.augment import CANVAS_STYLE, dilate, restyle, to_uint8, to_unit
from model.data import Mnist
from model.errors import ArtifactError
from model.judge import DEFAULT_JUDGE, METADATA_FILE, WEIGHTS_FILE, Judge, load_judge


def bounty(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marketplace.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def judge() -> Judge:
    return load_judge()


@pytest.mark.subprocess
def test_tiny_training_through_the_cli_matches_keras(mnist: Mnist, tmp_path: Path) -> None:
    from model.judge_config import TINY_JUDGE
    from model.judge_train import keras_models

    done = bounty("judge", "train", "--tiny", "--out", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    trained = load_judge(tmp_path)
    assert summary["weights_sha256"] == trained.weights_sha256 and summary["policy_sha256"] == trained.policy_sha256
    assert summary["validation_images"] == TINY_JUDGE.validation_images
    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    assert meta["dataset_digest"] == mnist.digest and meta["config"]["seed"] == TINY_JUDGE.seed
    # the exported (float16) weights inside Keras give what the numpy inference gives, to float32 rounding
    x = mnist.x_test[:64].reshape(-1, 784)
    cnn, autoencoder = keras_models(trained, TINY_JUDGE)
    assert np.allclose(cnn.predict(x.reshape(-1, 28, 28, 1) / 255.0, verbose=0), trained.logits(x), atol=1e-4)
    assert np.allclose(autoencoder.predict(x / 255.0, verbose=0), trained.reconstruct(x), atol=1e-5)
    assert np.mean(np.argmax(trained.probabilities(x)[:, :10], axis=1) == mnist.y_test[:64]) > 0.3
    trained.save(tmp_path / "copy")
    again = load_judge(tmp_path / "copy")
    assert again.policy_sha256 == trained.policy_sha256
    assert np.array_equal(again.probabilities(x), trained.probabilities(x))


def test_shipped_judge_is_small(judge: Judge) -> None:
    assert (DEFAULT_JUDGE / WEIGHTS_FILE).stat().st_size < 2_000_000
    assert judge.parameters < 1_000_000 and len(judge.weights_sha256) == 64
    policy = judge.policy()
    assert policy["policy_sha256"] == judge.policy_sha256 and policy["thresholds"]["min_probability"] >= 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_judge_refuses_attacks_on_the_classifier(kind: str, judge: Judge, shipped: ModelArtifact,
                                                         mnist: Mnist) -> None:
    # crafted from test digits the judge never saw, with a seed of their own; each one paid by the classifier.
    # The greedy flips take a few ms each, so fewer of them; garbage is cheap.
    n = 40 if kind in ADVERSARIAL else 120
    attacks = craft(kind, shipped, n, seed=777, images=mnist.x_test[5000:6000], labels=mnist.y_test[5000:6000])
    assert len(attacks) == n
    assessment = judge.assess(attacks.images, attacks.claimed)
    assert assessment.passed.mean() <= 0.05, [assessment.verdict(i) for i in np.flatnonzero(assessment.passed)]


def test_shipped_judge_passes_honest_digits(judge: Judge, mnist: Mnist) -> None:
    x, y = mnist.x_test[:400], mnist.y_test[:400].astype(np.int64)
    assert judge.assess(x, y).passed.mean() >= 0.90
    styled = to_uint8(restyle(to_unit(x), CANVAS_STYLE, np.random.default_rng(4)))
    assert judge.assess(styled, y).passed.mean() >= 0.85


def test_verdicts_give_a_reason(judge: Judge, mnist: Mnist) -> None:
    seven = mnist.x_test[0]  # a 7
    assert mnist.y_test[0] == 7
    honest = judge.verdict(seven, 7)
    assert honest.passed and honest.reason is None and honest.top_digit == 7 and honest.p_claimed >= 0.5
    wrong = judge.verdict(seven, 3)
    assert wrong.reason == "judge_disagrees" and wrong.top_digit == 7 and wrong.p_claimed < 0.5
    blank = judge.verdict(np.zeros(784, dtype=np.uint8), 5)
    assert blank.reason == "out_of_distribution" and blank.ood >= 1
    assert set(honest.to_json()) == {"claimed", "p_claimed", "top_digit", "p_top", "ood", "reason"}


def test_an_empty_batch_gives_empty_answers(judge: Judge) -> None:
    assessment = judge.assess(np.zeros((0, 784), dtype=np.uint8), 3)
    assert assessment.probabilities.shape == (0, 11) and assessment.passed.shape == (0,)


def test_thicker_strokes_stay_in_distribution(judge: Judge, mnist: Mnist) -> None:
    thick = to_uint8(dilate(to_unit(mnist.x_test[:200])))
    assert (judge.assess(thick, mnist.y_test[:200].astype(np.int64)).ood < 1).mean() >= 0.9


@pytest.mark.parametrize("pixels, claimed, match", [(np.zeros(783), 1, "784 pixels"), (np.full(784, 256), 1, "0..255"),
                                                    (np.zeros(784), 10, "0..9")])
def test_bad_input_is_a_clear_error(judge: Judge, pixels: np.ndarray, claimed: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        judge.verdict(pixels, claimed)


def test_tampered_judge_is_refused(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_JUDGE, tmp_path / "weights")
    with np.load(tmp_path / "weights" / WEIGHTS_FILE) as npz:
        arrays = dict(npz)
    arrays["out_bias"] = arrays["out_bias"].copy()
    arrays["out_bias"][7] += np.float16(1)
    np.savez_compressed(tmp_path / "weights" / WEIGHTS_FILE, **arrays)
    with pytest.raises(ArtifactError, match="altered"):
        load_judge(tmp_path / "weights")

    shutil.copytree(DEFAULT_JUDGE, tmp_path / "thresholds")
    meta = json.loads((tmp_path / "thresholds" / METADATA_FILE).read_text())
    meta["thresholds"]["min_probability"] = 0.0
    (tmp_path / "thresholds" / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="altered"):
        load_judge(tmp_path / "thresholds")


def test_missing_judge_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a judge artifact"):
        load_judge(tmp_path)


@pytest.mark.subprocess
def test_cli_eval_on_a_sample_and_a_missing_judge(tmp_path: Path) -> None:
    done = bounty("judge", "eval", "--images", "300", "--attacks", "10", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["attacks"]) == set(KINDS) and report["attacks_total"] == 60
    assert report["honest_mnist_test"]["images"] == 300 and report["ms_per_image_single"] > 0
    missing = bounty("judge", "eval", "--judge", str(tmp_path), "--json")
    assert missing.returncode == 1 and "not a judge artifact" in json.loads(missing.stdout)["error"]
    assert "Traceback" not in missing.stderr
