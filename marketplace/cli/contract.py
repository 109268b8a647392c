"""`bounty contract ...`: compile, check and measure the classifier script and the bounty contract."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marketplace.cli._output import ImagesOption, JsonOption, ModelOption, emit, friendly, progress_bar

if TYPE_CHECKING:  # importing them for real would load numpy and the model on every CLI start
    from contracts.bounty import Mode
    from model.artifact import ModelArtifact
    from model.data import Mnist



class ContractMode(StrEnum):
    open = "open"
    vetted = "vetted"


class ContractShape(StrEnum):
    chain = "chain"
    pool = "pool"


ModeOption = Annotated[ContractMode, typer.Option(
    "--mode", help="open (today's contract, the default here) or vetted (the attestor co-signs; appeals).")]
ShapeOption = Annotated[ContractShape, typer.Option(
    "--shape", help="chain (one output every submission spends and re-creates; the default here) or pool "
                    "(independent prize outputs sharing one script, no covenant).")]

contract_app = typer.Typer(help="Compile, check and measure the on-chain classifier and the bounty contract.",
                           no_args_is_help=True)


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
    bounty = BountyContract(classifier, example_terms())
    emit({**classifier.report(), "bounty_locking_script_bytes": bounty.locking_script_bytes,
          "weights_sha256": artifact.weights_sha256}, as_json, "classifier script")


@contract_app.command("verify")
@friendly
def contract_verify(images: ImagesOption = 200, model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Run MNIST test images through bsv-sdk's interpreter and compare with the integer reference."""
    from model.artifact import load_artifact
    from model.data import load_mnist

    result = _verify(load_artifact(model), load_mnist(), images)
    emit(result, as_json, "on-chain classifier against the reference")
    if result["agree"] != result["images"]:
        raise typer.Exit(1)


@contract_app.command("example")
@friendly
def contract_example(model: ModelOption = None, mode: ModeOption = ContractMode.open,
                     shape: ShapeOption = ContractShape.chain, as_json: JsonOption = False) -> None:
    """A self-contained set of raw transactions: funding, deploy, accept, reject, withdraw (vetted: and appeals).

    Pool shape: the deploy creates three prizes, accept_tx claims one, withdraw_tx is the owner reclaiming the rest.
    """
    from contracts.example import build_example, build_pool_example
    from model.artifact import load_artifact
    from model.data import load_mnist

    data = load_mnist()
    build = build_pool_example if shape is ContractShape.pool else build_example
    result = build(load_artifact(model).integer, data.x_test, data.y_test, mode=_mode(mode))
    if as_json:
        emit(result, True, "")
    else:
        emit({k: v for k, v in result.items() if not k.endswith("_tx")}, False, "example transactions (hex: --json)")


@contract_app.command("bench")
@friendly
def contract_bench(images: ImagesOption = 200, submissions: Annotated[int, typer.Option(min=1, max=100)] = 5,
                   fee_rate: Annotated[int, typer.Option(min=1, help="sat/kB")] = 100,
                   model: ModelOption = None, mode: ModeOption = ContractMode.open,
                   shape: ShapeOption = ContractShape.chain,
                   prizes: Annotated[int, typer.Option(min=1, max=100, help="pool: prizes per deploy")] = 10,
                   as_json: JsonOption = False) -> None:
    """Sizes, fee and validation time of real submissions (vetted: and appeals), and on-chain accuracy.

    Pool shape: the submissions are claims, each on a prize of its own; a paid image costs its prize's share
    of the deploy plus its claim.
    """
    from contracts.example import bench, bench_pool
    from model.artifact import load_artifact
    from model.data import load_mnist

    artifact, data = load_artifact(model), load_mnist()
    if shape is ContractShape.pool:
        result = bench_pool(artifact.integer, data.x_test, data.y_test, submissions, fee_rate, _mode(mode), prizes)
    else:
        result = bench(artifact.integer, data.x_test, data.y_test, submissions, fee_rate, _mode(mode))
    verified = _verify(artifact, data, images)
    result |= {"script_accuracy": verified["script_accuracy"], "accuracy_images": images,
               "agree": verified["agree"], "classifier_ms_per_image": round(verified["ms_per_image"], 1)}
    emit(result, as_json, "bounty contract benchmark")


def _mode(mode: ContractMode) -> Mode:
    from contracts.bounty import OPEN, VETTED

    return VETTED if mode is ContractMode.vetted else OPEN


def _verify(artifact: ModelArtifact, data: Mnist, images: int) -> dict[str, Any]:
    """The first `images` MNIST test images through the interpreter, with a progress bar."""
    from contracts.interpreter import verify_images

    bar, advance = progress_bar(images, "interpreter")
    with bar:
        return verify_images(artifact.integer, data.x_test[:images], data.y_test[:images], progress=advance)
