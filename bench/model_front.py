"""The accuracy-per-byte front of the classifier: a search over hidden width, layer-1 density and seeds.

    nice -n 10 python bench/model_front.py --widths 128 --densities 0.115,0.05 --seeds 1,2 \
        [--include model/seed] [--artifacts artifacts/front] [--out bench/results/model_front.json] \
        [--plot docs/model_front.png] [--tiny]

For each width and seed, one network is trained from scratch to the first (largest) density; every other
density continues from it (no dense training: pruned further in a few stages, then tuned), which takes a
fraction of the time. Each candidate is compiled into the classifier script and measured: its bytes, its
integer accuracy on the validation split (the 5,000 training images held out: what chooses) and on the
10,000 test images (reported, never used to choose). `--include` adds trained artifacts as they are.
Results go to a JSON file after every candidate, so an interrupted search resumes where it stopped (a
candidate already there is not trained again); the front is plotted as a PNG. The choice per byte budget
(32,768 and 65,536): the best validation accuracy within the budget, fewer bytes on a tie.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from contracts.classifier import compile_classifier  # noqa: E402
from model.artifact import ModelArtifact, load_artifact  # noqa: E402
from model.config import TINY, TrainConfig, continued, from_scratch  # noqa: E402
from model.data import Mnist, load_mnist  # noqa: E402
from model.evaluate import evaluate  # noqa: E402

BUDGETS = (32_768, 65_536)  # classifier bytes: the default's budget and the accurate artifact's


def measure(artifact: ModelArtifact, path: Path, data: Mnist, recipe: str, seconds: float | None) -> dict[str, Any]:
    """One candidate's row: its shape, its script's bytes, its validation and test accuracy."""
    classifier = compile_classifier(artifact.integer)
    return {
        "artifact": str(path), "weights_sha256": artifact.weights_sha256, "recipe": recipe,
        "hidden": artifact.integer.hidden_size, "seed": artifact.config.get("seed"),
        "layer1_density": round(artifact.float_weights.density, 4),
        "nonzero_weights": artifact.integer.nonzero_weights,
        "classifier_bytes": classifier.locking_script_bytes,
        "val_int_accuracy": artifact.metrics.get("val_int_accuracy"),
        "val_float_accuracy": artifact.metrics.get("val_float_accuracy"),
        "test_int_accuracy": evaluate(artifact, data)["int_accuracy"],
        "training_seconds": seconds,
    }


def choose(rows: list[dict[str, Any]], budget: int) -> dict[str, Any] | None:
    """The best row on validation within `budget` classifier bytes (fewer bytes on a tie)."""
    within = [r for r in rows if r["classifier_bytes"] <= budget and r["val_int_accuracy"] is not None]
    return max(within, key=lambda r: (r["val_int_accuracy"], -r["classifier_bytes"]), default=None)


def search(args: argparse.Namespace, data: Mnist, rows: list[dict[str, Any]], save: Any) -> None:
    from model.train import continue_training, train, write_report  # TensorFlow: only when something is trained

    done = {r["artifact"] for r in rows}
    base_config = TINY if args.tiny else TrainConfig()
    densities = sorted(args.densities, reverse=True)
    for hidden in args.widths:
        for seed in args.seeds:
            first: ModelArtifact | None = None
            for density in densities:
                name = f"h{hidden}-d{density:g}-s{seed}"
                path = args.artifacts / name
                if str(path) in done:
                    first = first or load_artifact(path)
                    continue
                if first is None:
                    config, recipe = from_scratch(base_config, hidden, density, args.stages), "scratch"
                else:
                    config = continued(base_config, hidden, first.float_weights.density, density, args.more_stages)
                    recipe = f"continued from h{hidden}-d{densities[0]:g}-s{seed}"
                config = replace(config, seed=seed)
                logging.info("training %s (%s): %s", name, recipe, config.densities)
                start = time.monotonic()
                trained = (train(data, config, quiet=True) if first is None
                           else continue_training(data, config, first, quiet=True))
                artifact = trained.artifact
                seconds = round(time.monotonic() - start, 1)
                artifact.save(path)
                write_report(trained, path / "report")
                first = first or artifact
                rows.append(measure(artifact, path, data, recipe, seconds))
                logging.info("%s: %d bytes, validation %.4f", name, rows[-1]["classifier_bytes"],
                             rows[-1]["val_int_accuracy"])
                save()


def plot(rows: list[dict[str, Any]], chosen: dict[str, Any], path: Path) -> None:
    """Validation and test accuracy against classifier bytes, one colour per width, the chosen ones ringed."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    widths = sorted({r["hidden"] for r in rows})
    for ax, key, title in zip(axes, ("val_int_accuracy", "test_int_accuracy"),
                              ("validation split (chooses)", "MNIST test set (reported only)"), strict=True):
        for width, colour in zip(widths, plt.get_cmap("tab10").colors, strict=False):
            mine = sorted((r for r in rows if r["hidden"] == width), key=lambda r: r["classifier_bytes"])
            ax.scatter([r["classifier_bytes"] / 1000 for r in mine], [100 * r[key] for r in mine],
                       color=colour, label=f"784-{width}-10", s=22)
        for label, row in chosen.items():
            if row is not None:
                ax.scatter(row["classifier_bytes"] / 1000, 100 * row[key], s=160, facecolors="none",
                           edgecolors="black")
                ax.annotate(label, (row["classifier_bytes"] / 1000, 100 * row[key]), textcoords="offset points",
                            xytext=(6, -12), fontsize=8)
        for budget in BUDGETS:
            ax.axvline(budget / 1000, color="grey", lw=0.7, ls="--")
        ax.set_xlabel("classifier script (KB)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("integer accuracy (%)")
    axes[0].legend(loc="lower right")
    fig.suptitle("accuracy against classifier bytes (dashed: the 32,768 and 65,536-byte budgets)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    numbers = lambda kind: lambda text: [kind(v) for v in text.split(",") if v]  # noqa: E731
    parser.add_argument("--widths", type=numbers(int), default=[128])
    parser.add_argument("--densities", type=numbers(float), default=[0.115, 0.05])
    parser.add_argument("--seeds", type=numbers(int), default=[1, 2])
    parser.add_argument("--stages", type=int, default=5, help="pruning stages from scratch")
    parser.add_argument("--more-stages", type=int, default=3, help="pruning stages when continuing")
    parser.add_argument("--include", type=Path, nargs="*", default=[], help="trained artifacts to measure as well")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/front"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/model_front.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/model_front.png"))
    parser.add_argument("--tiny", action="store_true", help="seconds-long trainings on a subset (a smoke run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.widths or not args.densities or not args.seeds or min(args.widths) < 1:
        parser.error("give at least one width (>= 1), one density and one seed")
    if not all(0 < d <= 1 for d in args.densities):
        parser.error("densities are shares of layer-1 weights kept, in (0, 1]")

    data = load_mnist()
    rows: list[dict[str, Any]] = json.loads(args.out.read_text())["candidates"] if args.out.exists() else []
    measured = {r["artifact"] for r in rows}
    for path in args.include:
        if str(path) not in measured:
            rows.append(measure(load_artifact(path), path, data, "included", None))

    def save() -> None:
        chosen = {f"best within {b:,} bytes": choose(rows, b) for b in BUDGETS}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"chosen_on": "validation split (5,000 training images held out)",
                                        "budgets": list(BUDGETS), "chosen": chosen, "candidates": rows},
                                       indent=2) + "\n")
        plot(rows, chosen, args.plot)

    save()
    search(args, data, rows, save)
    save()
    print(json.dumps({k: v and v["artifact"] for k, v in json.loads(args.out.read_text())["chosen"].items()}))


if __name__ == "__main__":
    sys.exit(main())
