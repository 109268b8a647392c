"""`bounty model ...`: train and evaluate the classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli._output import JsonOption, ModelOption, emit, friendly

model_app = typer.Typer(help="Train and evaluate the classifier.", no_args_is_help=True)


@model_app.command("eval")
@friendly
def model_eval(model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Accuracy of the float and integer models on the 10,000 MNIST test images."""
    from model.artifact import load_artifact
    from model.data import load_mnist
    from model.evaluate import evaluate

    emit(evaluate(load_artifact(model), load_mnist()), as_json, "model evaluation (MNIST test set)")


@model_app.command("train")
@friendly
def model_train(
    out: Annotated[Path | None, typer.Option(help="Artifact directory (default: artifacts/<weights hash>).")] = None,
    optimizer: Annotated[str, typer.Option(help="rmsprop (as in the seed article; shipped) or adam.")] = "rmsprop",
    epochs: Annotated[int | None, typer.Option(help="Dense training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the shipped model's).")] = None,
    tiny: Annotated[bool, typer.Option(help="A seconds-long run on a subset (for tests and smoke checks).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train 784-64-10, prune and quantise it, and write a model artifact with a report."""
    from dataclasses import replace

    from model.config import TINY, TrainConfig
    from model.data import load_mnist
    from model.train import train, write_report

    if optimizer not in ("adam", "rmsprop"):
        raise typer.BadParameter("choose adam or rmsprop", param_hint="--optimizer")
    config = replace(TINY if tiny else TrainConfig(), optimizer=optimizer)
    if optimizer == "adam":
        config = replace(config, learning_rate=2e-3)  # the Adam rate tried on the validation split
    if seed is not None:
        config = replace(config, seed=seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    result = train(load_mnist(), config)
    directory = out or Path("artifacts") / result.artifact.weights_sha256[:12]
    result.artifact.save(directory)
    plots = write_report(result, directory / "report")
    summary = {"artifact": str(directory), "weights_sha256": result.artifact.weights_sha256,
               "nonzero_weights": result.artifact.integer.nonzero_weights, **result.artifact.metrics,
               "plots": [str(p) for p in plots]}
    emit(summary, as_json, "trained")
