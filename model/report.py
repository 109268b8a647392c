"""PNG plots for a training run: curves across all stages and a confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model.reference import IntegerModel, classify  # noqa: E402


@dataclass
class History:
    """Per-epoch curves across all stages, for the report."""

    stage: list[str] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def add(self, stage: str, fit: Any) -> None:
        h = fit.history
        self.stage += [stage] * len(h["loss"])
        self.loss += [float(v) for v in h["loss"]]
        self.accuracy += [float(v) for v in h["accuracy"]]
        self.val_accuracy += [float(v) for v in h["val_accuracy"]]


def curves_png(history: History, path: Path, network: str) -> Path:
    epochs = np.arange(1, len(history.loss) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, history.loss, label="training loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, history.accuracy, label="training accuracy")
    right.plot(epochs, history.val_accuracy, label="validation accuracy")
    right.set_ylim(0.9, 1.0)
    right.set_xlabel("epoch")
    right.legend(loc="lower right")
    for i, stage in enumerate(history.stage):
        if i == 0 or history.stage[i - 1] != stage:
            for ax in (left, right):
                ax.axvline(i + 0.5, color="grey", lw=0.5)
            right.annotate(stage, (i + 1, 0.905), fontsize=7, rotation=90)
    fig.suptitle(f"{network} training: dense, layer-1 pruning stages, quantisation-aware tuning")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion(model: IntegerModel, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts (10, 10): row = true digit, column = the integer model's answer."""
    predicted, _ = classify(model, images)
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted), 1)
    return matrix


def confusion_png(model: IntegerModel, images: np.ndarray, labels: np.ndarray, path: Path,
                  title: str = "integer model, validation split") -> Path:
    matrix = confusion(model, images, labels)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (r, c), n in np.ndenumerate(matrix):
        ax.text(c, r, str(n), ha="center", va="center", fontsize=7, color="white" if r == c else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: {np.trace(matrix) / matrix.sum():.2%}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
