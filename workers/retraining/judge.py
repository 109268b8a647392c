"""Champion against challenger: which model judges the bounties now, and whether a new one may replace it.

Every figure is measured on the integer models the contracts run, never on the float networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from contracts.errors import ScriptError
from contracts.interpreter import verify_images
from marketplace.runtime import Runtime
from marketplace.schema import Bounty, BountyStatus, Deployment, DeploymentStatus, ModelVersion
from marketplace.settings import Settings
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import IntegerModel, classify
from workers.retraining.snapshot import Snapshot

FLOAT_SLACK = 1e-9  # accuracies are ratios of integers: this absorbs float rounding, nothing more


@dataclass(frozen=True)
class Champion:
    """The model the bounties are judged by now (its `models` row), and the version its successor takes."""

    model_id: int
    version: int
    weights_sha256: str
    artifact_path: str
    next_version: int  # computed once, under the run's lease: the challenger's artifact and row both take it


def find_champion(rt: Runtime) -> Champion:
    """The model of the active bounties' live contracts (the newest if they differ), or the configured
    artifact when no bounty is active."""
    with rt.session() as session:
        model = session.scalar(
            select(ModelVersion).join(Deployment, Deployment.model_id == ModelVersion.id)
            .join(Bounty, Bounty.id == Deployment.bounty_id)
            .where(Deployment.status == DeploymentStatus.ACTIVE, Bounty.status == BountyStatus.ACTIVE)
            .order_by(ModelVersion.version.desc()).limit(1))
        if model is None:
            model = rt.register_model(session)
        newest = session.scalar(select(func.max(ModelVersion.version))) or 0  # at least the champion's
        return Champion(model.id, model.version, model.weights_sha256, model.artifact_path, next_version=newest + 1)


@dataclass(frozen=True)
class Scores:
    """Integer-model accuracy overall and per digit (None where there were no images)."""

    images: int
    accuracy: float | None
    per_digit: tuple[float | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"images": self.images, "accuracy": self.accuracy, "per_digit": list(self.per_digit)}


def scores(model: IntegerModel, images: np.ndarray, labels: np.ndarray) -> Scores:
    y = np.asarray(labels, dtype=np.int64)
    predicted = classify(model, images)[0] if len(y) else np.zeros(0, np.int64)
    per_digit = tuple(float(np.mean(predicted[y == d] == d)) if np.any(y == d) else None for d in range(10))
    return Scores(int(len(y)), float(np.mean(predicted == y)) if len(y) else None, per_digit)


@dataclass(frozen=True)
class Comparison:
    """Both models on one set of images."""

    champion: Scores
    challenger: Scores

    def to_json(self) -> dict[str, Any]:
        return {"champion": self.champion.to_json(), "challenger": self.challenger.to_json()}


@dataclass(frozen=True)
class ScriptAgreement:
    """The challenger's script run by the interpreter against its reference."""

    images: int
    agree: int
    locking_script_bytes: int


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class JudgeVerdict:
    """Each check's outcome and the figures behind it; the challenger may replace the champion only when
    every check passed."""

    checks: tuple[Check, ...]
    test: Comparison
    holdout: Comparison | None  # None: too few held-out accepted images to judge on
    script: ScriptAgreement | None  # None: the script could not be built or run

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def figures(self) -> dict[str, Any]:
        """The figures as recorded in the run and in the challenger's artifact: the headline accuracies
        (what `bounty retrain` and `bounty models` show) and the full comparisons."""
        return {"mnist_test_accuracy": self.test.challenger.accuracy,
                "mnist_test_accuracy_before": self.test.champion.accuracy,
                "crowd_holdout_accuracy_before": self.holdout.champion.accuracy if self.holdout else None,
                "crowd_holdout_accuracy_after": self.holdout.challenger.accuracy if self.holdout else None,
                "crowd_holdout_images": self.holdout.champion.images if self.holdout else None,
                "test": self.test.to_json(), "holdout": self.holdout.to_json() if self.holdout else None,
                "script": vars(self.script).copy() if self.script else None}

    def checks_json(self) -> list[dict[str, Any]]:
        return [vars(check).copy() for check in self.checks]


def judge(champion: ModelArtifact, challenger: ModelArtifact, data: Mnist, snapshot: Snapshot,
          settings: Settings) -> JudgeVerdict:
    """The gate: may the challenger replace the champion? On the integer models the contracts run,

    - **held-out crowd**: on the lineage's held-out vetted images (the same images for both, labelled with
      the vetted digit), at least the champion's accuracy plus ``retrain_min_holdout_gain``. With fewer
      than ``retrain_min_holdout`` images the check is skipped and says so;
    - **MNIST test**: at least the champion's accuracy less ``retrain_tolerance``;
    - **each MNIST digit**: at least the champion's less ``retrain_class_tolerance``, looser than overall
      because about 1,000 images per digit are noisy, and tuning to new handwriting moves single digits;
    - its script agrees with its reference (label and margin) on the first ``retrain_verify_images`` test images.
    """
    test = Comparison(*(scores(m.integer, data.x_test, data.y_test) for m in (champion, challenger)))
    holdout, holdout_check = _judge_holdout(champion, challenger, snapshot, settings)
    checks = [holdout_check, _judge_mnist(test, settings.retrain_tolerance),
              _judge_digits(test, settings.retrain_class_tolerance)]
    script, check = _judge_script(challenger, data, settings.retrain_verify_images)
    checks.append(check)
    return JudgeVerdict(tuple(checks), test, holdout, script)


def _no_worse(new: float, old: float, tolerance: float) -> bool:
    return new + FLOAT_SLACK >= old - tolerance


def _judge_holdout(champion: ModelArtifact, challenger: ModelArtifact, snapshot: Snapshot,
                   settings: Settings) -> tuple[Comparison | None, Check]:
    name, count, gain = "held-out crowd accuracy", len(snapshot.holdout_labels), settings.retrain_min_holdout_gain
    if count < settings.retrain_min_holdout:
        return None, Check(name, True, f"skipped: {count} held-out crowd images, fewer than "
                                       f"{settings.retrain_min_holdout}")
    holdout = Comparison(*(scores(m.integer, snapshot.holdout_images, snapshot.holdout_labels)
                           for m in (champion, challenger)))
    old, new = holdout.champion.accuracy, holdout.challenger.accuracy
    assert old is not None and new is not None
    return holdout, Check(name, new + FLOAT_SLACK >= old + gain,
                          f"{new:.4f} against the champion's {old:.4f} on {count} held-out crowd images "
                          f"(a gain of {new - old:+.4f}; at least {gain} needed)")


def _judge_mnist(test: Comparison, tolerance: float) -> Check:
    old, new = test.champion.accuracy, test.challenger.accuracy
    assert old is not None and new is not None  # the MNIST test split is never empty
    return Check("MNIST test accuracy", _no_worse(new, old, tolerance),
                 f"{new:.4f} against the champion's {old:.4f} (may drop {tolerance})")


def _judge_digits(test: Comparison, tolerance: float) -> Check:
    pairs = enumerate(zip(test.challenger.per_digit, test.champion.per_digit, strict=True))
    worse = [f"{d}: {n:.4f} < {o:.4f}" for d, (n, o) in pairs
             if n is not None and o is not None and not _no_worse(n, o, tolerance)]
    return Check("per-digit MNIST test accuracy", not worse,
                 f"digits below the champion's (tolerance {tolerance}): {', '.join(worse)}" if worse
                 else f"every digit within {tolerance} of the champion's")


def _judge_script(challenger: ModelArtifact, data: Mnist, k: int) -> tuple[ScriptAgreement | None, Check]:
    name = "script agrees with reference"
    try:
        result = verify_images(challenger.integer, data.x_test[:k], data.y_test[:k])
    except ScriptError as exc:  # a script that cannot be built or run is a challenger that cannot judge
        return None, Check(name, False, str(exc))
    agreement = ScriptAgreement(int(result["images"]), int(result["agree"]), int(result["locking_script_bytes"]))
    return agreement, Check(name, agreement.agree == k,
                            f"{agreement.agree} of {k} test images give the reference's label and margin")


__all__ = ["Champion", "Check", "Comparison", "JudgeVerdict", "ScriptAgreement", "Scores", "find_champion", "judge",
           "scores"]
