"""`bounty`: the single command-line entry point. Thin: parse, call library functions, print.

Every command that prints figures takes --json. Errors the project raises on purpose
become one sentence on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from model.errors import BountyError

app = typer.Typer(help="digit-bounty: bounties for handwritten digits, judged on-chain.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
model_app = typer.Typer(help="Train and evaluate the classifier.", no_args_is_help=True)
app.add_typer(model_app, name="model")
contract_app = typer.Typer(help="Compile, check and measure the on-chain classifier and the bounty contract.",
                           no_args_is_help=True)
app.add_typer(contract_app, name="contract")

F = TypeVar("F", bound=Callable[..., Any])
ModelOption = Annotated[Path | None, typer.Option("--model", help="Model artifact directory (default: shipped).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def friendly(command: F) -> F:
    """Turn the project's own errors into one sentence and exit code 1."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BountyError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return run  # type: ignore[return-value]


def emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(title)
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        typer.echo(f"  {key:<28} {value}")


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
    optimizer: Annotated[str, typer.Option(help="adam, or rmsprop as in the seed article.")] = "adam",
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
    if optimizer == "rmsprop":
        config = replace(config, learning_rate=1e-3)  # Keras' RMSprop default, as the seed article used
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


ImagesOption = Annotated[int, typer.Option("--images", min=1, max=10000, help="MNIST test images to run.")]


def progress_bar(total: int, label: str) -> tuple[Any, Callable[[int, int], None]]:
    """A progress bar on stderr (so --json output stays clean) and the callback that advances it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda done, _total: bar.update(task, completed=done)


@contract_app.command("build")
@friendly
def contract_build(model: ModelOption = None, asm: Annotated[bool, typer.Option(
        "--asm", help="Print the annotated assembly instead of the summary.")] = False,
                   as_json: JsonOption = False) -> None:
    """Compile the model into Bitcoin Script and report its size."""
    from contracts.bounty import BountyContract
    from contracts.classifier import compile_classifier
    from contracts.example import example_terms
    from model.artifact import load_artifact

    artifact = load_artifact(model)
    classifier = compile_classifier(artifact.integer)
    if asm:
        typer.echo(str(classifier.code))
        return
    bounty = BountyContract(artifact.integer, example_terms())
    emit({**classifier.report(), "bounty_locking_script_bytes": bounty.locking_script_bytes,
          "weights_sha256": artifact.weights_sha256}, as_json, "classifier script")


@contract_app.command("verify")
@friendly
def contract_verify(images: ImagesOption = 200, model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Run MNIST test images through bsv-sdk's interpreter and compare with the integer reference."""
    from contracts.interpreter import verify_images
    from model.artifact import load_artifact
    from model.data import load_mnist

    artifact, data = load_artifact(model), load_mnist()
    bar, advance = progress_bar(images, "interpreter")
    with bar:
        result = verify_images(artifact.integer, data.x_test[:images], data.y_test[:images], progress=advance)
    emit(result, as_json, "on-chain classifier against the reference")
    if result["agree"] != result["images"]:
        raise typer.Exit(1)


@contract_app.command("example")
@friendly
def contract_example(model: ModelOption = None, as_json: JsonOption = False) -> None:
    """A self-contained set of raw transactions: funding, deploy, accept, reject, withdraw."""
    from contracts.example import build_example
    from model.artifact import load_artifact
    from model.data import load_mnist

    data = load_mnist()
    result = build_example(load_artifact(model).integer, data.x_test, data.y_test)
    if as_json:
        emit(result, True, "")
    else:
        emit({k: v for k, v in result.items() if not k.endswith("_tx")}, False, "example transactions (hex: --json)")


@contract_app.command("bench")
@friendly
def contract_bench(images: ImagesOption = 200, submissions: Annotated[int, typer.Option(min=1, max=100)] = 5,
                   fee_rate: Annotated[int, typer.Option(min=1, help="sat/kB")] = 100,
                   model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Sizes, fee and validation time of real submissions, and on-chain accuracy on test images."""
    from contracts.example import bench
    from contracts.interpreter import verify_images
    from model.artifact import load_artifact
    from model.data import load_mnist

    artifact, data = load_artifact(model), load_mnist()
    result = bench(artifact.integer, data.x_test, data.y_test, submissions, fee_rate)
    bar, advance = progress_bar(images, "interpreter")
    with bar:
        verified = verify_images(artifact.integer, data.x_test[:images], data.y_test[:images], progress=advance)
    result |= {"script_accuracy": verified["script_accuracy"], "accuracy_images": images,
               "agree": verified["agree"], "classifier_ms_per_image": round(verified["ms_per_image"], 1)}
    emit(result, as_json, "bounty contract benchmark")


def main() -> None:
    level = os.environ.get("BOUNTY_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
