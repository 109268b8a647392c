"""Output and error handling shared by every `bounty` command (the CLI's output layer)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from model.errors import BountyError

F = TypeVar("F", bound=Callable[..., Any])
ModelOption = Annotated[Path | None, typer.Option("--model", help="Model artifact directory, or a shipped one: "
                                                  "default, accurate or seed (default: default).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ImagesOption = Annotated[int, typer.Option("--images", min=1, max=10000, help="MNIST test images to run.")]


def friendly(command: F) -> F:
    """Turn the project's own errors into one sentence and exit code 1: on stderr, or with `--json` one JSON
    object `{"error": sentence}` on stdout, so a script reading the output always gets one object."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BountyError as exc:
            fail(str(exc), bool(kwargs.get("as_json")))

    return run  # type: ignore[return-value]


def fail(sentence: str, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": sentence}))
    else:
        typer.echo(f"error: {sentence}", err=True)
    raise typer.Exit(1)


def emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    """Print one JSON object, or a titled list of `key value` lines for people."""
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(title)
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        typer.echo(f"  {key:<28} {value}")


def emit_rows(key: str, rows: list[dict[str, Any]], as_json: bool, header: str,
              line: Callable[[dict[str, Any]], str]) -> None:
    """A list: one JSON object holding it under `key`, or a table for people (its header even when empty)."""
    if as_json:
        typer.echo(json.dumps({key: rows}, indent=2))
        return
    typer.echo(header)
    for row in rows:
        typer.echo(line(row))


def progress_bar(total: int, label: str) -> tuple[Any, Callable[[int, int], None]]:
    """A progress bar on stderr (so --json output stays clean) and the callback that advances it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda done, _total: bar.update(task, completed=done)
