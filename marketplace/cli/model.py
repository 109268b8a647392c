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
    hidden: Annotated[int | None, typer.Option(min=1, max=1024, help="Hidden neurons (default 64, the seed's "
                                               "784-64-10; continuing: the artifact's own).")] = None,
    density: Annotated[float | None, typer.Option(help="Share of layer-1 weights kept at the end (default 0.15; "
                                                  "continuing: kept as it is).")] = None,
    stages: Annotated[int | None, typer.Option(min=1, max=20, help="Pruning stages, each followed by fine-tuning "
                                               "(default 5 from scratch, 3 continuing).")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="Continue from this artifact (its width; no dense "
                                               "training): prune it further to --density, then tune.")] = None,
    optimizer: Annotated[str, typer.Option(help="rmsprop (as in the seed article; shipped) or adam.")] = "rmsprop",
    epochs: Annotated[int | None, typer.Option(help="Dense training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the shipped model's).")] = None,
    tiny: Annotated[bool, typer.Option(help="A seconds-long run on a subset (for tests and smoke checks).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train 784-N-10 (default: the seed's 784-64-10 at 15%), prune and quantise it, and write a model artifact
    with a report; or, with --from, prune a trained artifact further."""
    from dataclasses import replace

    from model.artifact import load_artifact
    from model.config import CONTINUED_STAGES, STAGES, TINY, TrainConfig, continued, from_scratch
    from model.data import load_mnist

    if optimizer not in ("adam", "rmsprop"):
        raise typer.BadParameter("choose adam or rmsprop", param_hint="--optimizer")
    config = replace(TINY if tiny else TrainConfig(), optimizer=optimizer)
    if optimizer == "adam":
        config = replace(config, learning_rate=2e-3)  # the Adam rate tried on the validation split
    if seed is not None:
        config = replace(config, seed=seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    base = load_artifact(from_) if from_ is not None else None
    try:
        if base is None:
            config = from_scratch(config, hidden or config.hidden, config.densities[-1] if density is None
                                  else density, stages or (len(config.densities) if tiny else STAGES))
        elif hidden not in (None, base.integer.hidden_size):
            raise typer.BadParameter(f"{from_} is {base.integer.hidden_size} wide; continuing keeps its width",
                                     param_hint="--hidden")
        else:
            config = continued(config, base.integer.hidden_size, base.float_weights.density, density,
                               stages or CONTINUED_STAGES)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from model.train import continue_training, train, write_report  # TensorFlow: once the options are sound

    data = load_mnist()
    result = train(data, config) if base is None else continue_training(data, config, base)
    artifact = result.artifact
    directory = out or Path("artifacts") / artifact.weights_sha256[:12]
    artifact.save(directory)
    plots = write_report(result, directory / "report")
    summary = {"artifact": str(directory), "weights_sha256": artifact.weights_sha256,
               "hidden": artifact.integer.hidden_size, "layer1_density": round(artifact.float_weights.density, 4),
               "nonzero_weights": artifact.integer.nonzero_weights, **artifact.metrics,
               "plots": [str(p) for p in plots]}
    emit(summary, as_json, "trained")
