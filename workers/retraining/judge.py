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
        """The figures as recorded in the run and in the challenger's artifact."""
        return {"test": self.test.to_json(), "holdout": self.holdout.to_json() if self.holdout else None,
                "script": vars(self.script).copy() if self.script else None}

    def checks_json(self) -> list[dict[str, Any]]:
        return [vars(check).copy() for check in self.checks]


def judge(champion: ModelArtifact, challenger: ModelArtifact, data: Mnist, snapshot: Snapshot,
          settings: Settings) -> JudgeVerdict:
    """Champion against challenger. The challenger passes when, on the integer models the contracts run,

    - its accuracy on the 10,000 MNIST test images is at least the champion's less ``retrain_tolerance``;
    - its accuracy on each digit's test images is at least the champion's less ``retrain_class_tolerance``
      (about 1,000 images per digit: a looser bound than overall, or noise alone would reject);
    - on the held-out accepted images, if there are at least ``retrain_min_holdout``, its accuracy is at least
      the champion's less ``retrain_class_tolerance`` (a slice of that size is noisy like one digit's);
      with fewer the check is skipped and says so;
    - its script agrees with its reference (label and margin) on the first ``retrain_verify_images`` test images.

    A tolerance of 0 demands "no worse"; 1 accepts anything that passes the script check.
    """
    test = Comparison(*(scores(m.integer, data.x_test, data.y_test) for m in (champion, challenger)))
    old, new = test.champion, test.challenger
    tolerance, class_tolerance = settings.retrain_tolerance, settings.retrain_class_tolerance
    assert old.accuracy is not None and new.accuracy is not None  # the MNIST test split is never empty
    checks = [Check("test accuracy", _no_worse(new.accuracy, old.accuracy, tolerance),
                    f"{new.accuracy:.4f} against the champion's {old.accuracy:.4f} (tolerance {tolerance})")]
    worse = [f"{d}: {n:.4f} < {o:.4f}" for d, (n, o) in enumerate(zip(new.per_digit, old.per_digit, strict=True))
             if n is not None and o is not None and not _no_worse(n, o, class_tolerance)]
    checks.append(Check("per-digit test accuracy", not worse,
                        f"digits below the champion's (tolerance {class_tolerance}): {', '.join(worse)}" if worse
                        else f"every digit within {class_tolerance} of the champion's"))
    holdout, check = _judge_holdout(champion, challenger, snapshot, settings)
    checks.append(check)
    script, check = _judge_script(challenger, data, settings.retrain_verify_images)
    checks.append(check)
    return JudgeVerdict(tuple(checks), test, holdout, script)


def _no_worse(new: float, old: float, tolerance: float) -> bool:
    return new + FLOAT_SLACK >= old - tolerance


def _judge_holdout(champion: ModelArtifact, challenger: ModelArtifact, snapshot: Snapshot,
                   settings: Settings) -> tuple[Comparison | None, Check]:
    count, tolerance = len(snapshot.holdout_labels), settings.retrain_class_tolerance
    if count < settings.retrain_min_holdout:
        return None, Check("holdout accuracy", True,
                           f"skipped: {count} held-out accepted images, fewer than {settings.retrain_min_holdout}")
    holdout = Comparison(*(scores(m.integer, snapshot.holdout_images, snapshot.holdout_labels)
                           for m in (champion, challenger)))
    old, new = holdout.champion.accuracy, holdout.challenger.accuracy
    assert old is not None and new is not None  # count >= retrain_min_holdout >= 1
    return holdout, Check("holdout accuracy", _no_worse(new, old, tolerance),
                          f"{new:.4f} against the champion's {old:.4f} on {count} held-out accepted images "
                          f"(tolerance {tolerance})")


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
