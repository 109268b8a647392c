"""`bounty judge ...`: train and evaluate the independent judge that vets images before the attestor signs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli._output import ImagesOption, JsonOption, ModelOption, emit, friendly

judge_app = typer.Typer(help="Train and evaluate the independent judge (a CNN with an out-of-distribution score).",
                        no_args_is_help=True)
JudgeOption = Annotated[Path | None, typer.Option("--judge", help="Judge artifact directory (default: shipped).")]


@judge_app.command("train")
@friendly
def judge_train(
    out: Annotated[Path | None, typer.Option(help="Artifact directory (default: artifacts/judge-<hash>).")] = None,
    tiny: Annotated[bool, typer.Option(help="A seconds-long run on a subset (for tests and smoke checks).")] = False,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the judge on MNIST's training split (restyled), choose its thresholds on the validation split
    against attacks on the classifier (--model, default: shipped), and write a judge artifact."""
    from model.artifact import load_artifact
    from model.data import load_mnist
    from model.judge_config import TINY_JUDGE, JudgeConfig
    from model.judge_train import train_judge

    result = train_judge(load_mnist(), TINY_JUDGE if tiny else JudgeConfig(), load_artifact(model), quiet=as_json)
    judge = result.judge
    directory = out or Path("artifacts") / f"judge-{judge.weights_sha256[:12]}"
    judge.save(directory)
    metrics = {k: v for k, v in judge.metrics.items() if k != "probability_sweep"}
    emit({"artifact": str(directory), "weights_sha256": judge.weights_sha256, "policy_sha256": judge.policy_sha256,
          "parameters": judge.parameters, "thresholds": judge.metadata()["thresholds"], **metrics},
         as_json, "trained judge")


@judge_app.command("eval")
@friendly
def judge_eval(
    judge: JudgeOption = None,
    model: ModelOption = None,
    attacks: Annotated[int, typer.Option(min=1, max=2000, help="Attacks of each kind to craft.")] = 200,
    images: ImagesOption = 10000,
    margin: Annotated[int, typer.Option(min=0, help="The bounty's minimum margin the attacks must reach.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Honest pass rates on MNIST test digits (plain and unlike MNIST), attacks on the classifier let through
    per kind, and milliseconds per image."""
    from model.artifact import load_artifact
    from model.data import load_mnist
    from model.judge import load_judge
    from model.judge_eval import evaluate

    emit(evaluate(load_judge(judge), load_artifact(model), load_mnist(), attacks, images, margin), as_json,
         "judge evaluation (MNIST test set)")
