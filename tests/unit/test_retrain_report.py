"""The figures `bounty retrain` reports, read from a run's metrics JSON in either layout it has had: headline
figures at the top level, or (runs recorded earlier) under "test" and "holdout"; None where a run has none."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.retrain_report import figures, gate_reasons, images

TOP_LEVEL = {"mnist_test_accuracy": 0.9807, "mnist_test_accuracy_before": 0.9816,
             "crowd_holdout_accuracy_before": 0.886, "crowd_holdout_accuracy_after": 0.917,
             "crowd_holdout_images": 400, "images": {"trained": 800, "held_out": 400, "weight": 10, "epochs": 3},
             "checks": [{"name": "crowd held-out accuracy", "passed": True, "detail": "0.9170 against 0.8860"},
                        {"name": "MNIST test accuracy", "passed": False, "detail": "0.9700 against 0.9816"}]}
NESTED = {"test": {"champion": {"images": 10000, "accuracy": 0.9816},
                   "challenger": {"images": 10000, "accuracy": 0.98}},
          "holdout": {"champion": {"images": 12, "accuracy": 1.0}, "challenger": {"images": 12, "accuracy": 0.9167}},
          "data_snapshot": {"accepted_images": 48, "holdout_images": 12, "accepted_weight": 1,
                            "left_out": {"duplicates": 0}},
          "config": {"epochs": 0, "qat_epochs": 3}}


@pytest.mark.parametrize(("metrics", "expected"), [
    (TOP_LEVEL, {"mnist_test_accuracy": 0.9807, "mnist_test_accuracy_before": 0.9816,
                 "crowd_holdout_accuracy_before": 0.886, "crowd_holdout_accuracy_after": 0.917,
                 "crowd_holdout_images": 400}),
    (NESTED, {"mnist_test_accuracy": 0.98, "mnist_test_accuracy_before": 0.9816,
              "crowd_holdout_accuracy_before": 1.0, "crowd_holdout_accuracy_after": 0.9167,
              "crowd_holdout_images": 12}),
    ({**NESTED, "holdout": None}, {"mnist_test_accuracy": 0.98, "mnist_test_accuracy_before": 0.9816,
                                   "crowd_holdout_accuracy_before": None, "crowd_holdout_accuracy_after": None,
                                   "crowd_holdout_images": None}),  # too few held-out images to judge on
    ({}, dict.fromkeys(("mnist_test_accuracy", "mnist_test_accuracy_before", "crowd_holdout_accuracy_before",
                        "crowd_holdout_accuracy_after", "crowd_holdout_images"))),  # failed before judging
])
def test_headline_figures_come_from_either_layout(metrics: dict[str, Any], expected: dict[str, Any]) -> None:
    assert figures(metrics) == expected


def test_images_used_are_the_runs_own_record_or_its_data_snapshot() -> None:
    assert images(TOP_LEVEL) == TOP_LEVEL["images"]
    assert images(NESTED) == {"trained": 48, "held_out": 12, "weight": 1, "epochs": 3, "left_out": {"duplicates": 0}}
    assert images({"config": {"qat_epochs": 3}}) is None, "a run that failed before its snapshot used none"


def test_reasons_are_the_failed_checks_else_the_runs_message() -> None:
    assert gate_reasons(TOP_LEVEL, "MNIST test accuracy: 0.9700 against 0.9816") == [
        "MNIST test accuracy: 0.9700 against 0.9816"]
    identical = "the challenger has the champion's weights: nothing to deploy"
    assert gate_reasons({}, identical) == [identical]
    assert gate_reasons({}, None) == []
