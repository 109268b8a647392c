"""Benchmark: classifier scripts and bounty submissions for one or more model artifacts.

    python bench/contract.py [ARTIFACT_DIR ...] [--images N] [--out bench/results/contract.json]

For each artifact (default: the shipped one): nonzero weights, classifier and bounty locking-script
bytes, on-chain accuracy and agreement with the reference over N MNIST test images run through
bsv-sdk's interpreter, interpreter ms per image, and the submission transaction's bytes, fee at
100 sat/kB and validation time from raw bytes (median, and the first, which parses the new
contract). Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from contracts.classifier import as_classifier
from contracts.example import bench
from contracts.interpreter import verify_images
from model.artifact import DEFAULT_ARTIFACT, load_artifact
from model.data import Mnist, load_mnist
from model.evaluate import evaluate


def measure(directory: Path, images: int, data: Mnist) -> dict[str, object]:
    artifact = load_artifact(directory)
    classifier = as_classifier(artifact.integer)  # compiled once: the verification and the bounty reuse it
    verified = verify_images(classifier, data.x_test[:images], data.y_test[:images])
    submissions = bench(artifact.integer, data.x_test, data.y_test, submissions=5)
    figures = evaluate(artifact, data)
    return {
        "artifact": str(directory),
        "density": round(figures["nonzero_layer1_weights"] / artifact.integer.w1.size, 3),
        "nonzero_weights": artifact.integer.nonzero_weights,
        "val_int_accuracy": artifact.metrics.get("val_int_accuracy"),
        "test_int_accuracy": figures["int_accuracy"],
        "classifier_bytes": classifier.locking_script_bytes,
        "script_images": images,
        "script_agree": verified["agree"],
        "script_accuracy": verified["script_accuracy"],
        "classifier_ms_per_image": round(verified["ms_per_image"], 1),
        **{k: submissions[k] for k in ("locking_script_bytes", "submission_tx_bytes", "fee_sats_per_submission",
                                       "validate_ms_per_submission", "validate_ms_first_submission")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="*", type=Path, default=[DEFAULT_ARTIFACT])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/contract.json"))
    args = parser.parse_args()
    data = load_mnist()
    rows = [measure(d, args.images, data) for d in args.artifacts]
    columns = ["density", "nonzero_weights", "val_int_accuracy", "test_int_accuracy", "classifier_bytes",
               "script_agree", "script_accuracy", "classifier_ms_per_image", "locking_script_bytes",
               "submission_tx_bytes", "fee_sats_per_submission", "validate_ms_per_submission",
               "validate_ms_first_submission"]
    print("| " + " | ".join(["artifact", *columns]) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in ["artifact", *columns]) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": __import__("os").cpu_count()}
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
