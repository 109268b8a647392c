"""Final figures for an artifact on the 10,000 MNIST test images (never used to choose anything)."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify


def evaluate(artifact: ModelArtifact, data: Mnist) -> dict[str, Any]:
    x, y = data.x_test.reshape(-1, 784), data.y_test.astype(np.int64)
    float_pred = artifact.float_weights.predict(x)
    int_pred, margin = classify(artifact.integer, x)
    per_class = [float(np.mean(int_pred[y == d] == d)) for d in range(10)]
    return {
        "test_images": int(len(y)),
        "float_accuracy": float(np.mean(float_pred == y)),
        "int_accuracy": float(np.mean(int_pred == y)),
        "agreement": float(np.mean(float_pred == int_pred)),
        "int_accuracy_per_digit": [round(a, 4) for a in per_class],
        "median_margin": int(np.median(margin)),
        "weights_sha256": artifact.weights_sha256,
        "nonzero_weights": artifact.integer.nonzero_weights,
        "nonzero_layer1_weights": int(np.count_nonzero(artifact.integer.w1)),
        "version": artifact.version,
        "training": {k: v for k, v in artifact.metrics.items() if k.startswith("val")},
        "dataset": data.source.split(":", 1)[0],
    }
