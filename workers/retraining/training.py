"""The training step of a run: candidates trained and one chosen in a child process; where the challenger goes.

TensorFlow (about 1 GB once imported) is loaded only by the child, ``python -m workers.retraining DIR``
(`main`), started for each run and gone when it ends. So the process that runs the retraining task never holds
TensorFlow: in the embedded mode that process is the API's own (`bounty serve`), and a production worker
gives the memory back after every run too (one way for both modes; a run trains for minutes, starting the
child costs seconds). Data goes both ways as files in DIR: MNIST and the accepted images in ``inputs.npz``,
the recipes and the champion's path in ``request.json``; the challenger comes back as the artifact
directory ``challenger/``, how it was chosen as ``selection.json``. The child exits if its parent dies
(its stdin, a pipe from the parent, closes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketplace.settings import Settings
from model.artifact import ModelArtifact, load_artifact
from model.config import TrainConfig
from model.data import Mnist
from model.errors import ArtifactError
from model.reference import IntegerModel, classify
from workers.errors import RetrainError
from workers.retraining.recipe import Recipe, Validation, choose, stuck
from workers.retraining.snapshot import Snapshot

MODULE = "workers.retraining"  # its __main__ runs `main`
REQUEST, INPUTS, OUTPUT, SELECTION, LOG = "request.json", "inputs.npz", "challenger", "selection.json", "training.log"
ERROR_TAIL = 2_000  # characters of the child's output kept in the error of a failed step
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the child runs the same code as its parent


@dataclass(frozen=True)
class Trained:
    """The challenger and how it was chosen: every candidate's validation figures, the champion's, the
    chosen recipe, whether fine-tuning was stuck (a scratch candidate joined) and whether it was refitted."""

    challenger: ModelArtifact
    recipe: Recipe
    selection: dict[str, Any]


def train_challenger(data: Mnist, snapshot: Snapshot, recipes: list[Recipe], champion: Path | str,
                     settings: Settings) -> Trained:
    """Train each recipe on MNIST plus the snapshot's trained images, choose on validation
    (`workers.recipe.choose`), train the chosen one again on all the bought images; in a child process.
    Raises RetrainError when the child fails."""
    with tempfile.TemporaryDirectory(prefix="bounty-train-") as tmp:
        work = Path(tmp)
        np.savez(work / INPUTS, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test,
                 images=snapshot.images, labels=snapshot.labels,
                 validation_images=snapshot.validation_images, validation_labels=snapshot.validation_labels)
        (work / REQUEST).write_text(json.dumps({
            "recipes": [r.to_json() for r in recipes], "champion": str(champion), "mnist_source": data.source,
            "mnist_drop": settings.retrain_tolerance,
            "scratch_when_stuck": settings.retrain_scratch_when_stuck and not settings.retrain_fast}))
        _run_child(work)
        try:
            challenger = load_artifact(work / OUTPUT)
            selection = json.loads((work / SELECTION).read_text())
        except (ArtifactError, OSError, ValueError) as exc:
            raise RetrainError(f"the training process left no usable challenger: {exc}") from exc
        return Trained(challenger, Recipe.from_json(selection["chosen"]), selection)


def _run_child(work: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(work / LOG, "wb") as output:
        child = subprocess.Popen([sys.executable, "-m", MODULE, str(work)], stdin=subprocess.PIPE, stdout=output,
                                 stderr=subprocess.STDOUT, env=env)
        try:
            code = child.wait()
        finally:
            if child.poll() is None:  # interrupted while waiting: the child must not train on alone
                child.kill()
                child.wait()
            if child.stdin is not None:
                child.stdin.close()
    if code != 0:
        tail = (work / LOG).read_text(errors="replace")[-ERROR_TAIL:].strip()
        last = tail.splitlines()[-1] if tail else "no output"
        raise RetrainError(f"the training process exited with status {code}: {last}")


def save_challenger(challenger: ModelArtifact, home: Path) -> Path:
    """Save under ``{home}/models/{sha[:12]}/``; an identical artifact already there is kept as it is
    (a deployed contract may be reading it)."""
    path = home / "models" / challenger.weights_sha256[:12]
    try:
        if load_artifact(path).weights_sha256 == challenger.weights_sha256:
            return path.resolve()
    except ArtifactError:
        pass  # absent or half-written: write it
    return challenger.save(path).resolve()


# -- the child ----------------------------------------------------------------------------------------------

def _exit_with_parent() -> None:
    """End this process when the parent's end of stdin closes: the parent died (or gave up on us)."""
    def watch() -> None:
        while os.read(0, 4096):  # the raw descriptor: no buffer lock held at interpreter shutdown
            pass
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(work: Path) -> None:
    """Train as `request.json` says on `inputs.npz`; leave the artifact in `challenger/` and the choice in
    `selection.json`."""
    _exit_with_parent()
    request = json.loads((work / REQUEST).read_text())
    with np.load(work / INPUTS, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    data = Mnist(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], request["mnist_source"])
    images, labels = arrays["images"], arrays["labels"]
    held, held_labels = arrays["validation_images"], arrays["validation_labels"]
    champion = load_artifact(request["champion"])

    from model.train import prepare, train  # TensorFlow: only ever in this process

    mnist = prepare(data, TrainConfig())  # the same 5,000 validation images for every recipe

    def validate(model: IntegerModel) -> Validation:
        crowd = float(np.mean(classify(model, held)[0] == held_labels)) if len(held_labels) else None
        return Validation(float(np.mean(classify(model, mnist.x_val)[0] == mnist.y_val)), crowd)

    def fit(recipe: Recipe, x: np.ndarray, y: np.ndarray) -> ModelArtifact:
        x, y = np.repeat(x, recipe.weight, axis=0), np.repeat(y, recipe.weight)
        base = None if recipe.scratch else champion.float_weights
        config = recipe.config(champion.integer.hidden_size, champion.float_weights.density)
        return train(data, config, x if len(x) else None, y if len(y) else None, base=base,
                     quiet=True).artifact

    before = validate(champion.integer)
    recipes = [Recipe.from_json(r) for r in request["recipes"]]
    may_scratch = request["scratch_when_stuck"] and not any(r.scratch for r in recipes) and len(held_labels) > 0
    every_x, every_y = np.concatenate([images, held]), np.concatenate([labels, held_labels])
    if len(recipes) == 1 and not may_scratch:  # nothing to choose: train on every bought image at once
        recipe, tried, scores, was_stuck, refit = recipes[0], [], [], False, False
        challenger = fit(recipe, every_x, every_y)
    else:
        tried = [(recipe, fit(recipe, images, labels)) for recipe in recipes]
        scores = [validate(artifact.integer) for _, artifact in tried]
        chosen = choose(before, scores, request["mnist_drop"])
        was_stuck = may_scratch and stuck(before, scores[chosen])
        if was_stuck:
            fresh = Recipe(tried[chosen][0].weight, 0, scratch=True, fast=tried[chosen][0].fast)
            tried.append((fresh, fit(fresh, images, labels)))
            scores.append(validate(tried[-1][1].integer))
            chosen = choose(before, scores, request["mnist_drop"])
        recipe, challenger = tried[chosen]
        refit = len(held_labels) > 0  # the validation slice has done its job: the final model learns from it too
        if refit:
            challenger = fit(recipe, every_x, every_y)
    challenger.save(work / OUTPUT)
    (work / SELECTION).write_text(json.dumps({
        "champion": before.to_json(), "chosen": recipe.to_json(), "stuck": was_stuck, "refit": refit,
        "validation": {"mnist_images": len(mnist.y_val), "crowd_images": len(held_labels)},
        "candidates": [{**r.to_json(), **v.to_json()} for (r, _), v in zip(tried, scores, strict=True)]}))


__all__ = ["Trained", "main", "save_challenger", "train_challenger"]
