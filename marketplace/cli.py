"""`bounty`: the single command-line entry point. Thin: parse, call library functions, print.

Every command that prints figures takes --json. Errors the project raises on purpose
become one sentence on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
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
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
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
    config = replace(TINY if tiny else TrainConfig(), optimizer=optimizer, seed=seed)
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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
