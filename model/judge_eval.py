"""Final figures for a judge, on MNIST's 10,000 test images (never used to choose anything):

- honest: the share of test digits passed for their true digit, per digit; the same for an "unlike MNIST" set
  (the test digits thickened, blurred and slanted, model.augment.CANVAS_STYLE);
- attack transfer: attacks crafted from test digits against the public integer classifier (each paid by it),
  and garbage it pays; how many the judge lets through, per kind;
- speed: milliseconds per image, one image at a time and in a batch, on this process's cores.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from model.adversary import ADVERSARIAL, KINDS, craft
from model.artifact import ModelArtifact
from model.augment import CANVAS_STYLE, restyle, to_uint8, to_unit
from model.data import Mnist
from model.judge import Judge

EVAL_SEED = 20261201  # fixed: the unlike-MNIST set and the attacks are the same on every run


def _per_digit(passed: np.ndarray, labels: np.ndarray) -> list[float]:
    return [round(float(passed[labels == d].mean()), 4) for d in range(10)]


def honest(judge: Judge, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    assessment = judge.assess(images, labels)
    reasons = [r for r in assessment.reason if r is not None]
    return {"images": int(len(labels)), "pass_rate": round(float(assessment.passed.mean()), 4),
            "pass_rate_per_digit": _per_digit(assessment.passed, labels),
            "judge_accuracy": round(float(np.mean(np.argmax(assessment.probabilities[:, :10], 1) == labels)), 4),
            "refused_as": {r: reasons.count(r) for r in sorted(set(reasons))}}


def attack_transfer(judge: Judge, classifier: ModelArtifact, images: np.ndarray, labels: np.ndarray,
                    per_kind: int, margin: int = 0, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Attacks crafted from `images` (test digits with their `labels`) and garbage, each paid by the classifier
    at the given margin."""
    out: dict[str, Any] = {}
    for i, kind in enumerate(KINDS):
        attacks = craft(kind, classifier, per_kind, seed + i, margin, images, labels)
        assessment = judge.assess(attacks.images, attacks.claimed)
        reasons = [r for r in assessment.reason if r is not None]
        top = np.argmax(assessment.probabilities[:, :10], axis=1)
        entry: dict[str, Any] = {"attacks": len(attacks), "passed": int(assessment.passed.sum()),
                                 "refused_as": {r: reasons.count(r) for r in sorted(set(reasons))}}
        if kind in ADVERSARIAL and len(attacks):
            entry["judge_reads_source_digit"] = round(float(np.mean(top == attacks.source)), 4)
            entry["median_change"] = float(np.median(attacks.changed))
        out[kind] = entry
    return out


def speed(judge: Judge, images: np.ndarray, single: int = 200) -> dict[str, float]:
    x = images.reshape(-1, 784)
    started = time.perf_counter()
    for i in range(single):
        judge.verdict(x[i % len(x)], 0)
    one = (time.perf_counter() - started) / single
    started = time.perf_counter()
    judge.assess(x[:2000], 0)
    batch = (time.perf_counter() - started) / min(len(x), 2000)
    return {"ms_per_image_single": round(one * 1000, 3), "ms_per_image_batch": round(batch * 1000, 3)}


def evaluate(judge: Judge, classifier: ModelArtifact, data: Mnist, attacks_per_kind: int = 200,
             images: int = 10000, margin: int = 0) -> dict[str, Any]:
    """Every figure, on the first `images` test images (all 10,000 by default) and `attacks_per_kind` attacks
    that a bounty with the given minimum margin pays."""
    x, y = data.x_test[:images], data.y_test[:images].astype(np.int64)
    styled = to_uint8(restyle(to_unit(x), CANVAS_STYLE, np.random.default_rng(EVAL_SEED)))
    transfer = attack_transfer(judge, classifier, x, y, attacks_per_kind, margin)
    return {
        "judge_weights_sha256": judge.weights_sha256,
        "judge_policy_sha256": judge.policy_sha256,
        "parameters": judge.parameters,
        "thresholds": judge.metadata()["thresholds"],
        "honest_mnist_test": honest(judge, x, y),
        "honest_unlike_mnist": honest(judge, styled, y),
        "attack_margin": margin,
        "attacks": transfer,
        "attacks_total": sum(v["attacks"] for v in transfer.values()),
        "attacks_passed": sum(v["passed"] for v in transfer.values()),
        **speed(judge, x),
        "classifier_weights_sha256": classifier.weights_sha256,
    }
