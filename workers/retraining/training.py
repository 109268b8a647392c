"""The training step of a run: which recipe, the training itself in a child process, where the challenger goes.

TensorFlow (about 1 GB once imported) is loaded only by the child, ``python -m workers.retraining DIR``
(`main`), started for each run and gone when it ends. So the process that runs the retraining task never holds
TensorFlow: in the embedded mode that process is the API's own (`bounty serve`), and a production worker
gives the memory back after every run too (one way for both modes; a run trains for minutes, starting the
child costs seconds). Data goes both ways as files in DIR: MNIST and the accepted images in ``inputs.npz``,
the recipe and the base artifact's path in ``request.json``; the challenger comes back as the artifact
directory ``challenger/``. The child exits if its parent dies (its stdin, a pipe from the parent, closes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from marketplace.settings import Settings
from model.artifact import ModelArtifact, load_artifact
from model.config import FINETUNE, FINETUNE_FAST, TINY, TrainConfig
from model.data import Mnist
from model.errors import ArtifactError
from workers.errors import RetrainError

MODULE = "workers.retraining"  # its __main__ runs `main`
REQUEST, INPUTS, OUTPUT, LOG = "request.json", "inputs.npz", "challenger", "training.log"
ERROR_TAIL = 2_000  # characters of the child's output kept in the error of a failed step
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the child runs the same code as its parent


def choose_config(settings: Settings, config: TrainConfig | None) -> tuple[TrainConfig, str]:
    """The training config and where it came from: the caller's; by default a fine-tuning of the champion
    (FINETUNE, or FINETUNE_FAST with ``retrain_fast``); with ``retrain_from_scratch`` the full recipe (or TINY)."""
    if config is not None:
        return config, "argument"
    if settings.retrain_from_scratch:
        return (TINY, "scratch-fast") if settings.retrain_fast else (TrainConfig(), "scratch")
    return (FINETUNE_FAST, "finetune-fast") if settings.retrain_fast else (FINETUNE, "finetune")


def train_challenger(data: Mnist, config: TrainConfig, images: np.ndarray, labels: np.ndarray,
                     base: Path | str | None) -> ModelArtifact:
    """`model.train.train` on MNIST plus `images`, run in a child process; fine-tuning the artifact at `base`
    when the recipe has no dense epochs of its own. Raises RetrainError when the child fails."""
    with tempfile.TemporaryDirectory(prefix="bounty-train-") as tmp:
        work = Path(tmp)
        np.savez(work / INPUTS, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test,
                 images=np.asarray(images, np.uint8).reshape(-1, 784), labels=np.asarray(labels, np.uint8))
        fine_tune = str(base) if base is not None and not config.epochs else None
        (work / REQUEST).write_text(json.dumps({"config": config.to_json(), "base": fine_tune,
                                                "mnist_source": data.source}))
        _run_child(work)
        try:
            return load_artifact(work / OUTPUT)
        except ArtifactError as exc:
            raise RetrainError(f"the training process left no usable challenger: {exc}") from exc


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
    """Train as `request.json` says on `inputs.npz`, and leave the artifact in `challenger/`."""
    _exit_with_parent()
    request = json.loads((work / REQUEST).read_text())
    settings = request["config"]
    config = TrainConfig(**{**settings, "densities": tuple(settings["densities"])})
    with np.load(work / INPUTS, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    data = Mnist(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], request["mnist_source"])
    images, labels = arrays["images"], arrays["labels"]
    base = load_artifact(request["base"]).float_weights if request["base"] else None

    from model.train import train  # TensorFlow: only ever in this process

    result = train(data, config, images if len(images) else None, labels if len(labels) else None, base=base,
                   quiet=True)
    result.artifact.save(work / OUTPUT)


__all__ = ["choose_config", "main", "save_challenger", "train_challenger"]
