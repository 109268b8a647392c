"""MNIST and a model's reading of the MNIST test set, computed once per process.

Loading MNIST takes about 3 s and reading its 10,000 test images through the integer model about 1 s; many
test modules need both. Each is computed once per process and handed out read-only (numpy refuses a write),
so no test can change what another sees. Under `make mutants`, mutmut runs the tests once in its own process
and forks one child per mutant: the children inherit these values instead of recomputing them (neither
depends on a mutated module: `model/` is not mutated).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from model.data import Mnist, load_mnist
from model.reference import IntegerModel, classify, logits


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@cache
def mnist() -> Mnist:
    data = load_mnist()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        _frozen(array)
    return data


@dataclass(frozen=True)
class Reading:
    """What a model makes of the MNIST test set: the images (10000, 784), and the labels and margins as the
    script computes them (`model.reference.classify`)."""

    x: np.ndarray
    labels: np.ndarray
    margins: np.ndarray


_readings: dict[str, Reading] = {}
_rankings: dict[str, np.ndarray] = {}


def reading_of_test_set(model: IntegerModel) -> Reading:
    """The model's reading of the MNIST test set (once per process and model: keyed by the weights' hash)."""
    key = model.sha256()
    if key not in _readings:
        x = mnist().x_test.reshape(-1, 784)
        labels, margins = classify(model, x)
        _readings[key] = Reading(x=x, labels=_frozen(labels), margins=_frozen(margins))
    return _readings[key]


def ranking_of_test_set(model: IntegerModel) -> np.ndarray:
    """(10000, 10): each test image's classes by logit, highest first (ties: the lower class first, as on
    chain)."""
    key = model.sha256()
    if key not in _rankings:
        z = logits(model, mnist().x_test.reshape(-1, 784))
        _rankings[key] = _frozen(np.argsort(-z, axis=1, kind="stable"))
    return _rankings[key]
